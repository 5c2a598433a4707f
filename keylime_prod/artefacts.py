"""Frozen artefacts that stages hand to each other, and how they are saved and loaded.

Stages never import each other; they share these plain data types instead (faster-whisper's ``Segment`` /
``TranscriptionInfo`` and ffmpeg-normalize's statistics are the model: an artefact records how it was made).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import AudioError, KeylimeError, TagError, TranscriptError


@contextlib.contextmanager
def _reading(report: Path, error: type[KeylimeError], missing: str, what: str, hint: str) -> Iterator[dict[str, Any]]:
    """A stage report's JSON (``schema`` dropped) for the block that rebuilds the artefact; every way it can fail,
    the block's included, is one ``error`` naming the file."""
    try:
        d = json.loads(report.read_text("utf-8"))
        d.pop("schema", None)
        yield d
    except FileNotFoundError:
        raise error(missing, where=report, hint=hint) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise error(f"unreadable {what}: {e}", where=report, hint="delete it and re-run") from e


@dataclass(frozen=True)
class Loudness:
    """BS.1770 / EBU R128 measurement of one signal."""

    integrated_lufs: float
    lra_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float


@dataclass(frozen=True)
class TimelineSegment:
    """Where one part sits on the final episode timeline, in seconds from the start of the published file.

    ``name`` is ``intro``, ``body``, ``disclaimer`` or ``outro``. For the body, ``source_start`` is the position in
    the joined raw recordings that maps to ``start`` (leading silence trimmed away), so a time ``t`` in the raw
    recordings sits at ``start + (t - source_start)`` in the episode.
    """

    name: str
    start: float
    end: float
    source_start: float = 0.0
    sources: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class MixTrack:
    """One track of a multitrack session as the mix used it (issue 10). Times are on the session timeline, the
    mixed body's own time (``Master.body_to_episode`` maps them onto the published file).

    ``start_s``: where the track's first sample sits on the session timeline; ``offset_s``: the same relative to
    the first track (what the episode's ``offset`` means), found by cross-correlation (``offset_source`` ``auto``,
    with its ``confidence``) or taken from the config (``config``). ``regions``: where its speaker talks.
    """

    file: str
    speaker: str
    start_s: float
    offset_s: float
    offset_source: str
    confidence: float
    speech_lufs: float
    gain_db: float
    own_speech_s: float
    bleed_reduction_db: float
    regions: tuple[tuple[float, float], ...] = ()
    #: Issue 9's measurements and steps on this track: noise floor, hum, noise reduction, leveler.
    processing: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Master:
    """The mastering stage's result: the MP3 and everything ``master.json`` records."""

    episode_id: str
    mp3: Path
    report: Path
    duration: float
    sample_rate: int
    channels: int
    bitrate_kbps: int
    audio_sha256: str
    segments: tuple[TimelineSegment, ...]
    input_loudness: Loudness
    output_loudness: Loudness
    method: str  # "gain" (linear gain alone) or "limiter" (gain plus true-peak limiting)
    gain_db: float
    settings: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    #: Where each raw recording's kept stretch sits: ``name`` ``part-N``, ``start``/``end`` on the episode timeline,
    #: ``source_start`` the matching time in the joined raw recordings (files laid end to end, untrimmed).
    pieces: tuple[TimelineSegment, ...] = ()
    #: Per-part and per-asset levels, limiter and codec-calibration figures (informational).
    details: dict[str, Any] = field(default_factory=dict)
    #: A multitrack session's tracks (empty for recordings played one after the other).
    tracks: tuple[MixTrack, ...] = ()

    def segment(self, name: str) -> TimelineSegment | None:
        """The timeline segment called ``name``, if the episode has one."""
        return next((s for s in self.segments if s.name == name), None)

    @property
    def body(self) -> TimelineSegment:
        """The body segment (every master has one)."""
        seg = self.segment("body")
        assert seg is not None
        return seg

    def body_to_episode(self, t: float) -> float:
        """Map a time in the joined raw recordings (seconds; the files laid end to end, untrimmed, as a producer's
        editor shows them) onto the published episode's timeline. Times inside trimmed silence snap to the nearest
        kept audio."""
        if not self.pieces:
            return self.body.start + (t - self.body.source_start)
        best = self.pieces[0]
        for p in self.pieces:
            if t >= p.source_start:
                best = p
        offset = min(max(t - best.source_start, 0.0), best.duration)
        return best.start + offset

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {
            "mp3": str(self.mp3),
            "duration": round(self.duration, 3),
            "integrated_lufs": self.output_loudness.integrated_lufs,
            "true_peak_dbtp": self.output_loudness.true_peak_dbtp,
            "method": self.method,
            # Issue 9: what the leveler and the denoiser did (master.json has them per recording).
            "leveler": self.details.get("leveler"),
            "denoise": self.details.get("denoise"),
        }

    def describe(self) -> str:
        """One line for people."""
        out = self.output_loudness
        line = (
            f"{self.episode_id}: {self.mp3} ({self.duration / 60:.1f} min, {out.integrated_lufs:.1f} LUFS, "
            f"{out.true_peak_dbtp:.1f} dBTP, {self.method})"
        )
        lev, den = self.details.get("leveler") or {}, self.details.get("denoise") or {}
        if lev.get("stretches_levelled"):
            line += (
                f"; leveler: {lev['stretches_levelled']}/{lev['stretches']} stretches, "
                f"{lev['gain_min_db']:+.1f}..{lev['gain_max_db']:+.1f} dB, turn spread "
                f"{lev['turn_spread_before_lu']} -> {lev['turn_spread_after_lu']} LU"
            )
        if den.get("recordings_denoised"):
            line += (
                f"; denoised ({den['engine']}): noise {den['noise_under_speech_db_before']} -> "
                f"{den['noise_under_speech_db_after']} dB under speech"
            )
        return line

    def to_json(self) -> dict[str, Any]:
        """The ``master.json`` document."""
        d = asdict(self)
        d["mp3"] = self.mp3.name
        d["report"] = self.report.name
        return {"schema": "keylime-prod/master/1", **d}

    @classmethod
    def load(cls, report: Path) -> Master:
        """Read ``master.json`` back (paths resolve against its folder)."""
        report = Path(report)
        with _reading(
            report, AudioError, "no master found", "master report", "run `produce master EPISODE` first"
        ) as d:
            d["mp3"] = report.parent / d["mp3"]
            d["report"] = report
            for key in ("segments", "pieces"):
                d[key] = tuple(TimelineSegment(**{**s, "sources": tuple(s.get("sources", ()))}) for s in d.get(key, ()))
            d["input_loudness"] = Loudness(**d["input_loudness"])
            d["output_loudness"] = Loudness(**d["output_loudness"])
            d["tracks"] = tuple(
                MixTrack(**{**t, "regions": tuple((a, b) for a, b in t.get("regions", ()))})
                for t in d.get("tracks", ())
            )
            return cls(**d)


