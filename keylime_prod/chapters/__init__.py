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

import logging
import math
from pathlib import Path

from .. import fsutil, timecode
from ..audio.artefact import Master
from ..config import EpisodeConfig, TagSettings
from ..errors import TagError
from ..layout import BuildLayout
from .artefact import ChapterMark, Chapters, is_url, to_json, whole_ms

log = logging.getLogger(__name__)

#: A configured first chapter this close to the body start is moved onto it instead of leaving a sliver before it.
SNAP_TO_BODY_S = 2.0

_AUTO = ("intro", "disclaimer", "outro")


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
        if seg.name in _AUTO and titles[seg.name].strip() and whole_ms(seg.start) < duration_ms:
            starts.append((max(0, whole_ms(seg.start)), titles[seg.name].strip(), None, None))

    # Configured chapters live inside the body, and before any part that starts after the body does (the outro,
    # or a disclaimer placed at the end): with crossfades the body's end overlaps that part.
    body_lo = whole_ms(body.start)
    body_end = min(whole_ms(body.end), duration_ms)
    after = [s for s in master.segments if s.name != "body" and s.start > body.start]
    nxt = min(after, key=lambda s: s.start) if after else None
    body_hi = min(body_end, whole_ms(nxt.start)) if nxt else body_end
    configured: list[tuple[int, str, str | None, str | None]] = []
    for i, ch in enumerate(episode.chapters, start=1):
        t = whole_ms(master.body_to_episode(ch.start))
        where = f"chapter {i} ({ch.title!r}, start {timecode.hms(ch.start)})"
        if t >= body_hi:
            if t >= body_end or nxt is None:
                raw_end = master.episode_to_body(body.end)
                what = f"is past the end of the body, which ends at {timecode.hms(raw_end)} in the raw recordings"
            else:
                raw_next = master.episode_to_body(nxt.start)
                what = (
                    f"is inside the {nxt.name}, which starts at {timecode.hms(raw_next)} of the raw recordings "
                    "(crossfaded over the end of the body)"
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
        if img and not is_url(img):
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
