"""The transcript's artefacts: :class:`Heard`, the recogniser's words as it heard them (``heard.json``), and
:class:`Transcript`, the segments on the episode timeline and the files written from them (``<stem>.report.json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter
from pydantic.dataclasses import dataclass as model

from .. import fsutil
from ..errors import TranscriptError
from ..fsutil import reading_report, write_json


@model(frozen=True, config=ConfigDict(extra="forbid"))
class TimedWord:
    """One word on the published timeline: a row of ``words.json`` and of ``heard.json``."""

    start: float
    end: float
    word: str
    probability: float
    speaker: str | None = None


@model(frozen=True, config=ConfigDict(extra="forbid"))
class _Words:
    """``words.json``: ``{"words": [{"start", "end", "word", "probability", "speaker"}]}``."""

    words: tuple[TimedWord, ...]


_WORDS: TypeAdapter[_Words] = TypeAdapter(_Words)


def write_words(path: Path, words: Sequence[TimedWord]) -> Path:
    """Write ``words.json`` (atomically; one line, probabilities to 4 places): the one writer of the file."""
    doc = _Words(tuple(replace(w, probability=round(w.probability, 4)) for w in words))
    return fsutil.write_text(path, json.dumps(fsutil.dump_json_as(doc, _WORDS), ensure_ascii=False) + "\n")


def read_words(path: Path) -> tuple[TimedWord, ...]:
    """Read ``words.json``: the one reader of the file."""
    hint = "run `produce transcribe EPISODE` again"
    doc = fsutil.read_json_as(path, _WORDS, TranscriptError, what="word list", missing="no word list found", hint=hint)
    return doc.words


@dataclass(frozen=True)
class RedoneWindow:
    """A window of speech the recogniser decoded a second time, on the published timeline (seconds): ``reason``
    says what was wrong with the first decoding (a loop, a compression ratio over Whisper's 2.4, hint terms it
    doubted), ``kept`` which decoding the transcript has (``without hints``, ``temperature 0.4`` ...)."""

    start: float
    end: float
    reason: str
    kept: str


@dataclass(frozen=True)
class Heard:
    """What the recogniser heard, before any correction: every word with its timing, probability and speaker, and
    how it was made. Written once per audio, engine, model and hints (``heard.json``); the transcript files are
    rendered from it with the producer's corrections, so a correction never runs the recogniser again."""

    words: tuple[TimedWord, ...]
    language: str
    engine: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    audio_seconds: float = 0.0
    speech_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    redone: tuple[RedoneWindow, ...] = ()  # windows decoded again without the hints (keylime_prod.transcript.engines)

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {
            "source": self.source, "engine": self.engine, "model": self.model, "words": len(self.words),
            "audio_seconds": self.audio_seconds, "elapsed_seconds": self.elapsed_seconds, "redone": len(self.redone),
        }  # fmt: skip

    def save(self, path: Path) -> Path:
        """Write ``heard.json`` (atomically)."""
        d = asdict(self)
        d["words"] = [{**w, "probability": round(w["probability"], 4)} for w in d["words"]]
        return write_json(Path(path), {"schema": "keylime-prod/heard/1", **d})

    @classmethod
    def load(cls, path: Path) -> Heard:
        """Read ``heard.json`` back."""
        hint = "run `produce transcribe EPISODE` or `produce EPISODE`"
        with reading_report(Path(path), TranscriptError, "no recognised words found", "heard words", hint) as d:
            d.pop("schema", None)
            d["words"] = tuple(TimedWord(**w) for w in d["words"])
            d["redone"] = tuple(RedoneWindow(**r) for r in d.get("redone", ()))
            return cls(**d)


@dataclass(frozen=True)
class TranscriptSegment:
    """One transcribed stretch of speech, times on the published episode's timeline (seconds)."""

    start: float
    end: float
    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class Transcript:
    """The transcript stage's result: segments on the episode timeline and the files written from them.

    ``files`` maps a format (``txt``, ``srt``, ``vtt``, ``json``, ``html``) to its path. ``options`` records how it
    was made (engine settings), as faster-whisper's ``TranscriptionInfo`` does.
    """

    segments: tuple[TranscriptSegment, ...]
    files: dict[str, Path]
    language: str
    engine: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the audio transcribed (the master MP3 or a file)
    audio_seconds: float = 0.0  # length of the regions transcribed
    speech_seconds: float = 0.0  # what VAD kept of them
    elapsed_seconds: float = 0.0  # wall time, model loading included
    report: Path | None = None  # <stem>.report.json
    words: Path | None = None  # words.json: every word's timing, probability and speaker (keylime_prod.transcript)
    redone: tuple[RedoneWindow, ...] = ()  # windows decoded again without the hints (keylime_prod.transcript.engines)
    corrected: int = 0  # words the producer's corrections changed
    #: Corrected names and terms not yet in the glossary: offered to the producer, never written to a config.
    glossary_offers: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The plain text, one segment per line."""
        return "\n".join(s.text.strip() for s in self.segments)

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {
            "source": self.source,
            "engine": self.engine,
            "model": self.model,
            "segments": len(self.segments),
            "audio_seconds": self.audio_seconds,
            "elapsed_seconds": self.elapsed_seconds,
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def describe(self) -> str:
        """One line for people."""
        return (
            f"{Path(self.source).name}: {len(self.segments)} segments, {self.audio_seconds:.0f} s in "
            f"{self.elapsed_seconds:.1f} s ({self.engine} {self.model})"
        )

    def to_json(self) -> dict[str, Any]:
        """The ``<stem>.report.json`` document (file paths relative to its folder)."""
        d = asdict(self)
        d["files"] = {k: Path(v).name for k, v in self.files.items()}
        d.pop("report", None)
        d["words"] = Path(self.words).name if self.words is not None else None
        return {"schema": "keylime-prod/transcript/1", **d}

    @classmethod
    def load(cls, report: Path) -> Transcript:
        """Read a report written by ``keylime_prod.transcript.transcribe`` back (paths resolve against its folder)."""
        report = Path(report)
        hint = "run `produce transcribe EPISODE` or `produce EPISODE`"
        with reading_report(report, TranscriptError, "no transcript found", "transcript report", hint) as d:
            d["segments"] = tuple(TranscriptSegment(**s) for s in d["segments"])
            d["files"] = {k: report.parent / v for k, v in d["files"].items()}
            d["words"] = report.parent / d["words"] if d.get("words") else None
            d["redone"] = tuple(RedoneWindow(**r) for r in d.get("redone", ()))
            d["glossary_offers"] = tuple(d.get("glossary_offers", ()))
            return cls(**d, report=report)
