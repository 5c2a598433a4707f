"""The audio stage's artefact: the master (timeline, loudness, how it was made), with its reader and writer
(``master.json``), and the loudness curves it records for the production report (``loudness.json``).

Every type here is a frozen pydantic dataclass: a dataclass for the stages that build and read it (positional
construction, ``dataclasses.replace``), and one declared shape for its file, which :func:`fsutil.read_json_as`
validates on the way in (one error naming the file) and :func:`fsutil.write_json_as` writes in field order.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass

from .. import fsutil
from ..errors import AudioError

#: Files are read strictly: a key this version does not know is an error, not silently dropped.
_FILE = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=_FILE)
class Loudness:
    """BS.1770 / EBU R128 measurement of one signal."""

    integrated_lufs: float
    lra_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float


@dataclass(frozen=True, config=_FILE)
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


@dataclass(frozen=True, config=_FILE)
class MixTrack:
    """One track of a multitrack session as the mix used it. Times are on the session timeline, the mixed body's
    own time (``Master.body_to_episode`` maps them onto the published file).

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
    #: The measurements and steps on this track (noise floor, hum, noise reduction, leveler): informational figures
    #: whose keys depend on what the processing found.
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


# ---------------------------------------------------------------------------------------------- master details


@dataclass(frozen=True, config=_FILE)
class PartDetails:
    """One raw recording as the mastering stage found and treated it (``details.parts[]``)."""

    file: str
    input_lufs: float
    input_true_peak_dbtp: float
    input_sample_peak_dbfs: float
    input_lra_lu: float
    gain_db: float
    trimmed_start_s: float
    trimmed_end_s: float
    #: What the leveler, the denoiser and the DC-offset check measured and did on this recording: informational
    #: figures whose keys depend on what each found (``note``/``decision`` say why a step did nothing).
    leveler: dict[str, Any]
    denoise: dict[str, Any]
    dc: dict[str, Any]


@dataclass(frozen=True, config=_FILE)
class AssetDetails:
    """One stitched asset (intro, disclaimer, outro): its file, level and the gain that matched it."""

    file: str
    input_lufs: float
    gain_db: float


@dataclass(frozen=True, config=_FILE)
class BodyOutput:
    """The body's loudness after mastering (the speech alone, without the music beds)."""

    integrated_lufs: float
    lra_lu: float


@dataclass(frozen=True, config=_FILE)
class CodecCalibration:
    """How much MP3 encoding moved loudness and true peak (measured on a trial encode, allowed for in the plan)."""

    loudness_lu: float
    true_peak_db: float


@dataclass(frozen=True, config=_FILE)
class LevelerSummary:
    """The episode-wide line of what the leveler did (per recording it is under ``parts``); ``None``: no figure."""

    stretches: int
    stretches_levelled: int
    gain_min_db: float | None
    gain_max_db: float | None
    turn_spread_before_lu: float | None
    turn_spread_after_lu: float | None


@dataclass(frozen=True, config=_FILE)
class DenoiseSummary:
    """The episode-wide line of what the denoiser did: the worst figures over the recordings."""

    engine: str
    recordings_denoised: int
    noise_under_speech_db_before: float | None
    noise_under_speech_db_after: float | None
    hum_line_db_before: float | None
    hum_line_db_after: float | None
    dc_offsets_removed: int


@dataclass(frozen=True, config=_FILE)
class LimiterFigures:
    """The true-peak limiter: its ceiling, deepest gain reduction and how long it held the signal down."""

    ceiling_dbtp: float
    max_reduction_db: float
    limited_seconds: float


@dataclass(frozen=True, config=_FILE)
class RenderPass:
    """One render: the loudness planned, and the loudness and true peak measured on its result."""

    planned_lufs: float
    lufs: float
    true_peak_dbtp: float


@dataclass(frozen=True, config=_FILE)
class Mp3Format:
    """The encoded file as ffmpeg reads it back."""

    codec: str
    sample_rate: int
    channels: int


@dataclass(frozen=True, config=_FILE)
class MasteredDetails:
    """``master.json``'s ``details`` for a master the stage rendered: per-recording and per-asset levels, the
    leveler, denoiser, limiter and codec-calibration figures, the renders and what each step took."""

    parts: tuple[PartDetails, ...]
    assets: dict[str, AssetDetails]
    body_output: BodyOutput
    codec_calibration: CodecCalibration
    leveler: LevelerSummary
    denoise: DenoiseSummary
    limiter: LimiterFigures
    renders: int
    render_history: tuple[RenderPass, ...]
    #: Seconds per step, in the order they ran (``mix`` first for a multitrack session).
    seconds: dict[str, float]
    mp3: Mp3Format


@dataclass(frozen=True, config=_FILE)
class KeptSource:
    """An archive episode's published MP3, kept as the master byte for byte."""

    source: str
    codec: str
    bytes: int
    re_encoded: bool


@dataclass(frozen=True, config=_FILE)
class TargetCheck:
    """How far a kept master is from the loudness target (reported, never corrected)."""

    off_target_lu: float
    true_peak_over_db: float
    meets_target: bool


@dataclass(frozen=True, config=_FILE)
class KeptDetails:
    """``master.json``'s ``details`` for a kept master (``[archive] remaster = false``)."""

    kept: KeptSource
    target: TargetCheck


@dataclass(frozen=True, config=_FILE)
class NoDetails:
    """``details`` of a master made outside the mastering stage (another tool, a test's fixture): none."""


#: What ``master.json``'s ``details`` holds, by how the master was made.
Details = MasteredDetails | KeptDetails | NoDetails


