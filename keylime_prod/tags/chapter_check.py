"""The check that every copy of the chapters agrees: the tagged MP3's CHAP/CTOC frames, ``chapters.json`` and the
show notes' ``(HH:MM:SS) Title`` lines, to 1 ms, with no overlap and nothing past the end of the decoded audio."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import ffmpeg
from ..chapters.artefact import read_chapters_json
from ..chapters.artefact import whole_ms as _ms
from ..errors import FFmpegError, TagError
from ..layout import BuildLayout
from . import id3
from .artefact import Tagged

log = logging.getLogger(__name__)

#: Agreement tolerance between the copies (ID3 itself has 1 ms resolution).
TOLERANCE_MS = 1


@dataclass(frozen=True)
class ChapterCheck:
    """What :func:`check_chapters` compared."""

    count: int
    duration: float  # decoded length of the MP3, seconds
    max_diff_ms: int
    notes_checked: bool = False
    mp3: Path | None = None
    chapters_json: Path | None = None

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {
            "mp3": str(self.mp3), "count": self.count, "duration": self.duration, "max_diff_ms": self.max_diff_ms,
            "notes_checked": self.notes_checked,
        }  # fmt: skip

    def describe(self) -> str:
        """One line for people."""
        name = self.mp3.name if self.mp3 else "the MP3"
        json_name = self.chapters_json.name if self.chapters_json else "the JSON"
        return (
            f"{self.count} chapters agree in {name} and {json_name}{' and the notes' if self.notes_checked else ''} "
            f"(max difference {self.max_diff_ms} ms, audio {self.duration:.3f} s)"
        )


def check_build(
    layout: BuildLayout, *, notes_lines: Sequence[tuple[int, str]] | None = None, notes_where: Path | None = None
) -> ChapterCheck:
    """:func:`check_chapters` on a build: its tagged MP3 and its ``chapters.json`` (and the notes' lines, if given)."""
    mp3 = Tagged.load(layout.tagged_json).mp3
    return check_chapters(mp3, layout.chapters_json, notes_lines=notes_lines, notes_where=notes_where)


def decoded_duration(mp3: Path) -> float:
    """Decode ``mp3`` fully with ffmpeg and return its length in seconds (gapless: encoder delay and padding removed).

    Any decoder complaint at ``-v error`` is a :class:`TagError`: a tagged file must decode cleanly. A whole-file
    decode: ffmpeg is killed after :func:`.ffmpeg.full_pass_timeout_of` the file (nothing waits forever).
    """
    args = ["-v", "error", "-i", str(mp3), "-map", "0:a:0", "-f", "null", "-progress", "pipe:1", "-"]
    proc = ffmpeg.run(args, where=mp3, timeout=ffmpeg.full_pass_timeout_of(mp3))
    err = proc.stderr.decode("utf-8", "replace").strip()
    if err:
        raise TagError(f"does not decode cleanly: {err.splitlines()[0]}", where=mp3)
    return parse_progress_time(proc.stdout.decode("utf-8", "replace"))


def parse_progress_time(text: str) -> float:
    """The last ``out_time_us=`` of ffmpeg's ``-progress`` output, in seconds."""
    found = re.findall(r"^out_time_us=(\d+)\s*$", text, flags=re.M)
    if not found:
        raise FFmpegError("ffmpeg reported no decoded duration")
    return int(found[-1]) / 1e6


def check_chapters(
    mp3: Path,
    chapters_json: Path,
    *,
    notes_lines: Sequence[tuple[int, str]] | None = None,
    notes_where: Path | None = None,
    tolerance_ms: int = TOLERANCE_MS,
) -> ChapterCheck:
    """Check that the MP3's CHAP/CTOC frames and ``chapters.json`` agree, and that neither overlaps or overruns.

    Fails with a one-line :class:`TagError` naming the chapter when titles differ, a start or end differs by more
    than ``tolerance_ms``, chapters overlap or are empty, or one ends after the decoded audio does. With
    ``notes_lines`` (the notes' chapter lines as (seconds, title), read from ``notes_where`` by the notes module),
    they must list the same chapters (to the whole second, rounded down).
    """
    mp3, chapters_json = Path(mp3), Path(chapters_json)
    in_id3 = id3.read_chapters(mp3)
    in_json = read_chapters_json(chapters_json)
    duration = decoded_duration(mp3)
    dur_ms = _ms(duration)
    if not in_id3:
        raise TagError("the MP3 has no chapters", where=mp3, hint=f"{chapters_json.name} lists {len(in_json)}")
    if len(in_id3) != len(in_json):
        raise TagError(f"{len(in_id3)} chapters in the MP3 but {len(in_json)} in {chapters_json.name}", where=mp3)

    worst = 0
    for source, marks in (("ID3", in_id3), (chapters_json.name, in_json)):
        for i, m in enumerate(marks):
            name = f"{source} chapter {i + 1} ({m.title!r})"
            end_ms = dur_ms if math.isinf(m.end) else _ms(m.end)
            if end_ms <= _ms(m.start):
                raise TagError(f"{name} is empty or ends before it starts", where=mp3)
            if i + 1 < len(marks) and end_ms > _ms(marks[i + 1].start) + tolerance_ms:
                raise TagError(
                    f"{name} overlaps the next one: ends at {end_ms} ms, next starts at {_ms(marks[i + 1].start)} ms",
                    where=mp3,
                )
            if end_ms > dur_ms + tolerance_ms:
                raise TagError(
                    f"{name} runs past the end of the audio: ends at {end_ms} ms, the file decodes to {dur_ms} ms",
                    where=mp3,
                )
    for i, (a, b) in enumerate(zip(in_id3, in_json, strict=True)):
        name = f"chapter {i + 1} ({a.title!r})"
        if a.title != b.title:
            raise TagError(f"{name}: title in {chapters_json.name} is {b.title!r}", where=mp3)
        b_end = duration if math.isinf(b.end) else b.end
        for what, x, y in (("start", a.start, b.start), ("end", a.end, b_end)):
            diff = abs(_ms(x) - _ms(y))
            worst = max(worst, diff)
            if diff > tolerance_ms:
                raise TagError(
                    f"{name}: {what} differs by {diff} ms (ID3 {_ms(x)} ms, {chapters_json.name} {_ms(y)} ms)",
                    where=mp3,
                )
        if (a.url or None) != (b.url or None):
            raise TagError(f"{name}: URL differs (ID3 {a.url!r}, {chapters_json.name} {b.url!r})", where=mp3)

    if notes_lines is not None:
        want = [(int(m.start + 1e-6), m.title) for m in in_json]
        if list(notes_lines) != want:
            got = ", ".join(f"{s}s {t!r}" for s, t in notes_lines) or "none"
            raise TagError(
                f"chapter lines in the notes ({got}) differ from {chapters_json.name} ({len(want)} chapters)",
                where=notes_where,
                hint="rebuild the notes after the chapters",
            )
    log.info("%s: %d chapters agree (max difference %d ms)", mp3.name, len(in_id3), worst)
    return ChapterCheck(len(in_id3), duration, worst, notes_lines is not None, mp3, chapters_json)
