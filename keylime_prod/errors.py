"""One exception root for the whole toolkit.

Every error a user can cause or meet is a :class:`KeylimeError`; each stage has its own subclass. Third-party
exceptions (pydub's ``CouldntDecodeError``, mutagen's ``MutagenError``, botocore's ``ClientError`` ...) are
translated into these where we call the library, so ``cli.py`` is the only place that catches and prints them.

Messages are one line: *where* (file, field or object), *what is wrong*, *what to do*.
"""

from __future__ import annotations

import re
from pathlib import Path

#: ``scheme://user:secret@host``: the user-info part of a URL, which may hold a key.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def redact(text: str, *, drop: bool = False) -> str:
    """``text`` with credentials in URLs replaced by ``***`` (the CLI's printer and log filter use it), or with
    ``drop``, removed (``scheme://host``: a URL that must still work, such as the storage endpoint a public base URL
    is built from)."""
    return _URL_USERINFO.sub(r"\1" if drop else r"\1***@", text)


class KeylimeError(Exception):
    """Root of every error keylime-prod raises on purpose.

    ``where`` names the file, field or object at fault; ``hint`` says what to do. ``str()`` gives the one line the
    CLI prints.
    """

    exit_code = 1

    def __init__(self, message: str, *, where: str | Path | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = str(where) if where is not None else None
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.where:
            parts.append(f"{self.where}: ")
        parts.append(self.message)
        if self.hint:
            parts.append(f" ({self.hint})")
        return "".join(parts).replace("\n", " ")


class ConfigError(KeylimeError):
    """A show or episode config file is missing, unreadable or invalid."""

    exit_code = 2


class FFmpegError(KeylimeError):
    """ffmpeg is missing or a call to it failed."""

    exit_code = 3


class HttpError(KeylimeError):
    """A URL could not be reached or read to the end (keylime_prod.http); its callers say what it was for."""


class AudioError(KeylimeError):
    """An audio input cannot be used (missing, empty, corrupt, silent, unsupported) or mastering failed."""

    exit_code = 4


class TranscriptError(KeylimeError):
    """Transcription failed: bad audio, unknown engine, missing or corrupt model."""

    exit_code = 5


class NotesError(KeylimeError):
    """Show notes could not be built."""

    exit_code = 5


class TagError(KeylimeError):
    """ID3 tags, artwork or chapters are invalid or could not be written."""

    exit_code = 6


class StorageError(KeylimeError):
    """Upload to or verification against S3-compatible storage failed."""

    exit_code = 7


class FeedError(KeylimeError):
    """The RSS feed could not be built or published."""

    exit_code = 8


class PublishError(KeylimeError):
    """Publishing an episode failed (build missing, date not valid, ...)."""

    exit_code = 9


class ArchiveError(KeylimeError):
    """Importing an existing feed or running a batch over the archive failed (bad feed, media fetch, cluster)."""

    exit_code = 10


class ReportError(KeylimeError):
    """The production report could not be made (its inputs are unreadable)."""

    exit_code = 11


class VerifyError(KeylimeError):
    """``produce verify`` could not run at all (no feed to check, bad state file); problems it finds are results."""

    exit_code = 12


class EditError(KeylimeError):
    """Finding or deciding cuts failed (audio with no sound, an unreadable ``cuts.json``)."""

    exit_code = 13


class ReviewError(KeylimeError):
    """The review page could not start or could not write a decision (``produce review``, docs/review.md)."""

    exit_code = 14


class SpeakersError(KeylimeError):
    """Who speaks when (diarization), voices enrolled, or the producer's speaker names (keylime_prod/speakers)."""

    exit_code = 15
