"""The orchestrator: :mod:`.stages` lists the stages in flow order and adapts each one's inputs; :mod:`.runner`
runs them (logging, timing, skip-if-cached, resume). Everything callers use is re-exported here."""

from __future__ import annotations

from .runner import (
    Run,
    RunResult,
    StageRecord,
    StageResult,
    mark_up_to_date,
    read_state,
    run_episode,
    stages_up_to,
    stale_stages,
    write_state,
)
from .stages import STAGE_BY_NAME, STAGES, Stage, check_episode_chapters, digest, file_digest, portable, release_of

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
