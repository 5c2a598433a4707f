"""The production report: ``build/<id>/report.html``, one self-contained page a producer reads before publishing.

It answers "is this episode fit to publish?" from what the other stages recorded, never by measuring again:

- loudness over time (momentary and short-term, before and after mastering, the target, the segments and chapters)
  from ``loudness.json``, the master stage's curves (format: ``{"hop_s", "before": {"momentary",
  "short_term"}, "after": {...}}`` on the published timeline, ``null`` for -inf);
- integrated loudness, LRA (EBU Tech 3342), true peak, which way the target was reached (gain alone or the limiter:
  ffmpeg's loudnorm hides such a switch, docs/platform.md asks us to say it), the limiter's and (when the master stage
  records one) the leveler's and denoiser's figures, from ``master.json``;
- per-recording levels (``master.json``) and per-speaker levels (the curve, cut by who speaks when);
- a noise-floor estimate: the median level of the body's pauses (momentary blocks 20 LU or more under its speech);
- a transcript review list from ``words.json`` (``{"words": [{"start", "end", "word", "probability", "speaker"}]}``):
  the words the recogniser was least sure of, and the episode's own names and terms it never wrote (not even in a
  close spelling: case, spaces, hyphens and a plural or possessive "s" aside), each with a timestamp to check.

Plots are drawn with matplotlib's Agg canvas (no display, no pyplot global state) and embedded as PNG data URIs, so
the page is one file that can be published with the episode. :func:`write_report` is the stage.
"""

from __future__ import annotations

import base64
import difflib
import io
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, fsutil, pages, timecode
from ..audio.artefact import Details, LoudnessCurves, Master, MasteredDetails
from ..chapters.artefact import ChapterMark
from ..errors import ReportError
from ..transcript.artefact import TimedWord, read_words

#: How many of the least-sure words the review list shows, and below which probability a word is worth a look.
REVIEW_WORDS = 30
REVIEW_BELOW = 0.6
#: Plots never need more points than this across (a 60-minute curve at a 100 ms hop has 36 000).
PLOT_COLUMNS = 1800
REPORT_SCHEMA = "keylime-prod/report/1"
#: BS.1770-4 gates for integrated loudness over the curve's blocks.
ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0


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

    def problems(self) -> tuple[str, ...]:
        """What is out of range (Apple: -16 LUFS +-1 LU, true peak at or under the ceiling)."""
        out = []
        if abs(self.integrated_after - self.target_lufs) > 1.0:
            out.append(f"integrated loudness {self.integrated_after:.1f} LUFS is not {self.target_lufs:g} +-1 LU")
        if self.true_peak_after > self.ceiling_dbtp + 0.05:
            out.append(f"true peak {self.true_peak_after:.2f} dBTP is over the {self.ceiling_dbtp:g} dBTP ceiling")
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

    def rows(self) -> list[tuple[str, str]]:
        """Label/value rows: what ``produce report`` prints and the page's first table shows."""

        def lufs(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.1f} LUFS"

        rows = [
            ("integrated", f"{self.integrated_before:.1f} -> {self.integrated_after:.1f} LUFS "
                           f"(target {self.target_lufs:g})"),
            ("loudness range", f"{self.lra_before:.1f} -> {self.lra_after:.1f} LU"),
            ("true peak", f"{self.true_peak_before:.2f} -> {self.true_peak_after:.2f} dBTP "
                          f"(ceiling {self.ceiling_dbtp:g})"),
            ("reached by", _REACHED_BY.get(self.method, "gain alone") + f", {self.gain_db:+.1f} dB"),
            ("noise floor", lufs(self.noise_floor_lufs) + (" (room tone in the body's pauses)" if
                                                            self.noise_floor_lufs is not None else " (no curve)")),
        ]  # fmt: skip
        for name, figures in self.processing.items():
            rows.append((name, ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items()) or "on"))
        for p in self.parts:
            rows.append((f"recording {p.name}", f"{lufs(p.before_lufs)} -> {lufs(p.after_lufs)}"))
        for s in self.speakers:
            rows.append((f"speaker {s.name}", f"{lufs(s.after_lufs)} over {s.seconds:.0f} s"))
        rows.append(("review", f"{len(self.low_confidence)} uncertain word(s), "
                               f"{len(self.missing_terms)} glossary term(s) never heard"
                     if self.has_words else "no word list (transcribe the episode)"))  # fmt: skip
        rows += [("PROBLEM", problem) for problem in self.problems()]
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
            "low_confidence": [vars(w) for w in self.low_confidence],
            "missing_terms": [vars(w) for w in self.missing_terms],
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
                low_confidence=tuple(ReviewItem(**x) for x in d["low_confidence"]),
                missing_terms=tuple(ReviewItem(**x) for x in d["missing_terms"]),
                processing=d["processing"],
                has_curves=d["has_curves"],
                has_words=d["has_words"],
                seconds=d["seconds"],
            )
        except (KeyError, TypeError, IndexError) as e:
            raise ReportError(f"unreadable report figures: {e!r}", where=path, hint="delete it and re-run") from None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return str(v)


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
    """Each speaker's loudness after mastering: the blocks inside their words (``words.json`` speakers), else the
    blocks of the recordings they spoke (the episode's ``speakers``, one per recording)."""
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
    hop = curves.hop_s
    n = len(curves.after_momentary)
    centres = np.arange(n) * hop + 0.2  # a momentary block is 400 ms long: its middle
    out = []
    for who, ss in spans.items():
        mask = np.zeros(n, dtype=bool)
        starts = np.array([a for a, _ in ss])
        ends = np.array([b for _, b in ss])
        # Blocks whose middle falls inside one of the spans (spans are sorted in time).
        idx = np.searchsorted(starts, centres, side="right") - 1
        ok = idx >= 0
        mask[ok] = centres[ok] < ends[idx[ok]]
        seconds = float(np.sum(ends - starts))
        out.append(Level(who, gated_loudness(curves.after_momentary[mask]), seconds=round(seconds, 1)))
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


