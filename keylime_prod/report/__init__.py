"""The production report: ``build/<id>/report.html``, one self-contained page a producer reads before publishing.

It answers "is this episode fit to publish?" from what the other stages recorded, never by measuring again, in the
producer's words (every figure through :mod:`.labels`: a plain name, its unit, sensible rounding):

- loudness over time (momentary and short-term, before and after mastering, the target, the intro, disclaimer and
  outro, numbered chapters) from ``loudness.json``, the master stage's curves (format: ``{"hop_s", "before":
  {"momentary", "short_term"}, "after": {...}}`` on the published timeline, ``null`` for -inf);
- integrated loudness, LRA (EBU Tech 3342), true peak, which way the target was reached (gain alone or the limiter:
  ffmpeg's loudnorm hides such a switch, docs/platform.md asks us to say it), the limiter's and (when the master stage
  records one) the leveler's and denoiser's figures, from ``master.json``;
- per-recording levels (``master.json``) and per-speaker levels (the curve, cut by who speaks when); for a multitrack
  session, per track: the speaker, the file as the producer named it, its speech level, the offset found and how
  sure, the crosstalk gate, the leveler and noise figures and the level its speech reached in the episode;
- a noise-floor estimate: the median level of the body's pauses (momentary blocks 20 LU or more under its speech);
- a transcript review list from ``words.json`` (``{"words": [{"start", "end", "word", "probability", "speaker"}]}``):
  the words the recogniser was least sure of, and the episode's own names and terms it never wrote (not even in a
  close spelling: case, spaces, hyphens and a plural or possessive "s" aside), each with a timestamp to check;
- the cut candidates of ``cuts.json`` (docs/editing.md) with what was decided for each.

Every time on the page is a link that plays the episode's MP3 from there in the page's player, and a real media
fragment URL (``<mp3>#t=<seconds>``, W3C Media Fragments URI 1.0, temporal dimension) that works without script.
Plots are drawn with matplotlib's Agg canvas (no display, no pyplot global state) and embedded as PNG data URIs, so
the page is one file. :func:`write_report` is the stage.
"""

from __future__ import annotations

import base64
import difflib
import io
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, fsutil, pages, timecode
from ..audio.artefact import LoudnessCurves, Master, MasteredDetails, MixTrack
from ..chapters.artefact import ChapterMark
from ..config import CutDecisions
from ..edit.artefact import Cuts
from ..errors import ReportError
from ..transcript.artefact import TimedWord, read_words
from . import labels
from .labels import number

#: How many of the least-sure words the review list shows, and below which probability a word is worth a look.
REVIEW_WORDS = 30
REVIEW_BELOW = 0.6
#: Plots never need more points than this across (a 60-minute curve at a 100 ms hop has 36 000).
PLOT_COLUMNS = 1800
REPORT_SCHEMA = "keylime-prod/report/2"
#: BS.1770-4 gates for integrated loudness over the curve's blocks.
ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0
#: The alignment match a track's offset must reach to be trusted (audio/align.py's MIN_CONFIDENCE: unrelated
#: recordings give about 5, bleed at -20 dB gives tens).
SURE_MATCH = 10.0


#: How the master reached its level, by ``master.json``'s ``method``. ``kept``: an archive episode whose published MP3
#: is the master as it was (``[archive] remaster = false``), measured but never re-encoded.
_REACHED_BY = {
    "limiter": "gain plus true-peak limiter",
    "gain": "gain alone",
    "kept": "kept as published (not re-encoded)",
}
#: What the page says about the curves of a kept episode, instead of a before/after comparison that is not one.
KEPT_NOTE = (
    "Kept as published: this is the old feed's MP3 byte for byte ([archive] remaster = false), so there is no "
    "before and after, one curve. Set remaster = true in the episode config to master it."
)
#: Why a multitrack session's peak "before" can be over 0 dBTP without anything clipping.
SUMMED_PEAK_NOTE = (
    "The peak before mastering is that of the tracks added together, each already raised to the target (the mix "
    "is kept in floating point, so a peak over 0 dBTP there is not clipping); the true-peak limiter then brought "
    "the episode under the ceiling. Each track's own level is in the table below."
)

# ------------------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Curves:
    """``loudness.json``: LUFS per block, ``nan`` where the file says ``null`` (-inf)."""

    hop_s: float
    before_momentary: np.ndarray
    before_short_term: np.ndarray
    after_momentary: np.ndarray
    after_short_term: np.ndarray

    def times(self, values: np.ndarray) -> np.ndarray:
        """The time of each block of ``values`` on the published timeline."""
        return np.arange(len(values)) * self.hop_s


def _read_json(path: Path, what: str, hint: str) -> Any:
    """The JSON document at ``path``; ``None`` if there is no such file."""
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ReportError(f"unreadable {what}: {e}", where=path, hint=hint) from e


def load_curves(path: Path) -> Curves | None:
    """``loudness.json`` as arrays; ``None`` if it is not there (a master made before the curves were recorded)."""
    if not Path(path).is_file():
        return None
    doc = LoudnessCurves.load(path)

    def series(values: Sequence[float | None]) -> np.ndarray:
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)

    return Curves(
        doc.hop_s, series(doc.before.momentary), series(doc.before.short_term), series(doc.after.momentary),
        series(doc.after.short_term),
    )  # fmt: skip


