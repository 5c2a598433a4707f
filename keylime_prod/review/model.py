"""What the review page shows, read from the build folder and the episode's edit files (never measured again,
except the waveform's peaks, which no stage records).

Everything is on the published timeline (the master MP3 the page plays, with the edit's cuts applied when there
are any): words from ``words.json``, the loudness curves from ``loudness.json`` (``edited/loudness.json`` after
cuts), the chapters mapped from the config (raw recordings' timeline) with :meth:`Master.body_to_episode`, the cut
candidates from ``cuts.json`` (on the master's timeline, moved through the edit's cut map).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ffmpeg, timecode
from ..audio.artefact import LoudnessCurves, Master
from ..chapters import SNAP_TO_BODY_S
from ..config import (
    EpisodeConfig,
    Settings,
    corrections_path,
    cut_decisions_path,
    episode_path,
    load_cut_decisions,
    load_episode,
    load_speaker_names,
    speakers_path,
)
from ..edit.artefact import CutMap, Cuts, Edited, read_cuts
from ..errors import ReviewError
from ..layout import BuildLayout
from ..transcript import episode_hints
from ..transcript.artefact import Heard, TimedWord, read_words

#: Words under this probability are highlighted as least sure (the production report's review threshold,
#: docs/transcripts.md "Outputs"); the page lists the :data:`UNSURE_LISTED` least sure of them first.
UNSURE_BELOW = 0.6
UNSURE_LISTED = 30
#: A new paragraph at a change of speaker or after a pause this long (docs/transcripts.md, "Paragraphs").
PARAGRAPH_PAUSE_S = 2.0
#: Waveform peaks per second of audio, and the most the page is sent (a 60-minute episode: 12 000).
PEAKS_PER_S = 20
MAX_PEAKS = 12_000
#: The rate the master is decoded at for its peaks: enough for the envelope of speech, 1/24 of the data at 48 kHz.
PEAK_RATE = 2000
#: The loudness plot's width in points, and its range in LUFS.
PLOT_POINTS = 600
PLOT_LUFS = (-60.0, 0.0)


@dataclass(frozen=True)
class PageWord:
    index: int
    start: float
    end: float
    text: str
    probability: float
    speaker: str
    unsure: bool
    term: bool

    @property
    def clock(self) -> str:
        return timecode.hms_ms(self.start)[:-2]


@dataclass(frozen=True)
class Paragraph:
    speaker: str
    start: float
    words: tuple[PageWord, ...]

    @property
    def clock(self) -> str:
        return timecode.hms(self.start)


@dataclass(frozen=True)
class Speaker:
    label: str  # as the recogniser wrote it (heard.json)
    name: str  # what the transcript shows (the speakers file's name, else the label)


@dataclass(frozen=True)
class PageCut:
    id: str
    kind: str
    start: float  # published timeline
    end: float
    action: str  # from [edit]: cut, mute or propose
    choice: str  # the producer's: cut, keep or open
    confidence: float
    before: str
    after: str
    text: str
    reason: str

    @property
    def clock(self) -> str:
        return timecode.hms_ms(self.start)[:-2]


@dataclass(frozen=True)
class PageChapter:
    index: int  # in the config's [[chapters]]
    title: str
    start: float  # published timeline
    raw_start: float  # the config's value (raw recordings)

    @property
    def clock(self) -> str:
        return timecode.hms_ms(self.start)[:-2]


@dataclass(frozen=True)
class Curve:
    """A loudness curve as an SVG polyline in a 1000 x 200 box."""

    name: str
    points: str


@dataclass(frozen=True)
class ReviewPage:
    episode_id: str
    title: str
    number: int
    duration: float
    audio: Path
    audio_sha256: str
    paragraphs: tuple[Paragraph, ...]
    words: tuple[PageWord, ...]
    unsure: tuple[PageWord, ...]
    terms: tuple[str, ...]
    speakers: tuple[Speaker, ...]
    cuts: tuple[PageCut, ...]
    cuts_found: bool
    chapters: tuple[PageChapter, ...]
    curves: tuple[Curve, ...]
    target_y: float | None
    target_lufs: float
    #: Integrated loudness before and after mastering (LUFS), and the master's true peak (dBTP): master.json.
    loudness: tuple[float, float, float]
    edit_files: dict[str, Path]

    @property
    def duration_clock(self) -> str:
        return timecode.hms(self.duration)


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _term_words(words: Sequence[TimedWord], terms: Sequence[str]) -> set[int]:
    """Indices of the words that spell one of ``terms`` (case and punctuation aside; across words)."""
    out: set[int] = set()
    norms = [_norm(w.word) for w in words]
    for term in terms:
        target = _norm(term)
        if not target:
            continue
        for i in range(len(norms)):
            acc, j = "", i
            while j < len(norms) and len(acc) < len(target) and target.startswith(acc + norms[j]):
                acc += norms[j]
                j += 1
            if acc == target and j > i:
                out.update(range(i, j))
    return out


def _paragraphs(words: Sequence[PageWord]) -> tuple[Paragraph, ...]:
    out: list[Paragraph] = []
    run: list[PageWord] = []
    for w in words:
        if run and (w.speaker != run[-1].speaker or w.start - run[-1].end > PARAGRAPH_PAUSE_S):
            out.append(Paragraph(run[0].speaker, run[0].start, tuple(run)))
            run = []
        run.append(w)
    if run:
        out.append(Paragraph(run[0].speaker, run[0].start, tuple(run)))
    return tuple(out)


def published(layout: BuildLayout) -> tuple[Master, CutMap | None]:
    """The master as it will be published: with the edit's cuts applied when the edit stage ran (``edit.json``),
    and the cut map from the master's timeline onto it; else the master itself and ``None``."""
    if layout.edit_json.is_file():
        e = Edited.load(layout.edit_json)
        return e.master, e.map
    return Master.load(layout.master_json), None