# ------------------------------------------------------------------------------------------------------- plots


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
    with np.errstate(all="ignore"):
        return t[:m:step], np.nanmean(v[:m].reshape(-1, step), axis=1)


def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _loudness_plot(
    curves: Curves, master: Master, chapters: Sequence[ChapterMark], target: float, ceiling: float
) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    ax = fig.add_subplot()
    colours = {"before": "#9aa5b1", "after": "#1f6feb", "as published": "#1f6feb"}
    series = [
        ("before", curves.before_momentary, curves.before_short_term),
        ("after", curves.after_momentary, curves.after_short_term),
    ]
    if master.method == "kept":  # one audio, measured once: "before" would hide under an identical "after"
        series = [("as published", curves.after_momentary, curves.after_short_term)]
    for when, mom, st in series:
        t, lo, hi = _envelope(curves.times(mom), mom, PLOT_COLUMNS)
        ax.fill_between(t, lo, hi, color=colours[when], alpha=0.25, linewidth=0, label=f"momentary, {when}")
        ts, ms = _mean_columns(curves.times(st), st, PLOT_COLUMNS)
        ax.plot(ts, ms, color=colours[when], linewidth=1.2, label=f"short-term, {when}")
    ax.axhline(target, color="#d73a49", linewidth=1, linestyle="--", label=f"target {target:g} LUFS")
    shades = {"intro": "#fff5b1", "disclaimer": "#ffdce0", "outro": "#fff5b1"}
    for seg in master.segments:
        if seg.name in shades:
            ax.axvspan(seg.start, seg.end, color=shades[seg.name], alpha=0.6, linewidth=0)
        ax.text(seg.start, 0.99, f" {seg.name}", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    for c in chapters:
        ax.axvline(c.start, color="#6f42c1", linewidth=0.8, alpha=0.7)
        ax.text(c.start, 0.02, f" {c.title[:28]}", transform=ax.get_xaxis_transform(), rotation=90, fontsize=7,
                va="bottom", color="#6f42c1")  # fmt: skip
    finite = [float(np.nanmin(x)) for x in (curves.after_short_term, curves.before_short_term) if np.isfinite(x).any()]
    ax.set_ylim(max(min(finite, default=-60.0) - 5, -70.0), max(target + 10, ceiling + 2))
    ax.set_xlim(0, master.duration)
    ax.set_xlabel("time in the published file (s)")
    ax.set_ylabel("LUFS")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7, ncol=3)
    fig.tight_layout()
    return _png(fig)


