"""The show-notes stage: ``show-notes.md`` and ``show-notes.html`` from the episode config, chapters and transcript.

The notes carry what listeners and platforms look for: title, hosts and guests, the paper with a DOI and PubMed
link, the summary and key points, chapter timestamps, links to every transcript file, and the disclaimer.

Chapters are written as ``(HH:MM:SS) Title`` lines, one per line, at the start of the line: Spotify builds chapters
only from timestamps in the episode description (docs/platform.md). Both files are built from one outline, so the
Markdown and the HTML always say the same thing.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

from markupsafe import Markup

from .. import fsutil, pages, timecode
from ..chapters.artefact import Chapters
from ..config import EpisodeConfig, Paper, Person, ShowInfo
from ..errors import NotesError
from ..layout import BuildLayout
from ..transcript.artefact import Transcript
from .artefact import Article, Link, Notes, Section

log = logging.getLogger(__name__)

#: Transcript formats in the order listed, with the label a listener sees.
TRANSCRIPT_LABELS = (
    ("html", "Web page"),
    ("txt", "Plain text"),
    ("vtt", "WebVTT captions"),
    ("srt", "SubRip captions"),
    ("json", "Podcasting 2.0 JSON"),
)


def write_notes(
    episode: EpisodeConfig,
    show: ShowInfo,
    layout: BuildLayout,
    *,
    transcript: Transcript | None = None,
    chapters: Chapters | None = None,
    links: Mapping[str, str] | None = None,
    write: bool = True,
) -> Notes:
    """Write ``layout.notes_md`` and ``layout.notes_html`` and return where they are, with the article they say.

    ``chapters`` is the chapters stage's artefact (marks on the published timeline). Transcript links are relative
    to the notes (the files sit beside them) unless ``links`` maps a file name to its URL (publishing gives the
    published URLs). ``write=False`` only builds the article (for notes already written).
    """
    article = _outline(episode, show, transcript, chapters, links or {})
    notes = Notes(markdown=layout.notes_md, html=layout.notes_html, article=article)
    if not write:
        return notes
    md = _markdown(article.title, article.sections)
    page = _html(article, language=show.language)
    try:
        fsutil.write_text(notes.markdown, md)
        fsutil.write_text(notes.html, page)
    except OSError as e:
        raise NotesError(f"cannot write show notes: {e.strerror or e}", where=layout.root) from e
    log.info("show notes: %s, %s", notes.markdown.name, notes.html.name)
    return notes


# ------------------------------------------------------------------------------------------------------ outline


def _names(people: Sequence[Person]) -> str:
    return ", ".join(p.name for p in people)


def _paper(paper: Paper) -> Section:
    ref = f"{paper.authors}. {paper.title}."
    if paper.journal:
        ref += f" {paper.journal}"
        ref += f" ({paper.year})." if paper.year else "."
    elif paper.year:
        ref += f" {paper.year}."
    links = []
    if paper.doi:
        links.append(Link(f"DOI: {paper.doi}", f"https://doi.org/{paper.doi}"))
    if paper.pmid:
        links.append(Link(f"PubMed: {paper.pmid}", f"https://pubmed.ncbi.nlm.nih.gov/{paper.pmid}/"))
    if paper.url:
        links.append(Link("Read the paper", paper.url))
    return Section("The paper", paragraphs=((paper.citation or ref,),), links=tuple(links))


def _outline(
    episode: EpisodeConfig,
    show: ShowInfo,
    transcript: Transcript | None,
    chapters: Chapters | None,
    links: Mapping[str, str],
) -> Article:
    if not episode.title.strip():
        raise NotesError("the episode has no title", where=episode.id)
    sections: list[Section] = []
    intro: list[tuple[str | Link, ...]] = []
    byline = f"{show.title}, episode {episode.number}"
    if episode.season:
        byline += f" (season {episode.season})"
    byline += f", {episode.publish_date.day} {episode.publish_date:%B %Y}"
    intro.append((byline,))
    if episode.subtitle:
        intro.append((episode.subtitle,))
    people = [f"Hosts: {_names(episode.hosts)}"]
    if episode.guests:
        people.append(f"Guests: {_names(episode.guests)}")
    intro.append(("; ".join(people),))
    sections.append(Section("", paragraphs=tuple(intro)))
    if episode.paper is not None:
        sections.append(_paper(episode.paper))
    sections.append(Section("Summary", paragraphs=tuple((p,) for p in _paragraphs(episode.summary))))
    if episode.key_points:
        sections.append(Section("Key points", bullets=tuple(episode.key_points)))
    if chapters is not None and chapters.marks:
        sections.append(Section("Chapters", lines=chapters.timestamp_lines()))
    if transcript is not None and transcript.files:
        files = []
        for fmt, label in TRANSCRIPT_LABELS:
            path = transcript.files.get(fmt)
            if path is not None:
                name = Path(path).name
                files.append(Link(label, links.get(name, name)))
        sections.append(Section("Transcript", links=tuple(files)))
    if episode.link:
        sections.append(Section("", links=(Link("Episode page", episode.link),)))
    if show.disclaimer_text.strip():
        sections.append(Section("Disclaimer", paragraphs=((show.disclaimer_text.strip(),),)))
    return Article(episode.title, tuple(sections))


def _paragraphs(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


# ------------------------------------------------------------------------------------------------------ renderers


#: Inline syntax of CommonMark (and GFM's tables and strikethrough): escaped wherever it occurs. ``&`` too, or
#: ``&lt;`` in a title would render as ``<``. Every ASCII punctuation character may be backslash-escaped (CommonMark
#: 0.31, section 2.4), so an escape never shows.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&])")
#: What opens a block at the start of a line: a heading, quote, list item, thematic break, setext underline or fence
#: (CommonMark sections 4 and 5); its first character is escaped there.
_MD_BLOCK_START = re.compile(r"^(?:[#>+\-=*_~`]|\d{1,9}(?=[.)]))")


def _md(text: str, *, line_start: bool = False) -> str:
    """Text as Markdown that renders as exactly that text: ``<script>`` stays letters, ``[a](javascript:..)`` is
    no link, ``# x`` no heading. Line breaks and runs of spaces become one space (a line break could open a block
    such as ``---``; four spaces a code block)."""
    out = _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", text).strip())
    if line_start:
        m = _MD_BLOCK_START.match(out)
        if m and m.group()[0].isdigit():  # "1." or "1)" opens an ordered list: escape the "." or ")"
            out = f"{out[: m.end()]}\\{out[m.end() :]}"
        elif m and not out.startswith("\\"):
            out = "\\" + out
    return out


def md_url(url: str) -> str:
    """``url`` as a Markdown link destination (inside ``<...>``): anything that could end it or start a new
    construct is percent-encoded (RFC 3986 section 2.1), so the link goes exactly where the config said."""
    # '&' stays (query strings need it) but backslash-escaped: "&amp;" in a URL must not turn into "&".
    return urllib.parse.quote(url, safe="-._~:/?#[]@!$&'()*+,;=%").replace("&", "\\&")


def _md_link(link: Link) -> str:
    return f"[{_md(link.label)}](<{md_url(link.url)}>)"


def _markdown(title: str, sections: Sequence[Section]) -> str:
    out = [f"# {_md(title)}", ""]
    for sec in sections:
        if sec.heading:
            out += [f"## {_md(sec.heading)}", ""]
        for para in sec.paragraphs:
            parts = (_md(p, line_start=i == 0) if isinstance(p, str) else _md_link(p) for i, p in enumerate(para))
            out += ["".join(parts), ""]
        if sec.bullets:
            out += [f"- {_md(b, line_start=True)}" for b in sec.bullets] + [""]
        if sec.lines:
            # Two trailing spaces: a hard line break, so each "(HH:MM:SS) Title" starts its own line.
            out += [f"{_md(ln)}  " for ln in sec.lines[:-1]] + [_md(sec.lines[-1]), ""]
        if sec.links:
            out += [" · ".join(_md_link(lk) for lk in sec.links), ""]
    return "\n".join(out).rstrip() + "\n"


def _html(article: Article, *, language: str) -> str:
    # Autoescaped: every title, name and line reaches the page escaped (templates/notes.html.j2); the article is
    # its own template, already escaped, so the feed carries exactly what the page shows.
    return pages.render(
        __name__, "notes.html.j2", NotesError, title=article.title, article=Markup(article.html()), language=language
    )


# ------------------------------------------------------------------------------------------------------ reading


_NOTES_LINE = re.compile(r"^\s*(?:[-*+]\s+|\d+\.\s+)?\(?(\d{1,2}:\d{2}:\d{2})\)?\s+(.+?)\s*$")


def read_chapter_lines(path: Path) -> tuple[tuple[int, str], ...]:
    """The ``(HH:MM:SS) Title`` lines of a show-notes file as (seconds, title); Markdown escapes removed.

    For checking a notes file (``produce chapters --check``); no stage reads the notes back for their data.
    """
    try:
        text = Path(path).read_text("utf-8")
    except OSError as e:
        raise NotesError(f"cannot read show notes: {e.strerror}", where=path) from e
    out = []
    for line in text.splitlines():
        m = _NOTES_LINE.match(line)
        if m and line.lstrip().lstrip("-*+ ").startswith("("):
            out.append((int(timecode.parse(m.group(1))), re.sub(r"\\(.)", r"\1", m.group(2))))
    return tuple(out)
