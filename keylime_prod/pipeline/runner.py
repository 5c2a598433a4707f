"""The loop that runs the stages: one :class:`Run` per episode, logging, timing, skip-if-cached and resume.

Resume: ``build/<id>/state.json`` records, per stage, a key (a hash of everything the stage's output depends on)
and when it finished. A re-run whose key matches loads the artefact instead of redoing the work (beets'
``importer/state.py`` idea). What the stages are and how each one is called lives in :mod:`.stages`, which hands
its tuple to every function here (``pipeline/__init__.py`` binds it), so this module never imports it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import ConfigDict, TypeAdapter
from pydantic.dataclasses import dataclass as model

from .. import fsutil
from ..audio.artefact import Master
from ..chapters.artefact import Chapters
from ..config import EpisodeConfig, Settings, load_episode
from ..edit.artefact import Edited
from ..errors import KeylimeError
from ..layout import BuildLayout
from ..notes.artefact import Notes
from ..progress import ProgressFn, null_progress
from ..publish import Published
from ..report import Report
from ..tags.artefact import Tagged
from ..transcript.artefact import Heard, Transcript

log = logging.getLogger(__name__)

A = TypeVar("A")
C = TypeVar("C", covariant=True)


@dataclass(frozen=True)
class Stage(Generic[C]):
    """One pipeline step: ``run`` does the work and returns the stage's ``artefact``; ``key`` (optional) makes it
    cacheable; ``load`` reads its output back from the build folder.

    ``needs`` names the stages whose artefacts ``run`` requires: asking for a stage runs (or loads, when cached)
    those first, so no caller carries its own list of stages.
    """

    name: str
    artefact: type[C]
    run: Callable[[Run], C]
    key: Callable[[Run], str] | None = None
    load: Callable[[Run], C | None] | None = None
    needs: tuple[str, ...] = ()


#: The stages of a pipeline, in the order they run.
Stages = tuple[Stage[object], ...]


@dataclass
class Run:
    """The mutable context of one pipeline run over one episode.

    ``results`` holds each stage's artefact by stage name; adapters read them through the typed accessors
    (:meth:`master`, :meth:`transcript`, ...), which load a stage's output from the build folder when this run has
    not made it.
    """

    settings: Settings
    episode: EpisodeConfig
    layout: BuildLayout
    #: The pipeline this run belongs to (``pipeline.STAGES``): where each artefact comes from.
    stages: Stages
    force: bool = False
    progress: ProgressFn = null_progress
    results: dict[str, object] = field(default_factory=dict)

    def get(self, kind: type[A]) -> A | None:
        """The artefact of type ``kind`` from this run or loaded from the build folder; ``None`` if absent (or if
        no stage of the pipeline makes one)."""
        stage = next((s for s in self.stages if s.artefact is kind), None)
        if stage is None:
            return None
        if stage.name not in self.results:
            self.results[stage.name] = stage.load(self) if stage.load else None
        art = self.results[stage.name]
        if art is None:
            return None
        if not isinstance(art, kind):  # a stage's run or load returned another type: a bug, not a user error
            raise TypeError(f"stage {stage.name!r} gave a {type(art).__name__}, not a {kind.__name__}")
        return art

    def need(self, kind: type[A]) -> A:
        """Like :meth:`get`, but a missing artefact is an error that says which command makes it."""
        art = self.get(kind)
        if art is None:
            name = next((s.name for s in self.stages if s.artefact is kind), kind.__name__)
            raise KeylimeError(
                f"stage {name!r} has not run for {self.episode.id}",
                where=self.layout.root,
                hint=f"run `produce {name} {self.episode.id}` or `produce {self.episode.id}` first",
            )
        return art

    def master(self) -> Master:
        """The master (every later stage needs one)."""
        return self.need(Master)

    def transcript(self) -> Transcript | None:
        """The transcript, if the episode has been transcribed."""
        return self.get(Transcript)

    def chapters(self) -> Chapters | None:
        """The chapter marks, if the chapters stage has run."""
        return self.get(Chapters)

    def notes(self) -> Notes | None:
        """The show notes, if written."""
        return self.get(Notes)

    def tagged(self) -> Tagged | None:
        """The tagged MP3, if tagged."""
        return self.get(Tagged)

    def report(self) -> Report | None:
        """The production report, if written."""
        return self.get(Report)


@dataclass(frozen=True)
class StageResult:
    """What happened to one stage in a run."""

    name: str
    seconds: float
    cached: bool


@dataclass(frozen=True)
class RunResult:
    """The outcome of :func:`run_episode`."""

    episode_id: str
    build_dir: Path
    stages: tuple[StageResult, ...]
    #: Each stage's artefact by stage name, in the pipeline's order (untyped for the CLI's sake; :meth:`get` gives
    #: one typed).
    artefacts: dict[str, Any]

    #: The key each artefact's summary has in :meth:`to_json` (``--json`` output), by stage.
    JSON_KEYS: ClassVar[dict[str, str]] = {"transcribe": "transcript", "notes": "notes", "tag": "tag"}

    def get(self, kind: type[A]) -> A | None:
        """The artefact of type ``kind`` this run made or loaded, if any."""
        return next((a for a in self.artefacts.values() if isinstance(a, kind)), None)

    def to_json(self) -> dict[str, Any]:
        """A machine-readable summary of the run (``produce EPISODE --json``): each artefact summarises itself."""
        out: dict[str, Any] = {
            "episode": self.episode_id,
            "build_dir": str(self.build_dir),
            "stages": [{"name": s.name, "seconds": round(s.seconds, 2), "cached": s.cached} for s in self.stages],
        }
        for stage, art in self.artefacts.items():
            if isinstance(art, Published):
                out[self.JSON_KEYS.get(stage, stage)] = art.to_json()
            elif isinstance(art, (Master, Heard, Edited, Transcript, Chapters, Notes, Tagged, Report)):
                out[self.JSON_KEYS.get(stage, stage)] = art.summary()
        return out


# ------------------------------------------------------------------------------------------------- state.json


@model(frozen=True, config=ConfigDict(extra="forbid"))
class StageRecord:
    """One stage's line in ``state.json``: the key its output was made with (``None``: never cached), when it
    finished and how long it took."""

    key: str | None
    finished: str
    seconds: float


#: ``state.json``: a record per stage that finished, by stage name, in the order they finished.
State = dict[str, StageRecord]
_STATE: TypeAdapter[State] = TypeAdapter(State)


def read_state(path: Path) -> State:
    """Read ``state.json`` (no file: an empty state). A file that is not one is a :class:`KeylimeError`."""
    if not Path(path).is_file():
        return {}
    return fsutil.read_json_as(
        path, _STATE, KeylimeError, what="stage state", missing="no stage state", hint="delete it and re-run"
    )


def write_state(path: Path, state: State) -> Path:
    """Write ``state.json`` (atomically)."""
    return fsutil.write_json_as(path, state, _STATE)


def _state_or_fresh(layout: BuildLayout) -> State:
    # The state only saves work: a damaged one means every stage is made again, not that the run stops.
    try:
        return read_state(layout.state_json)
    except KeylimeError as e:
        log.warning("%s; every stage runs again", e)
        return {}


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------------ running


def stages_up_to(stages: Stages, *names: str) -> list[str]:
    """``names`` and every stage they need, directly or not, in the order of ``stages``."""
    by_name = {s.name: s for s in stages}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeylimeError(f"unknown stage(s): {', '.join(unknown)}", hint=f"stages: {', '.join(by_name)}")
    wanted = set(names)
    todo = list(names)
    while todo:
        for need in by_name[todo.pop()].needs:
            if need not in wanted:
                wanted.add(need)
                todo.append(need)
    return [s.name for s in stages if s.name in wanted]


def mark_up_to_date(stages: Stages, settings: Settings, episode_id: str, stage: str) -> None:
    """Record ``stage``'s output, already in the build folder, as up to date with the current inputs.

    For a result made outside the pipeline (a master rendered by another tool, or a test's fixture): later runs
    load it instead of redoing the stage, until its inputs change.
    """
    layout = settings.layout(episode_id)
    run = Run(settings=settings, episode=load_episode(settings.configs_dir, episode_id), layout=layout, stages=stages)
    step = next(s for s in stages if s.name == stage)
    if step.key is None or step.load is None or step.load(run) is None:
        raise KeylimeError(f"no cacheable {stage} output to record for {episode_id}", where=layout.root)
    state = _state_or_fresh(layout)
    state[stage] = StageRecord(key=step.key(run), finished=_now_iso(), seconds=0.0)
    write_state(layout.state_json, state)


def run_episode(
    stages: Stages,
    settings: Settings,
    episode_id: str,
    *,
    upto: str | Sequence[str] | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
    on_stage: Callable[[str, str], None] | None = None,
) -> RunResult:
    """Run the pipeline for one episode up to stage ``upto`` (default: all of it), with what that stage needs.

    ``upto`` may name several stages: the publish stage's ``needs`` builds everything publishing needs.

    A stage whose recorded key still matches is skipped and its artefact loaded, unless ``force``. ``on_stage`` is
    called with ``(stage, "start" | "done" | "cached")`` for the CLI's status line.
    """
    episode = load_episode(settings.configs_dir, episode_id)
    if episode.raw:
        # Recordings kept out of git (the bucket's inbox, or a URL): fetched once and checked by size and SHA-256
        # before any stage hashes or reads them.
        from ..catalogue.raw import fetch_raw

        fetch_raw(episode, settings.show.storage, progress=progress or null_progress)
    targets = (upto,) if isinstance(upto, str) else tuple(upto or (stages[-1].name,))
    wanted = stages_up_to(stages, *targets)
    layout = settings.layout(episode_id)
    layout.root.mkdir(parents=True, exist_ok=True)
    run = Run(
        settings=settings, episode=episode, layout=layout, stages=stages, force=force,
        progress=progress or null_progress,
    )  # fmt: skip
    with fsutil.hold_lock(layout.lock, f"the build folder of {episode_id}"):
        freed = fsutil.remove_stale_temporaries(layout.root)
        if freed:
            log.info("%s: removed %.1f MB of temporary files an interrupted run left", episode_id, freed / 1e6)
        done = _run_stages(run, wanted, on_stage)
    made = {s.name: run.results[s.name] for s in stages if s.name in run.results}
    return RunResult(episode_id, layout.root, tuple(done), made)


def _cached(run: Run, stage: Stage[object], key: str | None, prev: StageRecord | None) -> object | None:
    """The stage's output loaded from the build folder when its recorded key still matches, else ``None``."""
    if key is None or run.force or prev is None or prev.key != key or stage.load is None:
        return None
    return stage.load(run)


def _run_stages(run: Run, wanted: Sequence[str], on_stage: Callable[[str, str], None] | None) -> list[StageResult]:
    episode_id, layout = run.episode.id, run.layout
    state = _state_or_fresh(layout)
    done: list[StageResult] = []
    for stage in run.stages:
        if stage.name not in wanted:
            continue
        t0 = time.perf_counter()
        key = stage.key(run) if stage.key else None
        art = _cached(run, stage, key, state.get(stage.name))
        if art is not None:
            run.results[stage.name] = art
            done.append(StageResult(stage.name, time.perf_counter() - t0, cached=True))
            log.info("%s: %s is up to date (cached)", episode_id, stage.name)
            if on_stage:
                on_stage(stage.name, "cached")
            continue
        if on_stage:
            on_stage(stage.name, "start")
        log.info("%s: %s ...", episode_id, stage.name)
        run.results[stage.name] = stage.run(run)
        secs = time.perf_counter() - t0
        log.info("%s: %s done in %.1f s", episode_id, stage.name, secs)
        done.append(StageResult(stage.name, secs, cached=False))
        state[stage.name] = StageRecord(key=key, finished=_now_iso(), seconds=round(secs, 3))
        write_state(layout.state_json, state)
        if on_stage:
            on_stage(stage.name, "done")
    return done


def stale_stages(stages: Stages, settings: Settings, episode_id: str) -> list[str]:
    """The stages whose recorded key no longer matches their inputs (the config or an input changed since)."""
    layout = settings.layout(episode_id)
    run = Run(settings=settings, episode=load_episode(settings.configs_dir, episode_id), layout=layout, stages=stages)
    state = _state_or_fresh(layout)
    out = []
    for stage in stages:
        prev = state[stage.name].key if stage.name in state else None
        if stage.key is None or prev is None:
            continue  # never cached, or made outside the pipeline
        try:
            key = stage.key(run)
        except KeylimeError:
            key = None  # what it was made from is gone
        if key != prev:
            out.append(stage.name)
    return out
