"""Hostile and clumsy inputs, third round: text is data wherever it is rendered, configs that contradict themselves,
one bad episode never blocks the others. Each test reproduces one case of docs/reliability.md and checks what the
user gets.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import lxml.html
import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from keylime_prod import report
from keylime_prod.catalogue.importer import import_feed
from keylime_prod.chapters.artefact import ChapterMark
from keylime_prod.cli import app
from keylime_prod.config import COMMAND_NAMES, check_episode_id, episode_from_text, load_episode
from keylime_prod.errors import ConfigError
from keylime_prod.notes import _markdown
from keylime_prod.notes.artefact import Link, Section
from keylime_prod.transcript.artefact import TimedWord

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def configs(demo_configs: Path) -> Path:
    """The demo configs, copied for editing (``demo_configs`` in tests/support/fixtures/media.py)."""
    return demo_configs


def _episode(configs: Path) -> Path:
    return configs / "episodes" / "episode-258.toml"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def _commonmark(md: str) -> lxml.html.HtmlElement:
    return lxml.html.fragment_fromstring(MarkdownIt("commonmark").render(md), create_parent="div")


# ------------------------------------------------------------------------------------- 1: text is data (Markdown)


def test_markdown_show_notes_render_every_text_as_that_text() -> None:
    """Under a real CommonMark renderer each text of the notes is one text node, as written: no HTML, no link, no
    heading, list or rule made from a title, a summary or a key point."""
    summary = "&lt;script&gt; [x](javascript:alert(1)) <b>bold</b> AT&amp;T"
    bullets = ["# not a heading", "1. not a list", "- not a list", "+ plus", "---", "=== x", "```", "> quote"]
    sections = [
        Section("Summary", paragraphs=((summary,), ("---",), ("2) two",))),
        Section("Key points", bullets=tuple(bullets)),
    ]
    doc = _commonmark(_markdown("Title <script>alert(1)</script>", sections))

    assert not doc.xpath("//script|//a|//hr|//ol|//ul//ul|//blockquote|//pre|//b|//h3")
    assert doc.xpath("//h1")[0].text_content() == "Title <script>alert(1)</script>"
    assert [p.text_content() for p in doc.xpath("//p")] == [summary, "---", "2) two"]
    assert [li.text_content() for li in doc.xpath("//li")] == bullets


def test_markdown_links_go_exactly_where_the_url_says() -> None:
    """A URL that reaches the notes by another way than the config (a published file's URL) cannot end its link."""
    url = 'https://example.org/a?b=1&amp;c=2"><script>alert(1)</script>)[x](javascript:alert(1))'
    doc = _commonmark(_markdown("T", [Section("", links=(Link("Read", url),))]))

    assert not doc.xpath("//script") and len(doc.xpath("//a")) == 1
    # Percent-encoded where RFC 3986 asks for it (the renderer encodes "[" "]"); "&amp;" kept, not read as an entity.
    assert doc.xpath("//a/@href") == [
        "https://example.org/a?b=1&amp;c=2%22%3E%3Cscript%3Ealert(1)%3C/script%3E)%5Bx%5D(javascript:alert(1))"
    ]


@pytest.mark.parametrize(
    "field",
    [
        'link = "https://example.org/\\"><script>alert(1)</script>"',
        'link = "https://example.org/>)[x](javascript:alert(1)"',
    ],
)
def test_urls_with_characters_a_url_cannot_carry_are_config_errors(configs: Path, field: str) -> None:
    _edit(_episode(configs), 'link = "https://keylime.example.org/episodes/258"', field)
    with pytest.raises(ConfigError, match=r"field link: holds .* percent-encoded"):
        load_episode(configs, "episode-258")
    result = _cli("check", "--configs", str(configs))
    assert result.exit_code == 2 and "field link" in result.stderr


def test_a_doi_with_markup_is_a_config_error(configs: Path) -> None:
    _edit(_episode(configs), 'doi = "', 'doi = "10.1000/<script>')
    with pytest.raises(ConfigError, match=r"field paper\.doi"):
        load_episode(configs, "episode-258")


def _old_feed(tmp_path: Path, items: str) -> Path:
    feed = tmp_path / "old-feed.xml"
    feed.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>
<title>Old</title><link>https://old.example.org/</link><description>d</description>{items}
</channel></rss>""",
        encoding="utf-8",
    )
    return feed


def _item(guid: str, title: str, *, date: str = "Tue, 26 Nov 2019 06:00:00 +0000", extra: str = "") -> str:
    return (
        f"<item><title>{title}</title><guid isPermaLink='false'>{guid}</guid><pubDate>{date}</pubDate>"
        f"<description>About it.</description>{extra}"
        f"<enclosure url='http://127.0.0.1:9/{abs(hash(guid))}.mp3' length='1000' type='audio/mpeg'/></item>"
    )


def test_a_hostile_old_feed_imports_only_what_produce_check_accepts(configs: Path, tmp_path: Path) -> None:
    """Links that would break out of the notes are dropped; numbers below Apple's minimum and characters XML cannot
    carry are left out; a guid with a line break or a date in 1901 is a problem line, and no config is written."""
    items = [
        _item("g-link", "Link", extra="<link>https://example.org/a{b}`c|d</link>"),
        _item(
            "g-num",
            "Numbers &#x1; &#xFFFE; here",
            extra="<itunes:episode>-3</itunes:episode><itunes:season>0</itunes:season>",
        ),
        _item("g-new\nline", "Guid with a line break"),
        _item("g-1901", "Old", date="Tue, 26 Nov 1901 06:00:00 +0000"),
    ]
    result = import_feed(str(_old_feed(tmp_path, "".join(items))), configs, media_dir=tmp_path / "media", fetch=False)

    added = {e.guid: e.episode_id for e in result.episodes}
    assert set(added) == {"g-link", "g-num"}
    for eid in added.values():  # every config written is one `produce check` accepts
        load_episode(configs, eid)
    link_ep = load_episode(configs, added["g-link"])
    num_ep = load_episode(configs, added["g-num"])
    assert link_ep.link is None
    assert num_ep.number == 0 and num_ep.season is None and num_ep.title == "Numbers   here"
    problems = "\n".join(map(str, result.problems))
    assert "not imported" in problems and "guid" in problems and "1901" in problems
    assert len(list((configs / "episodes").glob("*.toml"))) == 3


def test_an_import_never_loses_a_guid_to_a_config_that_does_not_parse(configs: Path, tmp_path: Path) -> None:
    feed = _old_feed(tmp_path, _item("g-kept", "Kept"))
    first = import_feed(str(feed), configs, media_dir=tmp_path / "media", fetch=False)
    cfg = configs / "episodes" / f"{first.episodes[0].episode_id}.toml"
    cfg.write_text(cfg.read_text("utf-8") + "\nbroken = [\n", encoding="utf-8")  # a bad edit by hand

    with pytest.raises(ConfigError, match="the guid it may hold is unknown") as e:
        import_feed(str(feed), configs, media_dir=tmp_path / "media", fetch=False)
    assert cfg.name in str(e.value)
    assert len(list((configs / "episodes").glob("*.toml"))) == 2  # episode-258 and the broken one: no twin


# ------------------------------------------------------------------------------------- 1: text is data (plots)


def test_tex_in_chapter_titles_and_speaker_names_is_drawn_as_text(tmp_path: Path) -> None:
    """matplotlib's mathtext would parse "$...$" and fail on what does not parse: the report stage must not."""
    from support.reporting import curves as _curves
    from support.reporting import master as _master

    master = _master(tmp_path)
    words = [TimedWord(1.0, 1.5, " hello", 0.9, "$\\frac{1}{"), TimedWord(2.0, 2.5, " x", 0.9, "$x^$")]
    rep = report.write_report(
        master,
        tmp_path / "report.html",
        title="$\\sqrt{",
        target_lufs=-16.0,
        ceiling_dbtp=-1.0,
        curves=report.load_curves(_curves(tmp_path)),
        words=words,
        chapters=(ChapterMark("$\\frac{a}{", 0.0, 40.0), ChapterMark("cost: $5 and $6", 40.0, 100.0)),
    )
    page = rep.html.read_text("utf-8")
    assert page.count("data:image/png;base64,") == 4  # two plots, each drawn for a wide screen and a phone


# ------------------------------------------------------------------------------ 1: characters XML cannot carry


@pytest.mark.parametrize("escape", ["\\uFFFE", "\\uFFFF"])
def test_noncharacters_in_config_text_are_refused_naming_the_field(configs: Path, escape: str) -> None:
    _edit(_episode(configs), 'title = "', f'title = "Bad {escape} ')
    with pytest.raises(ConfigError, match=r"field title: contains the character XML cannot carry U\+FFF"):
        load_episode(configs, "episode-258")
    result = _cli("check", "--configs", str(configs))
    assert result.exit_code == 2 and "field title" in result.stderr


def test_a_lone_surrogate_is_refused_naming_the_field(configs: Path) -> None:
    text = _episode(configs).read_text("utf-8")
    with pytest.raises(ConfigError, match=r"episode-258.toml: field summary: .*unicode"):
        episode_from_text(_episode(configs), "episode-258", text.replace('summary = """', 'summary = """\ud800', 1))


# ----------------------------------------------------------------------------- 3: configs that contradict themselves


def test_two_tracks_with_the_same_file_are_refused(configs: Path) -> None:
    shutil.copy(REPO / "configs" / "episodes" / "multitrack-demo.toml", configs / "episodes" / "mt.toml")
    text = (configs / "episodes" / "mt.toml").read_text("utf-8")
    files = [line for line in text.splitlines() if line.startswith("file = ")]
    assert len(files) >= 2
    (configs / "episodes" / "mt.toml").write_text(text.replace(files[1], files[0]), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"field tracks\[1\]\.file: .* is also tracks\[0\]\.file"):
        load_episode(configs, "mt")


def test_an_episode_named_after_a_command_is_refused(configs: Path) -> None:
    for name in ("check", "publish", "import"):
        with pytest.raises(ConfigError, match="name of a produce command"):
            check_episode_id(name)
    shutil.copy(_episode(configs), configs / "episodes" / "publish.toml")
    result = _cli("check", "--configs", str(configs))
    assert result.exit_code == 2 and "'publish': it is the name of a produce command" in result.stderr


def test_every_command_name_is_reserved() -> None:
    import typer.main

    group = typer.main.get_group(app)
    assert set(group.commands) <= COMMAND_NAMES


def test_a_fifo_named_as_a_recording_is_not_a_regular_file_in_produce_check(configs: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "part.flac"
    os.mkfifo(fifo)
    _edit(_episode(configs), '"../raw/episode-258/part-1-lara.flac"', f'"{fifo}"')
    result = _cli("check", "--configs", str(configs))
    assert result.exit_code != 0
    assert "recording 1 is not a regular file" in result.stderr and "recording 1 not found" not in result.stderr
