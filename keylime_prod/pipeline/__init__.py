"""The orchestrator: :mod:`.stages` lists the stages in flow order and adapts each one's inputs; :mod:`.runner`
runs them (logging, timing, skip-if-cached, resume). The functions callers use are here, with the stages bound."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..config import Settings
from ..progress import ProgressFn
from . import runner
from .runner import Run, RunResult, Stage, StageRecord, StageResult, read_state, write_state
from .stages import STAGE_BY_NAME, STAGES, check_episode_chapters, digest, file_digest, portable, release_of


def run_episode(
    settings: Settings,
    episode_id: str,
    *,
    upto: str | Sequence[str] | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
    on_stage: Callable[[str, str], None] | None = None,
) -> RunResult:
    """Run the pipeline for one episode up to stage ``upto`` (default: all of it), with what that stage needs.

    ``upto`` may name several stages: ``STAGE_BY_NAME["publish"].needs`` builds everything publishing needs. A stage
    whose recorded key still matches is skipped and its artefact loaded, unless ``force``. ``on_stage`` is called
    with ``(stage, "start" | "done" | "cached")`` for the CLI's status line.
    """
    return runner.run_episode(
        STAGES, settings, episode_id, upto=upto, force=force, progress=progress, on_stage=on_stage
    )


def stages_up_to(*names: str) -> list[str]:
    """``names`` and every stage they need, directly or not, in :data:`STAGES` order."""
    return runner.stages_up_to(STAGES, *names)


def stale_stages(settings: Settings, episode_id: str) -> list[str]:
    """The stages whose recorded key no longer matches their inputs (the config or an input changed since)."""
    return runner.stale_stages(STAGES, settings, episode_id)


def mark_up_to_date(settings: Settings, episode_id: str, stage: str) -> None:
    """Record ``stage``'s output, already in the build folder, as up to date with the current inputs (a result made
    outside the pipeline: later runs load it instead of redoing the stage, until its inputs change)."""
    runner.mark_up_to_date(STAGES, settings, episode_id, stage)


__all__ = [
    "STAGES",
    "STAGE_BY_NAME",
    "Run",
    "RunResult",
    "Stage",
    "StageRecord",
    "StageResult",
    "check_episode_chapters",
    "digest",
    "file_digest",
    "mark_up_to_date",
    "portable",
    "read_state",
    "release_of",
    "run_episode",
    "stages_up_to",
    "stale_stages",
    "write_state",
]
