"""The transcript web page and what every page shares: templates that escape by default, one stylesheet.

Pages are read back with lxml's HTML parser (tests/support/pages.py), never searched as strings for what is absent.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources

import pytest
from support.pages import HOSTILE, read_page, texts

from keylime_prod import pages, transcript
from keylime_prod.errors import NotesError
from keylime_prod.transcript.artefact import TranscriptSegment

#: The page's own script: clicking a timestamp seeks the player.
SEEK = resources.files("keylime_prod.transcript").joinpath("templates/seek.js").read_text("utf-8").strip()

SEGMENTS = (
    TranscriptSegment(0.0, 4.0, "Welcome to KeyLIME.", "Lara Varpio"),
    TranscriptSegment(4.2, 8.0, "Today the paper.", "Lara Varpio"),
    TranscriptSegment(12.0, 15.0, "Thanks, Lara.", "Jason Frank"),
    TranscriptSegment(12.6, 15.0, "Views are our own.", transcript.DISCLAIMER_SPEAKER),
    TranscriptSegment(3725.5, 3730.0, "Bye.", "Jason Frank"),
)
PAGE = transcript.Page(
    title="I'm a loser, baby!",
    show="KeyLIME",
    number=258,
    date=dt.date(2019, 11, 6),
    link="https://keylime.example.org/episodes/258?a=1&b=2",
    audio="episode-258.mp3",
)


def test_transcript_page_shows_header_player_and_a_paragraph_per_turn() -> None:
    doc = read_page(transcript.render_html(SEGMENTS, language="en", page=PAGE), scripts=[SEEK])
    assert doc.get("lang") == "en"
    assert texts(doc, "//title") == ["I'm a loser, baby! · KeyLIME (transcript)"]
    assert texts(doc, "//header/p[@class='show']") == ["KeyLIME"] and texts(doc, "//h1") == ["I'm a loser, baby!"]
    assert texts(doc, "//p[@class='meta']") == ["Episode 258 · 6 November 2019"]
    assert doc.xpath("//p[@class='meta']/time/@datetime") == ["2019-11-06"]
    assert doc.xpath("//p[@class='back']/a/@href") == [PAGE.link]
    assert doc.xpath("//audio[@id='player']/@src") == ["episode-258.mp3"]
    rows = doc.xpath("//main/p")
    # One paragraph per speaker turn; the speaker is named only where it changes; ids stay unique within a second.
    assert [p.get("id") for p in rows] == ["t0", "t12", "t12-2", "t3725"]
    assert [p.text_content() for p in rows] == [
        "00:00:00 Lara Varpio: Welcome to KeyLIME. Today the paper.",
        "00:00:12 Jason Frank: Thanks, Lara.",
        "00:00:12 Disclaimer: Views are our own.",
        "01:02:05 Jason Frank: Bye.",
    ]
    assert [p.xpath("./a/@href")[0] for p in rows] == ["#t0", "#t12", "#t12-2", "#t3725"]
    assert [p.xpath("./a/@data-start")[0] for p in rows] == ["0.000", "12.000", "12.600", "3725.500"]
    assert rows[3].xpath("./a/time/@datetime") == ["PT3725.500S"]
    assert [p.xpath("./span/@class") for p in rows] == [["speaker"], ["speaker"], ["speaker disclaimer"], ["speaker"]]


def test_transcript_page_without_episode_details() -> None:
    doc = read_page(transcript.render_html(SEGMENTS[:1], title="Only a title"), scripts=[SEEK])
    assert texts(doc, "//title") == texts(doc, "//h1") == ["Only a title"]
    assert not doc.xpath("//p[@class='show' or @class='meta' or @class='back'] | //audio")
    empty = read_page(transcript.render_html((), page=transcript.Page(number=3)), scripts=[SEEK])
    assert texts(empty, "//p[@class='meta']") == ["Episode 3"] and not empty.xpath("//main/p")


def test_hostile_text_in_the_transcript_page_is_shown_as_text() -> None:
    """Transcript text, speaker names and the episode's titles holding markup reach the page as text."""
    segments = (
        TranscriptSegment(1.0, 3.0, HOSTILE, f"{HOSTILE} speaker"),
        TranscriptSegment(9.0, 12.0, "Fine.", "Lara"),
    )
    page = transcript.Page(
        title=HOSTILE,
        show=f"{HOSTILE} show",
        number=1,
        link="https://example.org/?a=1&b=\"x\"'y'",
        audio="https://cdn.example.org/ep.mp3?sig=a&b=<c>",
    )
    doc = read_page(transcript.render_html(segments, language="en", page=page), scripts=[SEEK])
    assert texts(doc, "//title") == [f"{HOSTILE} · {HOSTILE} show (transcript)"]
    assert texts(doc, "//h1") == [HOSTILE] and texts(doc, "//p[@class='show']") == [f"{HOSTILE} show"]
    assert texts(doc, "//main/p[1]/span") == [f"{HOSTILE} speaker:"]
    assert texts(doc, "//main/p[1]") == [f"00:00:01 {HOSTILE} speaker: {HOSTILE}"]
    assert doc.xpath("//p[@class='back']/a/@href") == [page.link]
    assert doc.xpath("//audio/@src") == [page.audio]


def test_a_missing_template_is_the_stages_error() -> None:
    with pytest.raises(NotesError, match=r"keylime_prod.notes/templates/absent.html.j2: cannot render the page"):
        pages.render("keylime_prod.notes", "absent.html.j2", NotesError)
    with pytest.raises(NotesError, match=r"UndefinedError"):  # a variable the template needs but was not given
        pages.render("keylime_prod.notes", "notes.html.j2", NotesError, title="T", language="en")
