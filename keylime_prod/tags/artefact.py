"""The tag stage's artefact: the tagged MP3 and what was written into it (``tagged.json``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import TagError
from ..fsutil import reading_report


@dataclass(frozen=True)
class Tagged:
    """The tag stage's result: the tagged MP3 and what was written into it."""

    mp3: Path
    id3_version: int
    frames: tuple[str, ...] = ()
    chapters: int = 0
    sha256: str = ""  # of the tagged MP3 (master.json's audio_sha256 is the untagged file's)
    size_bytes: int = 0
    #: The cover's file name, never its local path: tagged.json travels with the build folder.
    artwork: str | None = None
    report: Path | None = None

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {
            "mp3": str(self.mp3),
            "id3_version": self.id3_version,
            "frames": len(self.frames),
            "chapters": self.chapters,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }

    def describe(self) -> str:
        """One line for people."""
        return (
            f"tagged ID3v2.{self.id3_version}, {len(self.frames)} frames, {self.chapters} chapters, "
            f"{self.size_bytes:,} bytes"
        )

    def to_json(self) -> dict[str, Any]:
        """The ``tagged.json`` document (paths relative to its folder where they live there)."""
        d = asdict(self)
        # Relative to tagged.json's folder (the tagged MP3 sits in a folder of its own below it).
        d["mp3"] = Path(os.path.relpath(self.mp3, self.report.parent)).as_posix() if self.report else self.mp3.name
        d["report"] = self.report.name if self.report else None
        return {"schema": "keylime-prod/tagged/1", **d}

    @classmethod
    def load(cls, report: Path) -> Tagged:
        """Read ``tagged.json`` back (the MP3 path resolves against its folder)."""
        report = Path(report)
        hint = "run `produce tag EPISODE` first"
        with reading_report(report, TagError, "no tag report found", "tag report", hint) as d:
            d["mp3"] = report.parent / d["mp3"]
            d["artwork"] = Path(d["artwork"]).name if d.get("artwork") else None  # older files held a path
            d["report"] = report
            d["frames"] = tuple(d.get("frames", ()))
            return cls(**d)