@dataclass(frozen=True, config=_FILE)
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
    #: Per-part and per-asset levels, leveler, denoiser, limiter and codec-calibration figures (informational).
    details: Details = field(default_factory=NoDetails)
    #: A multitrack session's tracks (empty for recordings played one after the other).
    tracks: tuple[MixTrack, ...] = ()
    #: The 16-bit PCM the MP3 was encoded from, as FLAC, and its SHA-256 (``None``: a master the stage did not
    #: render, such as a kept archive MP3, or one already cut).
    lossless: Path | None = None
    lossless_sha256: str | None = None

    def lossless_source(self) -> Path | None:
        """The lossless copy if it is still the one this master wrote (its SHA-256 matches), else ``None``."""
        if self.lossless is None or self.lossless_sha256 is None or not self.lossless.is_file():
            return None
        return self.lossless if fsutil.sha256_file(self.lossless) == self.lossless_sha256 else None

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
            # What the leveler and the denoiser did (master.json has them per recording).
            "leveler": fsutil.dump_json_as(self.details.leveler, _LEVELER)
            if isinstance(self.details, MasteredDetails)
            else None,
            "denoise": fsutil.dump_json_as(self.details.denoise, _DENOISE)
            if isinstance(self.details, MasteredDetails)
            else None,
        }

    def describe(self) -> str:
        """One line for people."""
        out = self.output_loudness
        line = (
            f"{self.episode_id}: {self.mp3} ({self.duration / 60:.1f} min, {out.integrated_lufs:.1f} LUFS, "
            f"{out.true_peak_dbtp:.1f} dBTP, {self.method})"
        )
        if not isinstance(self.details, MasteredDetails):
            return line
        lev, den = self.details.leveler, self.details.denoise
        if lev.stretches_levelled:
            line += (
                f"; leveler: {lev.stretches_levelled}/{lev.stretches} stretches, "
                f"{lev.gain_min_db or 0.0:+.1f}..{lev.gain_max_db or 0.0:+.1f} dB, turn spread "
                f"{lev.turn_spread_before_lu} -> {lev.turn_spread_after_lu} LU"
            )
        if den.recordings_denoised:
            line += (
                f"; denoised ({den.engine}): noise {den.noise_under_speech_db_before} -> "
                f"{den.noise_under_speech_db_after} dB under speech"
            )
        return line

    def to_json(self) -> dict[str, Any]:
        """The ``master.json`` document (the MP3 and the report by their names in its folder)."""
        d = fsutil.dump_json_as(self, _MASTER)
        d["mp3"] = self.mp3.name
        d["report"] = self.report.name
        if self.lossless is None:  # a master without one reads and writes as before the copy was kept
            d.pop("lossless", None)
            d.pop("lossless_sha256", None)
        else:
            d["lossless"] = self.lossless.name
        return {"schema": MASTER_SCHEMA, **d}

    def write(self) -> Path:
        """Write ``master.json`` (at :attr:`report`, atomically): the one writer of the file."""
        return fsutil.write_json(self.report, self.to_json())

    @classmethod
    def load(cls, report: Path) -> Master:
        """Read ``master.json`` back (paths resolve against its folder): the one reader of the file."""
        report = Path(report)

        def prepare(d: dict[str, Any]) -> dict[str, Any]:
            if d.pop("schema", MASTER_SCHEMA) != MASTER_SCHEMA:
                raise ValueError(f"not a {MASTER_SCHEMA} document")
            lossless = d.get("lossless")
            return {
                **d, "mp3": report.parent / d["mp3"], "report": report,
                "lossless": report.parent / lossless if lossless else None,
            }  # fmt: skip

        return fsutil.read_json_as(
            report, _MASTER, AudioError, what="master report", missing="no master found",
            hint="run `produce master EPISODE` first", prepare=prepare,
        )  # fmt: skip


# ----------------------------------------------------------------------------------------------- loudness.json


@dataclass(frozen=True, config=_FILE)
class CurvePair:
    """Momentary (400 ms) and short-term (3 s) loudness, one value per hop, LUFS; ``None`` where silent (-inf)."""

    momentary: tuple[float | None, ...]
    short_term: tuple[float | None, ...]


@dataclass(frozen=True, config=_FILE)
class LoudnessCurves:
    """``loudness.json``: the production report's curves on the published timeline (EBU Tech 3341 windows), of the
    inputs placed where they sit in the episode (``before``) and of the decoded MP3 (``after``)."""

    hop_s: Annotated[float, Field(gt=0)]
    before: CurvePair
    after: CurvePair

    def write(self, path: Path) -> Path:
        """Write ``loudness.json`` (atomically): the one writer of the file."""
        return fsutil.write_json_as(path, self, _CURVES)

    @classmethod
    def load(cls, path: Path) -> LoudnessCurves:
        """Read ``loudness.json``: the one reader of the file."""
        return fsutil.read_json_as(
            path, _CURVES, AudioError, what="loudness curves", missing="no loudness curves found",
            hint="run `produce master EPISODE` again",
        )  # fmt: skip


MASTER_SCHEMA = "keylime-prod/master/1"
_MASTER: TypeAdapter[Master] = TypeAdapter(Master)
_LEVELER: TypeAdapter[LevelerSummary] = TypeAdapter(LevelerSummary)
_DENOISE: TypeAdapter[DenoiseSummary] = TypeAdapter(DenoiseSummary)
_CURVES: TypeAdapter[LoudnessCurves] = TypeAdapter(LoudnessCurves)
