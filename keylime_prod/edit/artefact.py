"""The editing step's artefact: cut candidates on a recording's timeline (``cuts.json``), with its one writer and
its one reader."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import fsutil
from ..errors import EditError
from ..fsutil import reading_report

Kind = Literal["pause", "hesitation", "retake"]
Action = Literal["cut", "mute", "propose"]
SCHEMA = "keylime-prod/cuts/1"


def candidate_id(kind: str, start: float) -> str:
    """A stable id from the kind and the start to the millisecond (``hesitation-0003649``): the same audio and
    words give the same ids, so a producer's decisions still point at the same candidates after a re-run."""
    return f"{kind}-{round(start * 1000):07d}"


@dataclass(frozen=True)
class Candidate:
    """One stretch proposed for cutting, ``start``/``end`` in seconds: exactly what would be taken out (for a pause,
    the middle of it; ``natural_pause_s`` or the speaker's own rhythm is left)."""

    id: str
    kind: Kind
    start: float
    end: float
    action: Action
    confidence: float  # 0-1: how sure the detector is that cutting this loses no speech
    before: str  # a few words before, for the producer to find it by ear
    after: str
    text: str = ""  # what Whisper wrote over the stretch (a hesitation written as a word, a first attempt)
    reason: str = ""


@dataclass(frozen=True)
class Cuts:
    """Every cut candidate of one recording, and how they were found."""

    source: str
    seconds: float
    candidates: tuple[Candidate, ...]
    pause_rhythm_s: float  # the speaker's own pause length (the settings' percentile of their pauses)
    kept_pause_s: float  # what a long pause is shortened to
    settings: dict[str, Any] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def of(self, kind: Kind) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.kind == kind)


def write_cuts(path: Path, cuts: Cuts) -> Path:
    """Write ``cuts.json`` atomically."""
    return fsutil.write_json(Path(path), {"schema": SCHEMA, **asdict(cuts)})


def read_cuts(path: Path) -> Cuts:
    """Read ``cuts.json`` back."""
    path = Path(path)
    with reading_report(path, EditError, "no cut candidates found", "cuts file", "run the editing step") as d:
        d.pop("schema", None)
        d["candidates"] = tuple(Candidate(**c) for c in d["candidates"])
        return Cuts(**d)