def _levels_plot(parts: Sequence[Level], speakers: Sequence[Level], target: float) -> str | None:
    rows = [(f"rec. {p.name}", p.before_lufs, p.after_lufs) for p in parts]
    rows += [(f"spk. {s.name}", None, s.after_lufs) for s in speakers]
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 0.45 * len(rows) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    before = [r[1] if r[1] is not None else math.nan for r in rows]
    after = [r[2] if r[2] is not None else math.nan for r in rows]
    ax.scatter(before, y, color="#9aa5b1", label="before (input)", zorder=3)
    ax.scatter(after, y, color="#1f6feb", label="after (in the master)", zorder=3)
    ax.axvline(target, color="#d73a49", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_yticks(y, [r[0][:40] for r in rows], fontsize=8)
    ax.set_xlabel("LUFS")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _png(fig)


# -------------------------------------------------------------------------------------------------------- page


def _page(report: Report, title: str, loud_png: str | None, level_png: str | None) -> str:
    # Autoescaped (templates/report.html.j2): titles, speaker names, words and glossary terms reach the page escaped.
    return pages.render(
        __name__,
        "report.html.j2",
        ReportError,
        report=report,
        title=title,
        loud_png=loud_png,
        level_png=level_png,
        version=__version__,
        kept_note=KEPT_NOTE,
        review_below=f"{REVIEW_BELOW:g}",
        fmt=_fmt,
        parts=[(p.name, p.before_lufs, p.gain_db, p.after_lufs, p.seconds) for p in report.parts],
        speakers=[(s.name, s.after_lufs, s.seconds) for s in report.speakers],
        unsure=[(w.clock, w.text, w.probability, w.note) for w in report.low_confidence],
        missing=[(w.clock, w.text, w.note) for w in report.missing_terms],
    )


# ------------------------------------------------------------------------------------------------------- stage


def _processing(details: Details) -> dict[str, dict[str, Any]]:
    """The limiter's, leveler's, denoiser's and codec calibration's figures of a rendered master, by name, each
    without the figures it has none of (``None``)."""
    if not isinstance(details, MasteredDetails):
        return {}
    out: dict[str, dict[str, Any]] = {}
    figures = (
        ("limiter", asdict(details.limiter)), ("leveler", asdict(details.leveler)),
        ("denoise", asdict(details.denoise)), ("codec calibration", asdict(details.codec_calibration)),
    )  # fmt: skip
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
) -> Report:
    """Write the production report of ``master`` to ``out`` (atomically) and return its figures (also written to
    ``figures``, ``report.json``, when given).

    ``curves`` and ``words`` are :func:`load_curves` / :func:`load_words` of the build's ``loudness.json`` and
    ``words.json`` (either may be ``None``: the page says what is missing). ``recording_speakers`` names who speaks
    in each recording, used for per-speaker levels when the words carry no speakers.
    """
    t0 = time.perf_counter()
    if curves is not None and not any(
        len(v) for v in (curves.after_momentary, curves.after_short_term)
    ):  # an empty curve would draw an empty, misleading plot
        curves = None
    parts = _part_levels(master, curves)
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
        low_confidence=low,
        missing_terms=missing,
        processing=_processing(master.details),
        has_curves=curves is not None,
        has_words=words is not None,
    )
    import matplotlib

    # Titles and names are data: matplotlib would read "$...$" in them as TeX (mathtext) and fail on what does not
    # parse, so every text of both plots (chapter titles, part and speaker names, ticks, legend) is drawn as it is.
    with matplotlib.rc_context({"text.parse_math": False}):
        loud_png = _loudness_plot(curves, master, chapters, target_lufs, ceiling_dbtp) if curves is not None else None
        level_png = _levels_plot(parts, speakers, target_lufs)
    fsutil.write_text(Path(out), _page(rep, title, loud_png, level_png))
    rep = Report(**{**vars(rep), "seconds": time.perf_counter() - t0})
    if figures is not None:
        fsutil.write_json(figures, rep.to_json())
    return rep
