"""The chapters stage: one list of chapters, and the check that every copy of it agrees.

Chapters come from one source: the episode config's ``[[chapters]]`` (times relative to the body, i.e. the joined
raw recordings) mapped onto the published timeline with :meth:`Master.body_to_episode`, merged with automatic
chapters for the intro, disclaimer and outro taken from ``master.json``'s timeline. The result is written as
Podcasting 2.0 ``chapters.json`` (version 1.2.0) here; the tag stage writes the same marks as ID3 CHAP/CTOC frames
and the notes stage prints them as ``(HH:MM:SS) Title`` lines (:meth:`Chapters.timestamp_lines`).

:func:`check_chapters` re-reads the MP3 and the JSON (and optionally the show notes) and fails when they disagree
by more than 1 ms, overlap, or run past the end of the decoded audio.

Times are kept in whole milliseconds from the start, because ID3v2 CHAP frames store milliseconds (ID3v2 Chapter
Frame Addendum, section 3): the JSON and the ID3 frames are derived from the same integers, so they cannot drift.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ffmpeg, fsutil, id3
from .artefacts import ChapterMark, Chapters, Master, Tagged
from .config import EpisodeConfig, TagSettings
from .errors import FFmpegError, TagError
from .layout import BuildLayout

log = logging.getLogger(__name__)

#: Podcasting 2.0 JSON chapters format version we write (podcastindex-org/podcast-namespace, chapters/jsonChapters.md).
JSON_VERSION = "1.2.0"
#: A configured first chapter this close to the body start is moved onto it instead of leaving a sliver before it.
SNAP_TO_BODY_S = 2.0
#: Agreement tolerance between the copies (the issue's 1 ms; ID3 itself has 1 ms resolution).
TOLERANCE_MS = 1

_AUTO = ("intro", "disclaimer", "outro")


def _ms(t: float) -> int:
    return round(t * 1000.0)


def _clock(t: float) -> str:
    s = int(t + 1e-6)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _raw_time(master: Master, t: float) -> float:
    """The time in the joined raw recordings that sits at episode time ``t`` (inverse of ``body_to_episode``)."""
    pieces = master.pieces or (master.body,)
    piece = pieces[0]
    for p in pieces:
        if t >= p.start:
            piece = p
    return piece.source_start + min(max(t - piece.start, 0.0), piece.duration)


def _is_url(s: str) -> bool:
    return bool(re.match(r"^https?://\S+$", s))


# ------------------------------------------------------------------------------------------------------ building


def build_chapters(
    episode: EpisodeConfig,
    master: Master,
    settings: TagSettings,
    layout: BuildLayout | None = None,
    *,
    images_dir: Path | None = None,
    write: bool = True,
) -> Chapters:
    """Merge the configured and the automatic chapters onto the episode timeline and write ``chapters.json``.

    ``layout`` defaults to the folder of ``master.json``. ``images_dir`` resolves relative chapter ``img`` paths
    (the episodes config folder). ``write=False`` only computes the marks (used to reload a finished stage).
    Raises :class:`TagError` naming the chapter when one starts past the end of the body or inside a part after it.
    """
    layout = layout or BuildLayout(master.report.parent, master.episode_id)
    duration_ms = math.floor(master.duration * 1000.0 + 1e-6)
    body = master.body
    titles = {
        "intro": settings.intro_chapter,
        "disclaimer": settings.disclaimer_chapter,
        "outro": settings.outro_chapter,
    }

    # (start_ms, title, url, img) before ends are known.
    starts: list[tuple[int, str, str | None, str | None]] = []
    for seg in master.segments:
        if seg.name in _AUTO and titles[seg.name].strip() and _ms(seg.start) < duration_ms:
            starts.append((max(0, _ms(seg.start)), titles[seg.name].strip(), None, None))

    # Configured chapters live inside the body, and before any part that starts after the body does (the outro,
    # or a disclaimer placed at the end): with crossfades the body's end overlaps that part.
    body_lo = _ms(body.start)
    body_end = min(_ms(body.end), duration_ms)
    after = [s for s in master.segments if s.name != "body" and s.start > body.start]
    nxt = min(after, key=lambda s: s.start) if after else None
    body_hi = min(body_end, _ms(nxt.start)) if nxt else body_end
    configured: list[tuple[int, str, str | None, str | None]] = []
    for i, ch in enumerate(episode.chapters, start=1):
        t = _ms(master.body_to_episode(ch.start))
        where = f"chapter {i} ({ch.title!r}, start {_clock(ch.start)})"
        if t >= body_hi:
            if t >= body_end or nxt is None:
                raw_end = _raw_time(master, body.end)
                what = f"is past the end of the body, which ends at {_clock(raw_end)} in the raw recordings"
            else:
                what = (
                    f"is inside the {nxt.name}, which starts at {_clock(_raw_time(master, nxt.start))} of the raw "
                    f"recordings (crossfaded over the end of the body)"
                )
            raise TagError(
                f"{where} {what}: it would start at {t / 1000:.3f}s of the episode, the body part ends at "
                f"{body_hi / 1000:.3f}s",
                where=f"{episode.id} chapters",
                hint="give chapter starts relative to the start of the raw recordings, before their end",
            )
        # A start inside trimmed leading silence, or just after the body starts, is moved onto the body start.
        if t < body_lo or (not configured and t - body_lo < SNAP_TO_BODY_S * 1000):
            t = body_lo
        if configured and t <= configured[-1][0]:
            raise TagError(
                f"{where} lands on the same millisecond as the chapter before it ({t / 1000:.3f}s) once the "
                "trimmed leading silence is removed",
                where=f"{episode.id} chapters",
                hint="move it later or remove one of the two",
            )
        img = ch.img
        if img and not _is_url(img):
            p = Path(img).expanduser()
            if not p.is_absolute() and images_dir is not None:
                p = (Path(images_dir) / p).resolve()
            if not p.is_file():
                raise TagError(f"{where}: image not found", where=p, hint="fix the img path or use an http(s) URL")
            img = str(p)
        configured.append((t, ch.title, ch.url, img))

    if body_lo < body_hi and (not configured or configured[0][0] > body_lo):
        # Cover the body from its start, so players show a chapter for every moment of speech.
        configured.insert(0, (body_lo, settings.body_chapter.strip() or episode.title, None, None))
    # The body chapter(s) win over an automatic chapter that starts at the same millisecond.
    taken = {c[0] for c in configured}
    merged = sorted([s for s in starts if s[0] not in taken] + configured, key=lambda c: c[0])

    marks = []
    for i, (start, title, url, img) in enumerate(merged):
        end = merged[i + 1][0] if i + 1 < len(merged) else duration_ms
        if end <= start:
            raise TagError(f"chapter {title!r} would be empty ({start} ms to {end} ms)", where=f"{episode.id} chapters")
        marks.append(ChapterMark(title=title, start=start / 1000.0, end=end / 1000.0, url=url, img=img))

    json_path = layout.chapters_json
    result = Chapters(marks=tuple(marks), json_path=json_path)
    if write:
        fsutil.write_json(json_path, to_json(result))
        log.info("%s: %d chapters -> %s", episode.id, len(marks), json_path)
    return result


def to_json(chapters: Chapters) -> dict[str, Any]:
    """The Podcasting 2.0 JSON chapters document (version 1.2.0).

    ``img`` is written only for http(s) URLs: a local image is embedded in the ID3 CHAP frame instead, and the
    JSON format has no way to carry image data.
    """
    items = []
    for m in chapters.marks:
        item: dict[str, Any] = {"startTime": m.start, "endTime": m.end, "title": m.title}
        if m.url:
            item["url"] = m.url
        if m.img and _is_url(m.img):
            item["img"] = m.img
        items.append(item)
    return {"version": JSON_VERSION, "chapters": items}


# ------------------------------------------------------------------------------------------------------ reading


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


def read_chapters_json(path: Path) -> tuple[ChapterMark, ...]:
    """Read a Podcasting 2.0 ``chapters.json``; a missing ``endTime`` runs to the next chapter (last: ``inf``)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise TagError("chapters file not found", where=path, hint="run `produce chapters EPISODE`") from None
    except (OSError, ValueError) as e:
        raise TagError(f"not readable JSON: {e}", where=path) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("chapters"), list):
        raise TagError("not a Podcasting 2.0 chapters file (no 'chapters' list)", where=path)
    if doc.get("version") != JSON_VERSION:
        raise TagError(f"version is {doc.get('version')!r}, expected {JSON_VERSION!r}", where=path)
    raw = doc["chapters"]
    marks = []
    for i, c in enumerate(raw):
        if not isinstance(c, dict) or not isinstance(c.get("startTime"), (int, float)) or "title" not in c:
            raise TagError(f"chapter {i + 1} needs a numeric startTime and a title", where=path)
        end = c.get("endTime")
        if end is None:
            end = raw[i + 1]["startTime"] if i + 1 < len(raw) else math.inf
        marks.append(
            ChapterMark(title=str(c["title"]), start=float(c["startTime"]), end=float(end), url=c.get("url"),
                        img=c.get("img"))
        )  # fmt: skip
    return tuple(marks)


def decoded_duration(mp3: Path) -> float:
    """Decode ``mp3`` fully with ffmpeg and return its length in seconds (gapless: encoder delay and padding removed).

    Any decoder complaint at ``-v error`` is a :class:`TagError`: a tagged file must decode cleanly. A whole-file
    decode: ffmpeg is killed after :func:`.ffmpeg.full_pass_timeout_of` the file (issue 13: nothing waits forever).
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


# ------------------------------------------------------------------------------------------------------ checking


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