def _cuts_on_timeline(cuts: Cuts, master: Master, moved: CutMap | None) -> list[tuple[float, float]]:
    # Candidates found on the master are on its timeline: moved through the cut map onto the published one when cuts
    # were applied; found on the raw recordings (laid end to end), they are mapped like the config's chapters.
    if moved is not None:
        return [(moved.time(c.start), moved.time(c.end)) for c in cuts.candidates]
    if Path(cuts.source).name == master.mp3.name:
        return [(c.start, c.end) for c in cuts.candidates]
    return [(master.body_to_episode(c.start), master.body_to_episode(c.end)) for c in cuts.candidates]


def _curves(path: Path, target_lufs: float) -> tuple[tuple[Curve, ...], float | None]:
    if not path.is_file():
        return (), None
    doc = LoudnessCurves.load(path)
    lo, hi = PLOT_LUFS

    def y(v: float) -> float:
        return round(200 * (hi - min(hi, max(lo, v))) / (hi - lo), 1)

    out = []
    for name, pair in (("before", doc.before), ("after", doc.after)):
        values = np.array([math.nan if v is None else v for v in pair.short_term], dtype=np.float64)
        if not len(values):
            continue
        # The loudest block of each column: a 60-minute curve keeps its peaks in 600 points.
        step = max(1, math.ceil(len(values) / PLOT_POINTS))
        pts = []
        for k in range(0, len(values), step):
            chunk = values[k : k + step]
            chunk = chunk[np.isfinite(chunk)]
            v = float(chunk.max()) if len(chunk) else lo
            pts.append(f"{round(1000 * k / len(values), 1)},{y(v)}")
        out.append(Curve(name, " ".join(pts)))
    return tuple(out), y(target_lufs)


