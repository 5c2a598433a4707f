"""``produce review EPISODE``: a local web page to listen, correct and decide before an episode goes out
(docs/review.md).

Beside the flow, like ``catalogue/``: it builds the episode up to (not including) publishing, then serves one page
from the build folder (:mod:`.model`) on 127.0.0.1 behind a per-run token (:mod:`.server`). Every decision on the page
goes to the episode's edit files beside its config (:mod:`.decisions`), and "Apply" runs the pipeline again, whose
cache keys redo only what those files change (a correction, a name or a cut never runs Whisper again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import Settings
from ..progress import ProgressFn
from .decisions import add_correction, move_chapter, set_cut, set_speaker_name
from .model import ReviewPage, build_page, waveform_peaks
from .server import Review, ReviewServer, create_app

__all__ = [
    "Review",
    "ReviewPage",
    "ReviewServer",
    "add_correction",
    "build_for_review",
    "build_page",
    "create_app",
    "move_chapter",
    "set_cut",
    "set_speaker_name",
    "waveform_peaks",
]


def build_for_review(
    settings: Settings,
    episode_id: str,
    *,
    force: bool = False,
    progress: ProgressFn | None = None,
    on_stage: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Run every stage publishing needs (not publishing itself); what each stage did, for the page and ``--json``."""
    from ..pipeline import STAGE_BY_NAME, run_episode

    result = run_episode(
        settings, episode_id, upto=STAGE_BY_NAME["publish"].needs, force=force, progress=progress, on_stage=on_stage
    )
    return {"stages": [{"name": s.name, "cached": s.cached, "seconds": round(s.seconds, 2)} for s in result.stages]}