@dataclass(frozen=True)
class ChapterMark:
    """One chapter on the final timeline (seconds), as ID3 CHAP, Podcasting 2.0 JSON and show notes use it."""

    title: str
    start: float
    end: float
    url: str | None = None
    img: str | None = None


@dataclass(frozen=True)
class Chapters:
    """The chapters stage's result: one ordered list of marks, and the Podcasting 2.0 ``chapters.json`` written."""

    marks: tuple[ChapterMark, ...]
    json_path: Path | None = None

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {"json": str(self.json_path), "count": len(self.marks)}

    def timestamp_lines(self) -> tuple[str, ...]:
        """``(HH:MM:SS) Title`` per mark, for the show notes (Spotify builds chapters only from these lines).

        Seconds are rounded down, so a listener who seeks to the printed time never lands after the chapter start.
        """
        out = []
        for m in self.marks:
            s = int(m.start + 1e-6)
            out.append(f"({s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}) {m.title}")
        return tuple(out)


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
        with _reading(report, TranscriptError, "no transcript found", "transcript report", hint) as d:
            d["segments"] = tuple(TranscriptSegment(**s) for s in d["segments"])
            d["files"] = {k: report.parent / v for k, v in d["files"].items()}
            d["words"] = report.parent / d["words"] if d.get("words") else None
            return cls(**d, report=report)


@dataclass(frozen=True)
class Notes:
    """The show-notes stage's result."""

    markdown: Path
    html: Path

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {"markdown": str(self.markdown), "html": str(self.html)}


@dataclass(frozen=True)
class Tagged:
    """The tag stage's result: the tagged MP3 and what was written into it."""

    mp3: Path
    id3_version: int
    frames: tuple[str, ...] = ()
    chapters: int = 0
    sha256: str = ""  # of the tagged MP3 (master.json's audio_sha256 is the untagged file's)
    size_bytes: int = 0
    #: The cover's file name, never its local path: tagged.json travels with the build folder (issue 11).
    artwork: str | None = None
    report: Path | None = None

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``--json``)."""
        return {
            "mp3": str(self.mp3),
            "id3_version": self.id3_version,
            "frames": len(self.frames),
            "chapters": self.chapters,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }

    def describe(self) -> str:
        """One line for people."""
        return (
            f"tagged ID3v2.{self.id3_version}, {len(self.frames)} frames, {self.chapters} chapters, "
            f"{self.size_bytes:,} bytes"
        )

    def to_json(self) -> dict[str, Any]:
        """The ``tagged.json`` document (paths relative to its folder where they live there)."""
        d = asdict(self)
        # Relative to tagged.json's folder (the tagged MP3 sits in a folder of its own below it).
        d["mp3"] = Path(os.path.relpath(self.mp3, self.report.parent)).as_posix() if self.report else self.mp3.name
        d["report"] = self.report.name if self.report else None
        return {"schema": "keylime-prod/tagged/1", **d}

    @classmethod
    def load(cls, report: Path) -> Tagged:
        """Read ``tagged.json`` back (the MP3 path resolves against its folder)."""
        report = Path(report)
        with _reading(report, TagError, "no tag report found", "tag report", "run `produce tag EPISODE` first") as d:
            d["mp3"] = report.parent / d["mp3"]
            d["artwork"] = Path(d["artwork"]).name if d.get("artwork") else None  # older files held a path
            d["report"] = report
            d["frames"] = tuple(d.get("frames", ()))
            return cls(**d)
