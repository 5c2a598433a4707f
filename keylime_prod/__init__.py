"""keylime-prod: podcast production toolkit.

Library first; the ``produce`` CLI is a thin layer over these. In five lines::

    from keylime_prod import load_settings, run_episode

    settings = load_settings("configs", "build")
    result = run_episode(settings, "episode-258", upto="tag")  # master, chapters, tag (and what they need)
    print(result.artefacts["master"].describe(), result.artefacts["tag"].mp3)

Each stage is also a plain function (:func:`master`, :func:`transcribe`, :func:`build_chapters`, :func:`write_notes`,
:func:`write_tags`; ``keylime_prod.publish.publish``) taking artefacts and settings and returning a frozen artefact;
every path in a build folder comes from a :class:`BuildLayout`. Names are imported on first use (PEP 562), so
``import keylime_prod`` stays cheap: the stages pull in numpy, Whisper and boto3 only when asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from .errors import (
    ArchiveError,
    AudioError,
    ConfigError,
    EditError,
    FeedError,
    FFmpegError,
    KeylimeError,
    NotesError,
    PublishError,
    ReportError,
    SpeakersError,
    StorageError,
    TagError,
    TranscriptError,
    VerifyError,
)

#: Public name -> the module that defines it.
_LAZY = {
    # configuration and layout
    "load_settings": "config", "load_episode": "config", "Settings": "config", "BuildLayout": "layout",
    # the orchestrator and publishing several episodes
    "run_episode": "pipeline", "publish_episodes": "pipeline.release", "publish_due": "pipeline.release",
    # stage functions
    "master": "audio", "transcribe": "transcript", "build_chapters": "chapters", "write_notes": "notes",
    "write_tags": "tags", "diarize": "speakers",
    # artefacts
    "Master": "audio.artefact", "Transcript": "transcript.artefact", "Chapters": "chapters.artefact",
    "ChapterMark": "chapters.artefact", "Notes": "notes.artefact", "Tagged": "tags.artefact", "Published": "publish",
    "Turns": "speakers.artefact",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArchiveError",
    "AudioError",
    "ConfigError",
    "EditError",
    "FFmpegError",
    "FeedError",
    "KeylimeError",
    "NotesError",
    "PublishError",
    "ReportError",
    "SpeakersError",
    "StorageError",
    "TagError",
    "TranscriptError",
    "VerifyError",
    "__version__",
    *_LAZY,
]