def load_words(path: Path) -> tuple[TimedWord, ...] | None:
    """``words.json``; ``None`` if it is not there (no transcript, or one made before words were recorded)."""
    return read_words(path) if Path(path).is_file() else None


# ----------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Level:
    """The level of one recording or speaker: LUFS before/after mastering (gated over its blocks), seconds."""

    name: str
    after_lufs: float | None
    before_lufs: float | None = None
    gain_db: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class TrackLevel:
    """One track of a multitrack session as the producer should see it: whose it is, the file they gave, its speech
    level before its gain, where it was found to start and how sure, the crosstalk gate's depth, the noise and
    leveler figures, and the level its speech reached in the episode (the curve over its speaker's turns)."""

    speaker: str
    file: str
    speech_lufs: float
    gain_db: float
    offset_ms: float
    offset_source: str  # "reference" (the first track), "auto" (found), "config" (the episode's offset)
    match: float  # the alignment match's strength (SURE_MATCH and over: trusted)
    bleed_reduction_db: float
    speech_seconds: float
    after_lufs: float | None
    processing: Mapping[str, Any] = field(default_factory=dict)

    @property
    def offset_found(self) -> str:
        """How the offset was found, in words."""
        if self.offset_source == "reference":
            return "the reference: other tracks are placed against it"
        if self.offset_source == "auto":
            sure = "sure" if self.match >= SURE_MATCH else "unsure"
            return f"found by matching the tracks ({sure}: match {number(self.match, 0)}, {SURE_MATCH:g} needed)"
        if self.offset_source == "config":
            return f"from the episode config (the tracks did not match well enough: {number(self.match, 1)})"
        return self.offset_source


@dataclass(frozen=True)
class ReviewItem:
    """Something for the producer to check in the transcript at ``start`` seconds."""

    start: float | None  # None: nowhere to point at (a glossary term with nothing close in the transcript)
    text: str
    probability: float | None = None
    note: str = ""

    @property
    def clock(self) -> str:
        """``start`` as HH:MM:SS."""
        return timecode.hms(self.start) if self.start is not None else "--:--:--"


#: The label the speakers stage gives a voice it could not name ("Speaker 2"): the producer names it.
UNNAMED_VOICE = re.compile(r"Speaker \d+")


@dataclass(frozen=True)
class CutItem:
    """A cut candidate (``cuts.json``) or a producer's own cut, at ``start`` on the published timeline."""

    id: str
    kind: str
    start: float
    seconds: float
    before: str
    text: str
    after: str
    confidence: float | None
    decided: str


@dataclass(frozen=True)
class Mark:
    """A place on the published timeline the page lists with a link: a part (intro, body...) or a chapter."""

    what: str
    start: float
    end: float
    chapter: bool = False


#: What happens to a cut candidate the producer has not decided on, by its ``action`` (``[edit]``, docs/editing.md).
_DECIDED = {"cut": "cut automatically", "mute": "muted with room tone", "propose": "waiting for a decision"}


