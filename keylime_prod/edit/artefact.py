"""The editing step's artefacts: cut candidates on a recording's timeline (``cuts.json``), and the edit applied to
the master (``edit.json``: the cut master and the :class:`CutMap` every other timeline goes through), each with its
one writer and its one reader."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter
from pydantic.dataclasses import dataclass as model

from .. import fsutil
from ..audio.artefact import Master
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


# ------------------------------------------------------------------------------------------------ the cut map


@model(frozen=True, config=ConfigDict(extra="forbid"))
class CutMap:
    """The spans taken out of a file (``cuts``) and replaced by room tone (``muted``), in seconds on the file as it
    was before the cuts, sorted and apart. :meth:`time` is the one map from that timeline onto the cut file's:
    words, captions, chapters and the master's pieces all go through it (docs/editing.md, "Every timeline")."""

    cuts: tuple[tuple[float, float], ...] = ()
    muted: tuple[tuple[float, float], ...] = ()

    @property
    def removed(self) -> float:
        """Seconds taken out in all."""
        return sum(b - a for a, b in self.cuts)

    def time(self, t: float) -> float:
        """Where time ``t`` of the uncut file sits in the cut one: ``t`` less every cut that ends before it; a time
        inside a cut lands on the join (where what follows the cut now begins)."""
        out = t
        for a, b in self.cuts:
            if t >= b:
                out -= b - a
            elif t > a:
                out -= t - a
            else:
                break
        return out

    def keeps(self, start: float, end: float) -> bool:
        """Whether a word at ``start``-``end`` is still heard: its middle is neither cut nor muted."""
        mid = (start + end) / 2
        return not any(a <= mid < b for a, b in (*self.cuts, *self.muted))


@model(frozen=True, config=ConfigDict(extra="forbid"))
class Applied:
    """One stretch the edit took out (``cut``) or covered with room tone (``mute``): the candidate's id and kind,
    where it was asked for (``start``/``end``) and where the splice fell (``at_start``/``at_end``: the ends moved to
    the quietest moment near them), all on the uncut timeline."""

    id: str
    kind: str
    action: Literal["cut", "mute"]
    start: float
    end: float
    at_start: float
    at_end: float


@model(frozen=True, config=ConfigDict(extra="forbid"))
class Edited:
    """The edit stage's result: the master after the cuts (``master``: the file Whisper heard when nothing was
    applied), the cut map that moves every other timeline, what was applied and what still waits for the
    producer's word. ``edit.json`` is its file."""

    master: Master
    map: CutMap
    applied: tuple[Applied, ...]
    candidates: int
    open: tuple[str, ...]  # ids proposed and neither accepted nor rejected
    detect_seconds: float
    apply_seconds: float

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {
            "candidates": self.candidates,
            "applied": len(self.applied),
            "removed_seconds": round(self.map.removed, 3),
            "open": list(self.open),
            "mp3": str(self.master.mp3),
        }

    def describe(self) -> str:
        """One line for people."""
        return (
            f"{self.master.episode_id}: {len(self.applied)} of {self.candidates} cut candidates applied "
            f"({self.map.removed:.1f} s taken out), {len(self.open)} waiting for a decision"
        )

    def write(self, path: Path) -> Path:
        """Write ``edit.json`` (atomically): the one writer of the file. The master is named by its ``master.json``,
        relative to this file's folder."""
        doc = fsutil.dump_json_as(self, _EDITED)
        doc["master"] = self.master.report.relative_to(Path(path).parent).as_posix()
        return fsutil.write_json(Path(path), {"schema": EDITED_SCHEMA, **doc})

    @classmethod
    def load(cls, path: Path) -> Edited:
        """Read ``edit.json`` back, with the master it names: the one reader of the file."""
        path = Path(path)

        def prepare(d: dict[str, Any]) -> dict[str, Any]:
            if d.pop("schema", EDITED_SCHEMA) != EDITED_SCHEMA:
                raise ValueError(f"not a {EDITED_SCHEMA} document")
            return {**d, "master": Master.load(path.parent / d["master"])}

        return fsutil.read_json_as(
            path, _EDITED, EditError, what="edit record", missing="the episode has not been edited",
            hint="run `produce cuts EPISODE` or `produce EPISODE`", prepare=prepare,
        )  # fmt: skip


EDITED_SCHEMA = "keylime-prod/edit/1"
_EDITED: TypeAdapter[Edited] = TypeAdapter(Edited)
