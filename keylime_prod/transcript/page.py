"""The transcript web page (``transcript.html``, ``text/html``): the episode's header, an ``<audio>`` player, and a
paragraph per speaker turn, each led by a timestamp link that seeks the player.

The page is ``templates/transcript.html.j2`` with autoescaping on (:mod:`keylime_prod.pages`); this module only
decides what each paragraph says: its anchor, its timestamp and whether it names its speaker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from .. import pages, timecode
from ..errors import TranscriptError
from .artefact import TranscriptSegment
from .captions import DISCLAIMER_SPEAKER, paragraphs


@dataclass(frozen=True)
class Page:
    """What the transcript web page says about its episode and which audio its player plays.

    ``audio`` is the player's ``src``: locally the MP3's name beside the page, published whatever URL the pipeline
    maps it to.
    """

    title: str = "Transcript"
    show: str = ""
    number: int | None = None
    date: dt.date | None = None
    link: str | None = None
    audio: str | None = None


@dataclass(frozen=True)
class _Row:
    """One paragraph of the page: a speaker turn (or part of one) and where it starts."""

    anchor: str
    start: float
    text: str
    speaker: str | None  # only where the speaker changes
    disclaimer: bool = False

    @property
    def stamp(self) -> str:
        """``HH:MM:SS``, what the timestamp link shows."""
        return timecode.hms_ms(self.start)[:8]


def _rows(segments: Sequence[TranscriptSegment]) -> list[_Row]:
    rows = []
    anchors: set[str] = set()
    last: str | None = None
    for para in paragraphs(segments):
        first = para[0]
        who = first.speaker if first.speaker and first.speaker != last else None
        last = first.speaker
        sec = int(first.start)
        anchor = f"t{sec}" if f"t{sec}" not in anchors else f"t{sec}-{len(anchors)}"  # ids stay unique
        anchors.add(anchor)
        text = " ".join(s.text for s in para)
        rows.append(_Row(anchor, first.start, text, who, disclaimer=who == DISCLAIMER_SPEAKER))
    return rows


def render_html(
    segments: Sequence[TranscriptSegment], *, language: str = "en", page: Page | None = None, title: str | None = None
) -> str:
    """The transcript web page of ``segments``; ``page`` (or just a ``title``) says what the header shows."""
    page = page or Page(title=title or "Transcript")
    return pages.render(
        __name__,
        "transcript.html.j2",
        TranscriptError,
        page=page,
        rows=_rows(segments),
        language=language,
        date_text=page.date.strftime("%d %B %Y").lstrip("0") if page.date is not None else "",
    )