@dataclass(frozen=True)
class Report:
    """The report stage's result: the page written and the figures it shows."""

    episode_id: str
    html: Path
    target_lufs: float
    ceiling_dbtp: float
    integrated_before: float
    integrated_after: float
    lra_before: float
    lra_after: float
    true_peak_before: float
    true_peak_after: float
    method: str
    gain_db: float
    noise_floor_lufs: float | None
    parts: tuple[Level, ...]
    speakers: tuple[Level, ...]
    low_confidence: tuple[ReviewItem, ...]
    missing_terms: tuple[ReviewItem, ...]
    processing: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    has_curves: bool = False
    has_words: bool = False
    seconds: float = 0.0
    tracks: tuple[TrackLevel, ...] = ()
    cuts: tuple[CutItem, ...] | None = None  # None: no cuts.json in the build

    def problems(self) -> tuple[str, ...]:
        """What is out of range (Apple: -16 LUFS +-1 LU, true peak at or under the ceiling)."""
        out = []
        if abs(self.integrated_after - self.target_lufs) > 1.0:
            out.append(
                f"loudness {number(self.integrated_after, 1, 'LUFS')} is not within 1 LU of the "
                f"{self.target_lufs:g} LUFS target"
            )
        if self.true_peak_after > self.ceiling_dbtp + 0.05:
            out.append(
                f"peak {number(self.true_peak_after, 2, 'dBTP', signed=True)} is over the "
                f"{self.ceiling_dbtp:g} dBTP ceiling"
            )
        return tuple(out)

    def summary(self) -> dict[str, Any]:
        """A short machine-readable summary (``produce EPISODE --json``)."""
        return {
            "html": str(self.html),
            "integrated_lufs": self.integrated_after,
            "true_peak_dbtp": self.true_peak_after,
            "uncertain_words": len(self.low_confidence),
            "missing_terms": [m.text for m in self.missing_terms],
            "problems": list(self.problems()),
        }

    def describe(self) -> str:
        """One line for people."""
        found = f"{len(self.problems())} problem(s), " if self.problems() else ""
        return (
            f"{self.episode_id}: report {self.html} ({found}{len(self.low_confidence)} word(s) and "
            f"{len(self.missing_terms)} glossary term(s) to check)"
        )

    def step_rows(self, step: str) -> list[tuple[str, str]]:
        """One mastering step's figures (``processing[step]``) as plain label/value rows."""
        return [labels.figure(k, v) for k, v in self.processing.get(step, {}).items()]

    def rows(self, *, steps: bool = True) -> list[tuple[str, str]]:
        """Label/value rows in plain words: what ``produce report`` prints and the page's summary shows (the page
        gives the mastering steps, ``steps``, their own tables)."""

        def lufs(v: float | None) -> str:
            return number(v, 1, "LUFS", none="not measured")

        kept = self.method == "kept"
        was = "" if kept else "; before mastering "
        peak_before = number(self.true_peak_before, 1, "dBTP", signed=True)
        if self.tracks and not kept:
            peak_before += " (the tracks added together, not clipping: see Tracks)"
        reached = _REACHED_BY.get(self.method, "gain alone")
        rows = [
            ("Loudness", f"{lufs(self.integrated_after)} (target {self.target_lufs:g} LUFS, within 1 LU)"
                         + (was + lufs(self.integrated_before) if was else "")),
            ("Loudness range", number(self.lra_after, 1, "LU") + (was + number(self.lra_before, 1, "LU") if was
                                                                   else "")),
            ("Peak", f"{number(self.true_peak_after, 1, 'dBTP', signed=True)} (ceiling {self.ceiling_dbtp:g} dBTP)"
                     + (was + peak_before if was else "")),
            ("Level reached by", reached if kept else f"{reached} ({number(self.gain_db, 1, 'dB', signed=True)})"),
            ("Room noise", lufs(self.noise_floor_lufs) + " in the pauses of the conversation" if self.noise_floor_lufs
             is not None else "not measured (no loudness curves)"),
        ]  # fmt: skip
        if steps:
            for name in self.processing:
                figures = "; ".join(f"{a} {b}".strip() for a, b in self.step_rows(name))
                rows.append((labels.STEPS.get(name, name), figures or "on"))
        for p in self.parts:
            rows.append((f"Recording {p.name}", f"{lufs(p.before_lufs)} before, {lufs(p.after_lufs)} in the episode"))
        for t in self.tracks:
            rows.append((f"Track {t.speaker} ({t.file})",
                         f"speech {lufs(t.speech_lufs)} before, {lufs(t.after_lufs)} in the episode; starts "
                         f"{number(t.offset_ms, 0, 'ms', signed=True)} from the first track"))  # fmt: skip
        for s in self.speakers:
            label = s.name if UNNAMED_VOICE.fullmatch(s.name) else f"Speaker {s.name}"
            before = "" if s.before_lufs is None else f"{lufs(s.before_lufs)} before, "
            rows.append((label, f"{before}{lufs(s.after_lufs)} in the episode over {labels.duration(s.seconds)} of "
                                "speech"))  # fmt: skip
        unnamed = [s.name for s in self.speakers if UNNAMED_VOICE.fullmatch(s.name)]
        if unnamed:
            # Voices the diarization found that neither an enrolled sample nor the guest list named (docs/speakers.md).
            rows.append(("Voices to name", f"{', '.join(unnamed)}: listen to their turns, then name them under "
                                           f"[names] in configs/episodes/{self.episode_id}.speakers.toml "
                                           f"(or on the page of produce review {self.episode_id})"))  # fmt: skip
        rows.append(("Transcript to check", f"{len(self.low_confidence)} unsure word(s), "
                                            f"{len(self.missing_terms)} name(s) or term(s) never written"
                     if self.has_words else "no word list (transcribe the episode)"))  # fmt: skip
        if self.cuts is not None:
            counts = {d: sum(1 for c in self.cuts if c.decided.startswith(d)) for d in ("cut", "muted", "waiting")}
            rows.append(("Cut candidates", f"{len(self.cuts)}: {counts['cut']} cut, {counts['muted']} muted, "
                                           f"{counts['waiting']} waiting for a decision" if self.cuts
                         else "none found"))  # fmt: skip
        rows += [("Problem", problem) for problem in self.problems()]
        return rows

    def to_json(self) -> dict[str, Any]:
        """``report.json`` and ``produce report --json``: every figure; the page by its name in the build folder."""
        return {
            "schema": REPORT_SCHEMA,
            "episode": self.episode_id,
            "html": self.html.name,
            "target_lufs": self.target_lufs,
            "ceiling_dbtp": self.ceiling_dbtp,
            "integrated": [self.integrated_before, self.integrated_after],
            "lra": [self.lra_before, self.lra_after],
            "true_peak": [self.true_peak_before, self.true_peak_after],
            "method": self.method,
            "gain_db": self.gain_db,
            "noise_floor_lufs": self.noise_floor_lufs,
            "parts": [vars(p) for p in self.parts],
            "speakers": [vars(s) for s in self.speakers],
            "tracks": [{**vars(t), "processing": dict(t.processing)} for t in self.tracks],
            "low_confidence": [vars(w) for w in self.low_confidence],
            "missing_terms": [vars(w) for w in self.missing_terms],
            "cuts": None if self.cuts is None else [vars(c) for c in self.cuts],
            "processing": {k: dict(v) for k, v in self.processing.items()},
            "has_curves": self.has_curves,
            "has_words": self.has_words,
            "problems": list(self.problems()),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def load(cls, path: Path) -> Report:
        """Read ``report.json`` back (the page resolves against its folder)."""
        d = _read_json(path, "report figures", "delete it and run `produce report EPISODE`")
        if d is None:
            raise ReportError("no report found", where=path, hint="run `produce report EPISODE`")
        try:
            if d["schema"] != REPORT_SCHEMA:
                raise KeyError(f"schema {d['schema']!r}")
            return cls(
                episode_id=d["episode"],
                html=Path(path).parent / d["html"],
                target_lufs=d["target_lufs"],
                ceiling_dbtp=d["ceiling_dbtp"],
                integrated_before=d["integrated"][0],
                integrated_after=d["integrated"][1],
                lra_before=d["lra"][0],
                lra_after=d["lra"][1],
                true_peak_before=d["true_peak"][0],
                true_peak_after=d["true_peak"][1],
                method=d["method"],
                gain_db=d["gain_db"],
                noise_floor_lufs=d["noise_floor_lufs"],
                parts=tuple(Level(**x) for x in d["parts"]),
                speakers=tuple(Level(**x) for x in d["speakers"]),
                tracks=tuple(TrackLevel(**x) for x in d["tracks"]),
                low_confidence=tuple(ReviewItem(**x) for x in d["low_confidence"]),
                missing_terms=tuple(ReviewItem(**x) for x in d["missing_terms"]),
                cuts=None if d["cuts"] is None else tuple(CutItem(**x) for x in d["cuts"]),
                processing=d["processing"],
                has_curves=d["has_curves"],
                has_words=d["has_words"],
                seconds=d["seconds"],
            )
        except (KeyError, TypeError, IndexError) as e:
            raise ReportError(f"unreadable report figures: {e!r}", where=path, hint="delete it and re-run") from None


# ---------------------------------------------------------------------------------------------------- analysis


def gated_loudness(blocks: np.ndarray) -> float | None:
    """Integrated loudness of a run of blocks (LUFS), gated as ITU-R BS.1770-4 gates its 400 ms blocks.

    Absolute gate -70 LUFS, then a relative gate 10 LU under the mean of what passed; the mean is over energies,
    not decibels. ``None`` when nothing passes (silence).
    """
    b = blocks[np.isfinite(blocks)]
    b = b[b > ABSOLUTE_GATE]
    if b.size == 0:
        return None
    energy = np.power(10.0, b / 10.0)
    relative = 10.0 * math.log10(float(energy.mean())) + RELATIVE_GATE
    kept = energy[b > relative]
    return round(10.0 * math.log10(float(kept.mean())), 2) if kept.size else None


def _window(curves: Curves, values: np.ndarray, start: float, end: float) -> np.ndarray:
    a = max(int(start / curves.hop_s), 0)
    b = min(math.ceil(end / curves.hop_s), len(values))
    return values[a:b] if b > a else values[:0]


def _part_levels(master: Master, curves: Curves | None) -> tuple[Level, ...]:
    if master.tracks:  # a multitrack session: its one "recording" is the internal mix, the tracks are listed instead
        return ()
    parts = master.details.parts if isinstance(master.details, MasteredDetails) else ()
    out = []
    for i, piece in enumerate(master.pieces):
        info = parts[i] if i < len(parts) else None
        name = info.file if info else piece.sources[0] if piece.sources else piece.name
        after = gated_loudness(_window(curves, curves.after_momentary, piece.start, piece.end)) if curves else None
        before, gain = (info.input_lufs, info.gain_db) if info else (None, None)
        out.append(Level(name, after, before, gain, round(piece.duration, 2)))
    return tuple(out)


def _speaker_levels(
    master: Master, curves: Curves | None, words: Sequence[TimedWord] | None, recording_speakers: Sequence[str]
) -> tuple[Level, ...]:
    """Each speaker's loudness before and after mastering: the blocks inside their words (``words.json`` speakers),
    else the blocks of the recordings they spoke (the episode's ``speakers``, one per recording)."""
    if curves is None:
        return ()
    spans: dict[str, list[tuple[float, float]]] = {}
    if words and any(w.speaker for w in words):
        for w in words:
            if w.speaker:
                spans.setdefault(w.speaker, []).append((w.start, w.end))
    elif recording_speakers and len(recording_speakers) == len(master.pieces):
        for who, piece in zip(recording_speakers, master.pieces, strict=True):
            spans.setdefault(who, []).append((piece.start, piece.end))
    else:
        return ()
    out = []
    for who, ss in spans.items():
        seconds = sum(b - s for s, b in ss)
        before = _span_loudness(curves, sorted(ss), curves.before_momentary) if len(curves.before_momentary) else None
        out.append(Level(who, _span_loudness(curves, sorted(ss)), before, seconds=round(seconds, 1)))
    return tuple(out)


#: A momentary block this far under the body's speech level is a pause: room tone, not speech.
PAUSE_BELOW_LU = 20.0


def _noise_floor(master: Master, curves: Curves | None) -> float | None:
    """The room tone in the body's pauses: the median of the momentary blocks 20 LU or more under its speech level
    (its gated loudness); the quietest block if the body never pauses that long. ``None`` without curves."""
    if curves is None:
        return None
    body = master.segment("body")
    values = _window(curves, curves.after_momentary, body.start, body.end) if body else curves.after_momentary
    finite = values[np.isfinite(values)]
    speech = gated_loudness(finite)
    if speech is None:
        return None
    pauses = finite[finite <= speech - PAUSE_BELOW_LU]
    return round(float(np.median(pauses) if pauses.size else finite.min()), 1)


_TOKEN = re.compile(r"[\w']+")


def _tokens(text: str) -> list[str]:
    return [t.strip("'") for t in _TOKEN.findall(text.lower()) if t.strip("'")]


def _letters(text: str) -> str:
    """What a close spelling keeps: the letters and digits, in lower case ("Key LIME," and "KeyLIME" agree)."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _spellings(tokens: Sequence[str], longest: int) -> set[str]:
    """The letters of every run of up to ``longest`` consecutive tokens (a term may be heard split or joined)."""
    out: set[str] = set()
    for i in range(len(tokens)):
        acc = ""
        for tok in tokens[i : i + longest]:
            acc += _letters(tok)
            out.add(acc)
    return out


def _review(
    words: Sequence[TimedWord], glossary: Sequence[str]
) -> tuple[tuple[ReviewItem, ...], tuple[ReviewItem, ...]]:
    unsure = sorted((w for w in words if w.probability < REVIEW_BELOW), key=lambda w: (w.probability, w.start))
    low = tuple(
        ReviewItem(w.start, w.word.strip(), round(w.probability, 3), w.speaker or "") for w in unsure[:REVIEW_WORDS]
    )
    # Each word's tokens, so a glossary term is found across word boundaries and punctuation.
    toks: list[tuple[str, float]] = [(t, w.start) for w in words for t in _tokens(w.word)]
    heard = [t for t, _ in toks]
    spelled = _spellings(heard, max((len(_tokens(t)) for t in glossary), default=0) + 2)
    missing = []
    seen: set[str] = set()
    for term in glossary:
        want = _tokens(term)
        key = " ".join(want)
        if not want or key in seen:
            continue
        seen.add(key)
        letters = _letters(term)
        if letters in spelled or letters + "s" in spelled:
            continue  # heard in a close spelling: "Key LIME", "post-graduate", "Varpio's", "residents"
        n = len(want)
        # Each distinct run of n words, with where it was first said (an hour of speech has ~9000 words, but only a
        # few thousand distinct ones: difflib is run over those).
        first: dict[str, float] = {}
        for i in range(len(heard) - n + 1):
            first.setdefault(" ".join(heard[i : i + n]), toks[i][1])
        if key in first:
            continue
        # Where it was most likely said: the closest-sounding run of words ("Lingard" heard as "Lingarm").
        close = difflib.get_close_matches(key, first, n=1, cutoff=0.6)
        if close:
            at = first[close[0]]
            missing.append(ReviewItem(at, term, None, f"never written; closest: {close[0]!r}"))
        else:
            missing.append(ReviewItem(None, term, None, "never written, nothing close"))
    return low, tuple(missing)


def _span_loudness(
    curves: Curves, spans: Sequence[tuple[float, float]], values: np.ndarray | None = None
) -> float | None:
    """The gated loudness of the momentary blocks whose middle falls inside one of ``spans`` (published times,
    sorted): after mastering, or of ``values`` (``curves.before_momentary``: the input on the same timeline)."""
    values = curves.after_momentary if values is None else values
    n = len(values)
    centres = np.arange(n) * curves.hop_s + 0.2  # a momentary block is 400 ms long: its middle
    mask = np.zeros(n, dtype=bool)
    starts = np.array([a for a, _ in spans])
    ends = np.array([b for _, b in spans])
    idx = np.searchsorted(starts, centres, side="right") - 1
    ok = idx >= 0
    mask[ok] = centres[ok] < ends[idx[ok]]
    return gated_loudness(values[mask])


def _track_levels(master: Master, curves: Curves | None) -> tuple[TrackLevel, ...]:
    """A multitrack session's tracks (``master.tracks``), each with the level its speaker's turns reached in the
    episode: the curve over the track's own-speech regions (session time, mapped onto the published timeline)."""

    def level(t: MixTrack) -> float | None:
        if curves is None or not t.regions:
            return None
        spans = sorted((master.body_to_episode(a), master.body_to_episode(b)) for a, b in t.regions)
        return _span_loudness(curves, spans)

    def shown(t: MixTrack) -> dict[str, Any]:
        # The noise measurements and the leveler's range and effect; its bookkeeping (stretch counts) is left out.
        lev = t.processing.get("leveler", {})
        keep = ("gain_range_db", "turn_spread_before_lu", "turn_spread_after_lu")
        return {**{k: v for k, v in t.processing.items() if k != "leveler"}, **{k: lev[k] for k in keep if k in lev}}

    out = []
    for t in master.tracks:
        out.append(
            TrackLevel(
                speaker=t.speaker, file=t.file, speech_lufs=t.speech_lufs, gain_db=t.gain_db,
                offset_ms=round(t.offset_s * 1000.0, 1), offset_source=t.offset_source, match=t.confidence,
                bleed_reduction_db=t.bleed_reduction_db, speech_seconds=t.own_speech_s, after_lufs=level(t),
                processing=shown(t),
            )
        )  # fmt: skip
    return tuple(out)


def _cut_items(
    master: Master, cuts: Cuts, decisions: CutDecisions, cut_time: Callable[[float], float] | None = None
) -> tuple[CutItem, ...]:
    """The candidates of ``cuts.json`` and the producer's own cuts (``<id>.cuts.toml``), each with what was decided
    and its time on the published timeline. Candidates found on the master's MP3 are on the master's timeline, and
    ``cut_time`` moves them onto the published one when cuts were applied; found on the recordings, they are mapped
    the way the master maps its recordings (``body_to_episode``)."""
    on_master = cut_time is not None or Path(cuts.source).name == master.mp3.name
    accept, reject = set(decisions.accept), set(decisions.reject)

    def at(t: float) -> float:
        if cut_time is not None:
            return round(cut_time(t), 3)
        return round(t if on_master else master.body_to_episode(t), 3)

    out = []
    for c in cuts.candidates:
        if c.id in reject:
            decided = "kept: rejected by the producer"
        elif c.id in accept:
            decided = "cut: accepted by the producer"
        else:
            decided = _DECIDED.get(c.action, "waiting for a decision")
        out.append(CutItem(c.id, c.kind, at(c.start), round(c.end - c.start, 2), c.before, c.text, c.after,
                           round(c.confidence, 2), decided))  # fmt: skip
    for k, own in enumerate(decisions.cut):
        out.append(CutItem(f"own-{k}", "own cut", at(own.start), round(own.end - own.start, 2), "", own.note, "", None,
                           "cut: the producer's own"))  # fmt: skip
    return tuple(sorted(out, key=lambda c: (c.start, c.id)))


_PART_NAMES = {"intro": "Intro", "body": "Conversation", "disclaimer": "Disclaimer", "outro": "Outro"}


def _timeline(master: Master, chapters: Sequence[ChapterMark]) -> list[Mark]:
    """The parts of the episode and its numbered chapters, in time order (the loudness plot numbers them alike)."""
    marks = [Mark(_PART_NAMES.get(s.name, s.name), s.start, s.end) for s in master.segments]
    marks += [Mark(f"Chapter {i}: {c.title}", c.start, c.end, chapter=True) for i, c in enumerate(chapters, 1)]
    return sorted(marks, key=lambda m: m.start)


# ------------------------------------------------------------------------------------------------------- plots

#: Colours: before (grey), after (blue), the target (red), chapters (purple), the music and the disclaimer (shades).
_BEFORE, _AFTER, _TARGET, _CHAPTER = "#8c959f", "#1f6feb", "#d73a49", "#6f42c1"
_SHADES = {"intro": "#fff1a8", "outro": "#fff1a8", "disclaimer": "#ffd6dc"}
#: Text on the plots: sized to stay legible when a phone shows the 960-pixel image at a third of its width.
_FONT: dict[Any, Any] = {
    "font.size": 12, "axes.labelsize": 12, "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": 11,
}  # fmt: skip
#: Chapter numbers above the plot stack in at most this many rows; a number that still has no room is left off (the
#: timeline table under the plot lists every chapter).
CHAPTER_ROWS = 4
#: Each plot is drawn twice (inches at 96 dpi): for a wide screen, and for a phone, where the page shows the narrow
#: one at about its own size, so its text stays as large as the page's (a <picture> chooses, by the screen's width).
WIDE_SIZE, PHONE_SIZE = (10.0, 4.8), (4.6, 4.6)
PHONE_MAX_PX = 600


def _clock(seconds: float) -> str:
    """A time axis tick: m:ss, or h:mm:ss from an hour."""
    s = max(round(seconds), 0)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=96, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _place_chapter_numbers(fig: Any, ax: Any, chapters: Sequence[ChapterMark]) -> list[Any]:
    """Chapter numbers in a strip above the plot, each in the lowest row where it overlaps no other number (the
    titles are in the timeline table: numbers stay short however close two chapters are)."""
    if not chapters:
        return []
    trans = ax.get_xaxis_transform()  # x in seconds, y in axes fractions
    fig.get_layout_engine().execute(fig)  # lay the figure out (no drawing), so where each number lands is known
    renderer = fig.canvas.get_renderer()
    placed: list[list[Any]] = [[] for _ in range(CHAPTER_ROWS)]
    out = []
    for i, c in enumerate(chapters, 1):
        text = ax.text(c.start, 1.01, str(i), transform=trans, ha="center", va="bottom", color=_CHAPTER,
                       fontsize=10, fontweight="bold", clip_on=False)  # fmt: skip
        for row in range(CHAPTER_ROWS):
            text.set_y(1.01 + 0.075 * row)
            box = text.get_window_extent(renderer).expanded(1.25, 1.0)
            if not any(box.overlaps(other) for other in placed[row]):
                placed[row].append(box)
                out.append(text)
                break
        else:
            text.remove()
    # Once more with the numbers' rows in the top margin, then kept: saving the picture does not lay it out again, so
    # the numbers stay exactly where they were checked not to overlap.
    fig.get_layout_engine().execute(fig)
    fig.set_layout_engine("none")
    return out


def _envelope(t: np.ndarray, v: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min/max of ``v`` per column: a 60-minute curve drawn in ~2000 columns keeps every peak and dip."""
    n = len(v)
    step = max(1, math.ceil(n / columns))
    m = n // step * step
    if m == 0:
        return t, v, v
    with np.errstate(all="ignore"):
        lo = np.fmin.reduce(v[:m].reshape(-1, step), axis=1)
        hi = np.fmax.reduce(v[:m].reshape(-1, step), axis=1)
    return t[:m:step], lo, hi


def _mean_columns(t: np.ndarray, v: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(v)
    step = max(1, math.ceil(n / columns))
    m = n // step * step
    if m == 0 or step == 1:
        return t, v
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column of silence (-inf blocks only) is NaN, not a problem
        return t[:m:step], np.nanmean(v[:m].reshape(-1, step), axis=1)


def _loudness_figure(
    curves: Curves, master: Master, chapters: Sequence[ChapterMark], target: float, ceiling: float, *, phone: bool
) -> Any:
    from matplotlib.patches import Patch

    fig = _figure(*(PHONE_SIZE if phone else WIDE_SIZE))
    columns = PLOT_COLUMNS // 3 if phone else PLOT_COLUMNS
    ax = fig.add_subplot()
    series = [
        ("before", _BEFORE, curves.before_momentary, curves.before_short_term),
        ("after", _AFTER, curves.after_momentary, curves.after_short_term),
    ]
    if master.method == "kept":  # one audio, measured once: "before" would hide under an identical "after"
        series = [("as published", _AFTER, curves.after_momentary, curves.after_short_term)]
    for when, colour, mom, st in series:
        t, lo, hi = _envelope(curves.times(mom), mom, columns)
        if len(t) == len(mom):  # one block a column: a band from a value to itself would not show, draw the line
            ax.plot(t, mom, color=colour, alpha=0.35, linewidth=0.8, label=f"momentary, {when}")
        else:
            ax.fill_between(t, lo, hi, color=colour, alpha=0.25, linewidth=0, label=f"momentary, {when}")
        ts, ms = _mean_columns(curves.times(st), st, columns)
        ax.plot(ts, ms, color=colour, linewidth=1.4, label=f"3 s average, {when}")
    ax.axhline(target, color=_TARGET, linewidth=1.2, linestyle="--", label=f"target {target:g} LUFS")
    for seg in master.segments:
        if seg.name in _SHADES:
            ax.axvspan(seg.start, seg.end, color=_SHADES[seg.name], alpha=0.7, linewidth=0, zorder=0)
    for c in chapters:
        ax.axvline(c.start, color=_CHAPTER, linewidth=0.9, alpha=0.7)
    finite = [float(np.nanmin(x)) for x in (curves.after_short_term, curves.before_short_term) if np.isfinite(x).any()]
    ax.set_ylim(max(min(finite, default=-60.0) - 5, -70.0), max(target + 10, ceiling + 2))
    ax.set_xlim(0, master.duration)
    # The curves and shading lie inside the axes: the layout need not measure their thousands of points.
    for artist in (*ax.lines, *ax.collections, *ax.patches):
        artist.set_in_layout(False)
    _clock_axis(ax)
    ax.set_xlabel("time in the episode")
    ax.set_ylabel("loudness (LUFS)")
    ax.grid(alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    names_present = {s.name for s in master.segments}
    for name, what in (("intro", "music"), ("disclaimer", "disclaimer")):
        if name in names_present:
            handles.append(Patch(color=_SHADES[name], alpha=0.7))
            names.append(what)
    if chapters:
        handles.append(Patch(color=_CHAPTER))
        names.append("chapters (numbered)")
    # Below the plot, never over the curves (the figure's layout makes room for it).
    fig.legend(handles, names, loc="outside lower center", ncol=2 if phone else 3, frameon=False)
    _place_chapter_numbers(fig, ax, chapters)
    return fig


def _clock_axis(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    # Steps of 1, 2, 3, 5, 6 or 10 (times a power of ten): 30 s, 1, 5 or 10 minutes read as round clock times.
    ax.xaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 3, 5, 6, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _clock(x)))


def _levels_figure(
    parts: Sequence[Level], tracks: Sequence[TrackLevel], speakers: Sequence[Level], target: float, *, phone: bool
) -> Any | None:
    rows = [(f"recording {p.name}", p.before_lufs, p.after_lufs) for p in parts]
    rows += [(f"track {t.speaker}", t.speech_lufs, t.after_lufs) for t in tracks]
    rows += [(f"speaker {s.name}", None, s.after_lufs) for s in speakers]
    if not rows:
        return None
    fig = _figure(PHONE_SIZE[0] if phone else WIDE_SIZE[0], 0.5 * len(rows) + (2.3 if phone else 1.9))
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]  # the first row on top, as in the tables
    before = [r[1] if r[1] is not None else math.nan for r in rows]
    after = [r[2] if r[2] is not None else math.nan for r in rows]
    ax.scatter(before, y, color=_BEFORE, s=50, label="before mastering", zorder=3)
    ax.scatter(after, y, color=_AFTER, s=50, label="in the episode", zorder=3)
    ax.axvline(target, color=_TARGET, linestyle="--", linewidth=1.2, label=f"target {target:g} LUFS")
    longest = 24 if phone else 32
    ax.set_yticks(y, [r[0] if len(r[0]) <= longest else r[0][: longest - 1] + "…" for r in rows])
    finite = [v for v in (*before, *after, target) if math.isfinite(v)]
    ax.set_xlim(min(finite) - 3, max(finite) + 3)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("loudness of the speech (LUFS)")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2 if phone else 3, frameon=False)
    return fig


# -------------------------------------------------------------------------------------------------------- page


def _page(
    report: Report, title: str, audio: str | None, timeline: Sequence[Mark], loud_png: Mapping[str, str],
    level_png: Mapping[str, str],
) -> str:  # fmt: skip
    # Autoescaped (templates/report.html.j2): titles, speaker names, words and glossary terms reach the page escaped.
    return pages.render(
        __name__,
        "report.html.j2",
        ReportError,
        report=report,
        title=title,
        audio=audio,
        timeline=timeline,
        loud_png=loud_png,
        level_png=level_png,
        phone_max=PHONE_MAX_PX,
        version=__version__,
        kept_note=KEPT_NOTE,
        summed_peak_note=SUMMED_PEAK_NOTE,
        review_below=f"{REVIEW_BELOW * 100:.0f} %",
        steps=[(labels.STEPS.get(k, k), report.step_rows(k)) for k in report.processing],
        number=number,
        figure=labels.figure,
        hms=timecode.hms,
        duration=labels.duration,
    )


# ------------------------------------------------------------------------------------------------------- stage


def _processing(master: Master) -> dict[str, dict[str, Any]]:
    """The limiter's, leveler's, denoiser's and codec calibration's figures of a rendered master, by name, each
    without the figures it has none of (``None``). A multitrack session levels and denoises each track before the
    mix (its tracks' figures), so the mix's own leveler and denoiser, which were off, are left out."""
    details = master.details
    if not isinstance(details, MasteredDetails):
        return {}
    out: dict[str, dict[str, Any]] = {}
    figures = [("limiter", asdict(details.limiter)), ("codec calibration", asdict(details.codec_calibration))]
    if not master.tracks:
        figures[1:1] = [("leveler", asdict(details.leveler)), ("denoise", asdict(details.denoise))]
    for name, v in figures:
        flat = {k: x for k, x in v.items() if x is not None}
        if flat:
            out[name] = flat
    return out


def write_report(
    master: Master,
    out: Path,
    *,
    figures: Path | None = None,
    title: str,
    target_lufs: float,
    ceiling_dbtp: float,
    curves: Curves | None = None,
    words: Sequence[TimedWord] | None = None,
    chapters: Sequence[ChapterMark] = (),
    glossary: Sequence[str] = (),
    recording_speakers: Sequence[str] = (),
    cuts: Cuts | None = None,
    cut_decisions: CutDecisions | None = None,
    cut_time: Callable[[float], float] | None = None,
    audio: str | None = "",
) -> Report:
    """Write the production report of ``master`` to ``out`` (atomically) and return its figures (also written to
    ``figures``, ``report.json``, when given).

    ``curves`` and ``words`` are :func:`load_curves` / :func:`load_words` of the build's ``loudness.json`` and
    ``words.json`` (either may be ``None``: the page says what is missing). ``recording_speakers`` names who speaks
    in each recording, used for per-speaker levels when the words carry no speakers. ``cuts`` is the build's
    ``cuts.json`` and ``cut_decisions`` the producer's ``<id>.cuts.toml``; ``cut_time`` moves a time of the master
    onto ``master``'s timeline when ``master`` is the master with cuts applied (the edit's cut map). ``audio`` is
    the player's source: by
    default (``""``) the master's MP3 beside the page, ``None`` for no player.
    """
    t0 = time.perf_counter()
    if curves is not None and not any(
        len(v) for v in (curves.after_momentary, curves.after_short_term)
    ):  # an empty curve would draw an empty, misleading plot
        curves = None
    parts = _part_levels(master, curves)
    tracks = _track_levels(master, curves)
    speakers = _speaker_levels(master, curves, words, recording_speakers)
    low, missing = _review(words, glossary) if words is not None else ((), ())
    rep = Report(
        episode_id=master.episode_id,
        html=Path(out),
        target_lufs=target_lufs,
        ceiling_dbtp=ceiling_dbtp,
        integrated_before=master.input_loudness.integrated_lufs,
        integrated_after=master.output_loudness.integrated_lufs,
        lra_before=master.input_loudness.lra_lu,
        lra_after=master.output_loudness.lra_lu,
        true_peak_before=master.input_loudness.true_peak_dbtp,
        true_peak_after=master.output_loudness.true_peak_dbtp,
        method=master.method,
        gain_db=master.gain_db,
        noise_floor_lufs=_noise_floor(master, curves),
        parts=parts,
        speakers=speakers,
        tracks=tracks,
        low_confidence=low,
        missing_terms=missing,
        cuts=None if cuts is None else _cut_items(master, cuts, cut_decisions or CutDecisions(), cut_time),
        processing=_processing(master),
        has_curves=curves is not None,
        has_words=words is not None,
    )
    import matplotlib

    # Titles and names are data: matplotlib would read "$...$" in them as TeX (mathtext) and fail on what does not
    # parse, so every text of both plots (part and speaker names, ticks, legend) is drawn as it is.
    loud_png: dict[str, str] = {}
    level_png: dict[str, str] = {}
    with matplotlib.rc_context({**_FONT, "text.parse_math": False}):
        for size, phone in (("wide", False), ("phone", True)):
            if curves is not None:
                loud_png[size] = _png(
                    _loudness_figure(curves, master, chapters, target_lufs, ceiling_dbtp, phone=phone)
                )
            levels = _levels_figure(parts, tracks, speakers, target_lufs, phone=phone)
            if levels is not None:
                level_png[size] = _png(levels)
    if audio == "":
        beside = master.mp3.parent.resolve() == Path(out).parent.resolve()
        audio = master.mp3.name if beside else master.mp3.resolve().as_uri()
    page = _page(rep, title, audio, _timeline(master, chapters), loud_png, level_png)
    fsutil.write_text(Path(out), page)
    rep = Report(**{**vars(rep), "seconds": time.perf_counter() - t0})
    if figures is not None:
        fsutil.write_json(figures, rep.to_json())
    return rep
