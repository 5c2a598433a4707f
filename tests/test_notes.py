"""Show notes from the episode-258 config: content, links, Spotify chapter lines, escaping, Markdown == HTML."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from support.pages import HOSTILE, read_page, texts

from keylime_prod import notes
from keylime_prod.chapters.artefact import ChapterMark, Chapters
from keylime_prod.config import EpisodeConfig, load_episode, load_show
from keylime_prod.layout import BuildLayout
from keylime_prod.transcript.artefact import Transcript, TranscriptSegment

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


class _Page(HTMLParser):
    """Collects link targets, visible text, and the lines of the paragraph under the "Chapters" heading."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.text: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v or "" for k, v in attrs if k == "href"]
        self._in_title = tag == "h1"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data


def _visible(html_text: str) -> str:
    page = _Page()
    page.feed(html_text)
    return " ".join(" ".join(page.text).split())


@pytest.fixture
def transcript(tmp_path: Path) -> Transcript:
    files = {fmt: tmp_path / f"transcript.{fmt}" for fmt in ("txt", "srt", "vtt", "json", "html")}
    return Transcript(
        segments=(TranscriptSegment(14.0, 18.0, "Welcome to KeyLIME.", "Lara Varpio"),),
        files=files,
        language="en",
        engine="faster-whisper",
        model="base",
    )


MARKS = (
    ChapterMark("Intro", 0.0, 13.5),
    ChapterMark("Welcome and the paper", 13.5, 330.9),
    ChapterMark("Why allow failure?", 330.9, 3725.0),
    ChapterMark("Outro", 3725.0, 3740.0),
)


def test_notes_for_episode_258(tmp_path: Path, transcript: Transcript) -> None:
    episode = load_episode(CONFIGS, "episode-258")
    show = load_show(CONFIGS / "show.toml").show
    result = notes.write_notes(
        episode, show, BuildLayout(tmp_path, episode.id), transcript=transcript, chapters=Chapters(MARKS)
    )
    assert result.markdown == tmp_path / "show-notes.md" and result.html == tmp_path / "show-notes.html"
    md = result.markdown.read_text("utf-8")
    page = _Page()
    page.feed(result.html.read_text("utf-8"))

    assert page.title == episode.title
    assert md.splitlines()[0].startswith("# I'm a loser, baby")
    text = _visible(result.html.read_text("utf-8"))
    for needle in (
        "Hosts: Lara Varpio",
        "Klasen JM, Lingard LA. Allowing failure for educational purposes",
        "Can failing make you a better doctor?",
        episode.key_points[0],
        show.disclaimer_text,
        "KeyLIME, episode 258 (season 1), 26 November 2019",
    ):
        assert needle in text, needle
    assert "https://doi.org/10.1080/0142159X.2019.1630728" in page.hrefs
    assert "https://pubmed.ncbi.nlm.nih.gov/31230518/" in page.hrefs
    assert [h for h in page.hrefs if h.startswith("transcript.")] == [
        "transcript.html", "transcript.txt", "transcript.vtt", "transcript.srt", "transcript.json",
    ]  # fmt: skip

    # Spotify reads "(HH:MM:SS) Title" lines; the chapters stage's own reader finds them in both files.
    want = ((0, "Intro"), (13, "Welcome and the paper"), (330, "Why allow failure?"), (3725, "Outro"))
    assert notes.read_chapter_lines(result.markdown) == want
    assert "(01:02:05) Outro" in md and "(00:05:30) Why allow failure?" in md
    html_text = result.html.read_text("utf-8")
    assert "(00:05:30) Why allow failure?<br>" in html_text


def test_the_article_is_data_the_page_shows(tmp_path: Path, transcript: Transcript) -> None:
    """The notes hand on their article as data: its links with published URLs where ``links`` maps them, and its
    HTML exactly the page's ``<article>``; ``write=False`` builds the same article and writes nothing."""
    episode = load_episode(CONFIGS, "episode-258")
    show = load_show(CONFIGS / "show.toml").show
    url = "https://media.example.org/ep/transcript.0123456789.vtt"
    layout = BuildLayout(tmp_path / "b", episode.id)
    result = notes.write_notes(
        episode, show, layout, transcript=transcript, chapters=Chapters(MARKS), links={"transcript.vtt": url}
    )
    article = result.article
    assert article.title == episode.title
    by_label = {link.label: link.url for link in article.links()}
    assert by_label["WebVTT captions"] == url and by_label["Plain text"] == "transcript.txt"
    assert by_label["DOI: 10.1080/0142159X.2019.1630728"] == "https://doi.org/10.1080/0142159X.2019.1630728"
    chapters = next(s for s in article.sections if s.heading == "Chapters")
    assert chapters.lines[0] == "(00:00:00) Intro" and len(chapters.lines) == len(MARKS)
    page = result.html.read_text("utf-8")
    assert page.split("<article>\n")[1].split("\n</article>")[0] == article.html()

    again = notes.write_notes(
        episode, show, BuildLayout(tmp_path / "c", episode.id), transcript=transcript, chapters=Chapters(MARKS),
        links={"transcript.vtt": url}, write=False,
    )  # fmt: skip
    assert again.article == article and not (tmp_path / "c").exists()


