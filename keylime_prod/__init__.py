"""keylime-prod: podcast production toolkit.

Public API (library first; the ``produce`` CLI is a thin layer over these):

- :func:`keylime_prod.config.load_settings`, :func:`keylime_prod.config.load_episode`
- :func:`keylime_prod.audio.master` -> :class:`keylime_prod.artefacts.Master`
- :func:`keylime_prod.pipeline.run_episode`
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    AudioError,
    ConfigError,
    FeedError,
    FFmpegError,
    KeylimeError,
    NotesError,
    PublishError,
    StorageError,
    TagError,
    TranscriptError,
)

__all__ = [
    "AudioError",
    "ConfigError",
    "FFmpegError",
    "FeedError",
    "KeylimeError",
    "NotesError",
    "PublishError",
    "StorageError",
    "TagError",
    "TranscriptError",
    "__version__",
]
