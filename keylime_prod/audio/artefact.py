"""The audio stage's artefact: the master (timeline, loudness, how it was made), with its reader and writer
(``master.json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AudioError
from ..fsutil import reading_report


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


def _map_time(pieces: tuple[TimelineSegment, ...], t: float, *, to_episode: bool) -> float:
    """``t`` carried across the kept pieces: from the raw recordings onto the episode (``to_episode``) or back. The
    piece is the last one starting at or before ``t``; a time past its end (trimmed silence) snaps to the end."""
    piece = pieces[0]
    for p in pieces:
        if t >= (p.source_start if to_episode else p.start):
            piece = p
    src, dst = (piece.source_start, piece.start) if to_episode else (piece.start, piece.source_start)
    return dst + min(max(t - src, 0.0), piece.duration)


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
        return _map_time(self.pieces or (self.body,), t, to_episode=True)

    def episode_to_body(self, t: float) -> float:
        """The time in the joined raw recordings that sits at episode time ``t`` (the inverse of
        :meth:`body_to_episode`); times outside the kept audio snap to its nearest edge."""
        return _map_time(self.pieces or (self.body,), t, to_episode=False)

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
        with reading_report(
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
