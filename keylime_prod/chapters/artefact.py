"""The chapters stage's artefact: one ordered list of marks, and the Podcasting 2.0 ``chapters.json`` it is written
as and read back from."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import timecode
from ..errors import TagError

#: Podcasting 2.0 JSON chapters format version we write (podcastindex-org/podcast-namespace, chapters/jsonChapters.md).
JSON_VERSION = "1.2.0"


@dataclass(frozen=True)
class ChapterMark:
    """One chapter on the final timeline (seconds), as ID3 CHAP, Podcasting 2.0 JSON and show notes use it."""

    title: str
    start: float
    end: float
    url: str | None = None
    img: str | None = None


@dataclass(frozen=True)
class Chapters:
    """The chapters stage's result: one ordered list of marks, and the Podcasting 2.0 ``chapters.json`` written."""

    marks: tuple[ChapterMark, ...]
    json_path: Path | None = None

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {"json": str(self.json_path), "count": len(self.marks)}

    def timestamp_lines(self) -> tuple[str, ...]:
        """``(HH:MM:SS) Title`` per mark, for the show notes (Spotify builds chapters only from these lines).

        Seconds are rounded down, so a listener who seeks to the printed time never lands after the chapter start.
        """
        return tuple(f"({timecode.hms(m.start)}) {m.title}" for m in self.marks)


def whole_ms(t: float) -> int:
    """Seconds to the whole milliseconds ID3v2 CHAP frames store (ID3v2 Chapter Frame Addendum, section 3)."""
    return round(t * 1000.0)


def is_url(s: str) -> bool:
    """Whether a chapter ``url``/``img`` is an http(s) URL (else a local file, embedded in ID3 only)."""
    return bool(re.match(r"^https?://\S+$", s))


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
        if m.img and is_url(m.img):
            item["img"] = m.img
        items.append(item)
    return {"version": JSON_VERSION, "chapters": items}


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