def build_page(settings: Settings, episode_id: str) -> ReviewPage:
    """The review page of ``episode_id`` from its build folder and edit files; :class:`ReviewError` when the build
    it needs (master and transcript) is not there."""
    configs = settings.configs_dir
    episode: EpisodeConfig = load_episode(configs, episode_id)
    layout: BuildLayout = settings.layout(episode_id)
    for need in (layout.master_json, layout.words_json, layout.heard_json):
        if not need.is_file():
            raise ReviewError("the episode has not been built", where=need, hint=f"run `produce review {episode_id}`")
    master, moved = published(layout)
    words = read_words(layout.words_json)
    heard = Heard.load(layout.heard_json)
    names = load_speaker_names(configs, episode_id).names

    terms = tuple(dict.fromkeys([*settings.show.whisper.glossary, *episode_hints(episode, settings.show.show.hosts)]))
    in_terms = _term_words(words, terms)
    page_words = tuple(
        PageWord(i, w.start, w.end, w.word.strip(), w.probability, w.speaker or "", w.probability < UNSURE_BELOW,
                 i in in_terms)
        for i, w in enumerate(words)
    )  # fmt: skip
    unsure = tuple(sorted((w for w in page_words if w.unsure), key=lambda w: (w.probability, w.start))[:UNSURE_LISTED])
    labels = list(dict.fromkeys(w.speaker for w in heard.words if w.speaker))
    speakers = tuple(Speaker(label, names.get(label, label)) for label in labels)

    cuts: list[PageCut] = []
    found = layout.cuts_json.is_file()
    if found:
        cand = read_cuts(layout.cuts_json)
        decisions = load_cut_decisions(cut_decisions_path(configs, episode_id))
        accepted, rejected = set(decisions.accept), set(decisions.reject)
        for c, (s, e) in zip(cand.candidates, _cuts_on_timeline(cand, master, moved), strict=True):
            choice = "cut" if c.id in accepted else "keep" if c.id in rejected else "open"
            cuts.append(PageCut(c.id, c.kind, round(s, 3), round(e, 3), c.action, choice, c.confidence, c.before,
                                c.after, c.text, c.reason))  # fmt: skip

    body = master.body
    chapters = []
    for i, ch in enumerate(episode.chapters):
        t = master.body_to_episode(ch.start)
        if t < body.start or (i == 0 and t - body.start < SNAP_TO_BODY_S):
            t = body.start  # as the chapters stage places a first chapter near the body's start
        chapters.append(PageChapter(i, ch.title, round(t, 3), ch.start))

    cut_curves = moved is not None and layout.edited_loudness_json.is_file()
    curves, target_y = _curves(
        layout.edited_loudness_json if cut_curves else layout.loudness_json, settings.show.audio.target_lufs
    )
    return ReviewPage(
        episode_id=episode_id, title=episode.title, number=episode.number, duration=master.duration,
        audio=master.mp3, audio_sha256=master.audio_sha256, paragraphs=_paragraphs(page_words), words=page_words,
        unsure=unsure, terms=terms, speakers=speakers, cuts=tuple(cuts), cuts_found=found, chapters=tuple(chapters),
        curves=curves, target_y=target_y, target_lufs=settings.show.audio.target_lufs,
        loudness=(master.input_loudness.integrated_lufs, master.output_loudness.integrated_lufs,
                  master.output_loudness.true_peak_dbtp),
        edit_files={
            "corrections": corrections_path(configs, episode_id), "cuts": cut_decisions_path(configs, episode_id),
            "speakers": speakers_path(configs, episode_id), "episode": episode_path(configs, episode_id),
        },
    )  # fmt: skip


def waveform_peaks(audio: Path, duration: float) -> list[float]:
    """The largest amplitude (0-1) in each of ``PEAKS_PER_S`` steps a second (at most ``MAX_PEAKS``) of ``audio``,
    decoded by ffmpeg to mono at ``PEAK_RATE``: what the page's waveform draws without decoding the file itself."""
    out = ffmpeg.run(
        ["-v", "error", "-i", str(audio), "-ac", "1", "-ar", str(PEAK_RATE), "-f", "s16le", "-"], where=audio
    )
    x = np.abs(np.frombuffer(out.stdout, np.int16).astype(np.float32)) / 32768.0
    if not len(x):
        raise ReviewError("no audio to draw", where=audio, hint="run the master stage again")
    n = max(1, min(MAX_PEAKS, math.ceil(duration * PEAKS_PER_S)))
    edges = np.linspace(0, len(x), n + 1).astype(int)
    return [round(float(x[a:b].max()) if b > a else 0.0, 3) for a, b in itertools.pairwise(edges)]


_CLOCK = re.compile(r"^\d+(:\d+){0,2}(\.\d+)?$")


def parse_time(text: str) -> float:
    """A time a producer typed (``12:03.4``, ``1:02:03``, ``75.5``) in seconds; :class:`ReviewError` otherwise."""
    text = text.strip()
    if not _CLOCK.match(text):
        raise ReviewError(f"{text!r} is not a time such as 12:03.4", where="the chapter's start")
    return timecode.parse(text)
