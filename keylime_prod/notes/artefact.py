"""The notes stage's artefact: the show notes written (Markdown and HTML)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Notes:
    """The show-notes stage's result."""

    markdown: Path
    html: Path

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {"markdown": str(self.markdown), "html": str(self.html)}