def test_markdown_renders_to_the_same_text_as_the_html(tmp_path: Path, transcript: Transcript) -> None:
    """An independent Markdown renderer (markdown-it, CommonMark) must show what our HTML shows, markup escaped."""
    episode = load_episode(CONFIGS, "episode-258").model_copy(
        update={"title": "A *bold* <claim> [about] `code` # and_so_on", "summary": "First.\n\nSecond <b>x</b>."}
    )
    show = load_show(CONFIGS / "show.toml").show
    result = notes.write_notes(
        episode, show, BuildLayout(tmp_path, episode.id), transcript=transcript, chapters=Chapters(MARKS)
    )
    rendered = MarkdownIt("commonmark").render(result.markdown.read_text("utf-8"))
    ours = result.html.read_text("utf-8")
    assert _visible(rendered) == _visible(ours.split("<article>")[1])
    assert "<claim>" not in ours and "&lt;claim&gt;" in ours
    page = _Page()
    page.feed(rendered)
    assert page.title == episode.title


def test_no_chapters_no_transcript_no_paper(tmp_path: Path) -> None:
    episode = load_episode(CONFIGS, "episode-258").model_copy(update={"paper": None, "key_points": ()})
    show = load_show(CONFIGS / "show.toml").show.model_copy(update={"disclaimer_text": ""})
    result = notes.write_notes(episode, show, BuildLayout(tmp_path, episode.id))
    md = result.markdown.read_text("utf-8")
    for absent in ("## Chapters", "## Transcript", "## The paper", "## Key points", "## Disclaimer"):
        assert absent not in md
    assert "## Summary" in md and notes.read_chapter_lines(result.markdown) == ()


def test_hostile_text_in_every_field_is_shown_as_text(tmp_path: Path, transcript: Transcript) -> None:
    """Titles, names, the paper and chapter titles holding markup reach the page as text (autoescaped template)."""
    base = load_episode(CONFIGS, "episode-258")
    people = {"hosts": [{"name": f"{HOSTILE} 1"}, {"name": f"{HOSTILE} 2"}], "guests": [{"name": f"{HOSTILE} 3"}]}
    episode = EpisodeConfig.model_validate(
        {
            **base.model_dump(),
            **people,
            "title": HOSTILE,
            "subtitle": f"{HOSTILE} subtitle",
            "summary": f"{HOSTILE} summary",
            "key_points": [f"{HOSTILE} point"],
            "link": "https://keylime.example.org/episodes/258?a=1&b=2",
            "paper": {**base.paper.model_dump(), "title": HOSTILE, "authors": "Klasen JM", "citation": ""},
        }
    )
    show = load_show(CONFIGS / "show.toml").show.model_copy(
        update={"title": f"{HOSTILE} show", "disclaimer_text": f"{HOSTILE} disclaimer"}
    )
    marks = Chapters((ChapterMark("Intro", 0.0, 13.5), ChapterMark(HOSTILE, 13.5, 60.0)))
    links = {"transcript.html": "https://cdn.example.org/t.html?x=1&y='2'"}
    result = notes.write_notes(
        episode, show, BuildLayout(tmp_path, episode.id), transcript=transcript, chapters=marks, links=links
    )
    doc = read_page(result.html.read_text("utf-8"))

    assert texts(doc, "//title") == texts(doc, "//h1") == [HOSTILE]
    paragraphs = texts(doc, "//p")
    for want in (
        f"{HOSTILE} show, episode 258 (season 1), 26 November 2019",
        f"{HOSTILE} subtitle",
        f"Hosts: {HOSTILE} 1, {HOSTILE} 2; Guests: {HOSTILE} 3",
        f"Klasen JM. {HOSTILE}. {base.paper.journal} ({base.paper.year}).",
        f"{HOSTILE} summary",
        f"(00:00:00) Intro\n(00:00:13) {HOSTILE}",  # a line each (a <br> between)
        f"{HOSTILE} disclaimer",
    ):
        assert want in paragraphs, want
    assert texts(doc, "//li") == [f"{HOSTILE} point"]
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert links["transcript.html"] in hrefs and "https://keylime.example.org/episodes/258?a=1&b=2" in hrefs
