"""The speakers stage's artefact: who speaks when in the raw recordings (``turns.json``), each voice found with the
enrolled host it matched, and its one reader and writer.

Times are on the joined raw recordings (the files laid end to end, untrimmed), as ``Master.body_to_episode`` takes
them, so the mastering stage can level each speaker and the transcript can carry the turns onto the published file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter
from pydantic.dataclasses import dataclass

from .. import fsutil
from ..errors import SpeakersError

_FILE = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=_FILE)
class Turn:
    """One stretch of one voice: ``label`` is the voice's (``"Speaker 1"``...), ``start``/``end`` in seconds on the
    joined raw recordings. Two turns may overlap in time: two people talking at once."""

    label: str
    start: float
    end: float


@dataclass(frozen=True, config=_FILE)
class Voice:
    """One voice found: its label, how much it speaks, and the enrolled host it matched (``host``, with the cosine
    ``similarity`` of its centroid to that host's sample; the best one even when under the threshold, for the
    report)."""

    label: str
    seconds: float
    host: str | None = None
    similarity: float | None = None
    nearest_host: str | None = None


@dataclass(frozen=True, config=_FILE)
class Turns:
    """The speakers stage's result. ``method`` says what found the turns (``off`` when diarization did not run: no
    turns, every word keeps the episode's speaker)."""

    turns: tuple[Turn, ...] = ()
    voices: tuple[Voice, ...] = ()
    method: str = "off"
    sources: tuple[str, ...] = ()
    audio_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    settings: dict[str, Any] | None = None

    @property
    def found(self) -> bool:
        """Whether turns were found (diarization ran and heard speech)."""
        return bool(self.turns)

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {
            "method": self.method,
            "voices": {v.label: v.host for v in self.voices},
            "turns": len(self.turns),
            "seconds": self.elapsed_seconds,
        }


_TURNS: TypeAdapter[Turns] = TypeAdapter(Turns)


def write_turns(path: Path, turns: Turns) -> Path:
    """Write ``turns.json`` (atomically): the one writer of the file."""
    return fsutil.write_json_as(Path(path), turns, _TURNS)


def read_turns(path: Path) -> Turns:
    """Read ``turns.json``: the one reader of the file."""
    return fsutil.read_json_as(
        Path(path), _TURNS, SpeakersError, what="speaker turns", missing="no speaker turns found",
        hint="run `produce EPISODE` again to find them",
    )  # fmt: skip


__all__ = ["Turn", "Turns", "Voice", "read_turns", "write_turns"]
