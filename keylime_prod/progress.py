"""Progress reporting without a UI dependency in the stages.

A stage takes an optional :data:`ProgressFn` and calls it with ``(description, done, total)``; the CLI turns those
calls into Rich progress bars, tests and CI pass nothing.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, float, float], None]


def null_progress(description: str, done: float, total: float) -> None:
    """A :data:`ProgressFn` that ignores every update."""
