"""The edit stage: long pauses, hesitations, retakes and false starts in the master's body, found from its audio and
Whisper's words, joined with the producer's decisions, and applied (docs/editing.md).

``find_cuts(words, audio, settings)`` returns a :class:`Cuts`. Each candidate's ``action`` comes from ``[edit]``:
``cut`` (applied without asking), ``mute`` (covered with room tone, the timeline kept) or ``propose`` (listed for the
producer, who accepts or rejects it by id in ``configs/episodes/<id>.cuts.toml``; :func:`decide` joins the two).
:func:`edit_master` is the stage's one function: it finds, decides and applies (:mod:`.apply`), and returns an
:class:`Edited` whose :class:`CutMap` moves every other timeline.
"""

from __future__ import annotations

import difflib
import logging
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import ffmpeg
from ..audio.artefact import Master
from ..config import CutDecisions, EditSettings
from ..errors import ConfigError, EditError
from ..layout import BuildLayout
from .apply import apply_cuts, decode_master
from .artefact import Action, Candidate, CutMap, Cuts, Edited, Kind, candidate_id, read_cuts, write_cuts

log = logging.getLogger(__name__)

__all__ = [
    "Candidate",
    "CutMap",
    "Cuts",
    "Edited",
    "Word",
    "apply_cuts",
    "decide",
    "edit_master",
    "find_cuts",
    "read_cuts",
    "write_cuts",
]

RATE = 16000
HOP = 160  # 10 ms frames
WIN = 640  # 40 ms: two periods of an 80 Hz voice, for the pitch
#: A frame sounds when it is within 35 dB of the loud speech and 10 dB over the noise floor: the rule the transcript
#: stage moves word edges by (docs/transcripts.md, "Inside each stretch", step 4).
LOUD_RANGE_DB, FLOOR_MARGIN_DB = 35.0, 10.0
MIN_PAUSE_S = 0.15  # shorter silences are stop closures inside words, not pauses
F0_RANGE = (70.0, 400.0)
VOICED_CORR = 0.6  # normalised autocorrelation at the period: over this a frame is voiced
#: A hesitation is a sound on its own: silence on both sides, 0.2-1.0 s long, voiced nearly throughout and on one
#: pitch. A word has consonants (unvoiced frames, pitch jumps); a filled pause is a held vowel or nasal with a flat
#: or slowly falling pitch (Shriberg 1999, "Phonetic consequences of speech disfluency"; Clark & Fox Tree 2002).
HES_LENGTH_S = (0.2, 1.0)
HES_PITCH_SPREAD_ST = 1.5  # semitones, standard deviation over the voiced frames
HES_SILENCE_S = 0.08  # on each side
BLIP_FRAMES = 3
#: Pieces of one hesitation: each at most this long, apart by silences at most this long (a held "uh" whose voicing
#: falters, or "uh" run into the first sound of the word it waits for, "a f-").
HES_PIECE_S, HES_JOIN_GAP_S = 0.3, 0.25
HES_PIECE_STEP_ST = 2.5  # semitones between the pieces' pitches (the sonnet's "uh" steps 1.8 from "a" to "f-a")
#: What makes a sound a held filler and not a word, whatever Whisper wrote over it (it names a held "uh" "do more",
#: an "um" "and", an "er" "or", confidently). Measured per sound on the master (docs/editing.md, "Measured"):
#:
#: * the voiced share of its core (frames within ``CORE_DB`` of its loudest) at least ``CORE_VOICED``;
#: * and either a **flat pitch**: it strays at most ``FLAT_WOBBLE_ST`` from a straight glide (the inserted fillers
#:   0.12-0.15 st, every real word on its own between silences 0.22 st or more), its spectrum steady over at least
#:   ``FLAT_STEADY`` of its steps (a nasal's one move from the vowel allowed: the "um"s 0.84-0.85);
#: * or a **prolonged steady sound**: at least ``PROLONGED_S`` long (real fillers last 0.2-0.8 s, Shriberg 1999;
#:   a one-syllable word read on its own rarely that long) with its spectrum steady over at least
#:   ``PROLONGED_STEADY`` of its steps (the "uh"s 0.92-1.0, the real words of that length 0.86 at most), its pitch
#:   within ``PROLONGED_WOBBLE_ST`` of a glide.
#:
#: Short real words on their own are what these keep out: before them, any sound Whisper wrote nothing or only
#: low-probability words over was proposed, and "deceased," and "thy lights" were (docs/editing.md).
CORE_DB, CORE_VOICED = 12.0, 0.7
SHORT_WORD_LETTERS = 3  # "a", "an", "and", "or", "the", "uh", "um": what Whisper writes over a filler
FLAT_WOBBLE_ST, FLAT_STEADY = 0.2, 0.8
PROLONGED_S, PROLONGED_STEADY, PROLONGED_WOBBLE_ST = 0.45, 0.9, 1.0
#: A 10 ms step is steady when the spectrum's shape moves by under this (root mean square over the bands, dB);
#: the shape is taken in ``BANDS`` mel-spaced bands over the vowels' and nasals' formants.
STEADY_DB = 3.0
BANDS, BAND_RANGE = 16, (100.0, 4000.0)
LOW_PROBABILITY = 0.6
#: A retake's ends are moved from Whisper's word starts to the sound's own onset found within this, less the lead.
ONSET_SEARCH_S, ONSET_LEAD_S = 0.5, 0.03
CONTEXT_WORDS = 4


class Word(Protocol):
    """What is needed of a ``words.json`` row (``keylime_prod.transcript``'s ``TimedWord`` is one)."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def word(self) -> str: ...
    @property
    def probability(self) -> float: ...


@dataclass(frozen=True)
class _Shifted:
    start: float
    end: float
    word: str
    probability: float


def _shift(c: Candidate, offset: float) -> Candidate:
    start = round(c.start + offset, 3)
    return replace(c, id=candidate_id(c.kind, start), start=start, end=round(c.end + offset, 3))


@dataclass(frozen=True)
class _Frames:
    db: np.ndarray  # level per 10 ms frame
    sounding: np.ndarray  # bool per frame
    voiced: np.ndarray  # bool per frame
    f0: np.ndarray  # Hz per frame, NaN where unvoiced
    #: The shape of each frame's spectrum: level in BANDS mel-spaced bands, in dB less the frame's mean over them (the
    #: loudness taken out, so only a change of sound shows), NaN where not computed (the frames of long sounds).
    shape: np.ndarray


def _decode(path: Path) -> np.ndarray:
    # Read in 4 MiB blocks by a thread (ffmpeg.read_stream), not gathered by subprocess through the 64 KiB pipe: the
    # clean bench hour's MP3 took 8.4 s that way and 6.9 s this way in one run (ffmpeg alone into /dev/null: 7.1 s).
    buf = bytearray()
    args = ["-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(RATE), "-"]
    for block in ffmpeg.read_stream(args, chunk_bytes=1 << 22, where=path):
        buf += block
    x = np.frombuffer(buf, np.float32)
    if not len(x):
        raise EditError("no audio in the file", where=path, hint="check that it is a recording")
    return x


def _windowed(padded: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The Hann-windowed 40 ms frames starting at ``rows`` (in hops)."""
    return padded[rows[:, None] * HOP + np.arange(WIN)[None, :]] * np.hanning(WIN).astype(np.float32)


def _frames(x: np.ndarray) -> _Frames:
    n = max(1, (len(x) - WIN) // HOP + 1)
    padded = np.concatenate([x, np.zeros(WIN, np.float32)])
    # The level of every frame, in blocks: the frames of an hour side by side are 360,000 x 640 samples (920 MB),
    # and making them took most of an hour's detection time. A frame's mean windowed power is its squared samples
    # weighted by the squared window: one matrix-vector product per block over a strided view (no copy of the rest).
    frames = np.lib.stride_tricks.sliding_window_view(padded, WIN)[::HOP]
    w2 = (np.hanning(WIN) ** 2 / WIN).astype(np.float32)
    power = np.concatenate([(frames[k : k + 8192] ** 2) @ w2 for k in range(0, n, 8192)])[:n].astype(np.float64)
    db = 10 * np.log10(power + 1e-12)
    # Digital silence (joins, gated recordings) is not the room's floor: it would put every breath over it.
    room = db[db > -100]
    loud, floor = (np.percentile(room, 95), np.percentile(room, 10)) if len(room) else (0.0, -120.0)
    sounding = db > max(loud - LOUD_RANGE_DB, floor + FLOOR_MARGIN_DB)
    # Pitch by autocorrelation (through the FFT), only where something sounds.
    f0 = np.full(n, np.nan)
    voiced = np.zeros(n, bool)
    # Only where a hesitation can be: sounds no longer than the longest one (the pitch is its only use, and most of
    # read speech runs on for longer between silences; the FFTs are the bulk of the detection's time).
    short = np.zeros(n, bool)
    for a, b, v in _runs(sounding):
        short[a:b] = v and b - a <= round(HES_LENGTH_S[1] * RATE / HOP)
    rows = np.flatnonzero(short)
    shape = np.full((n, BANDS), np.nan, np.float32)
    if len(rows):
        # In blocks of rows, each block's pitch found before the next: the autocorrelations of an hour's short
        # sounds side by side are hundreds of megabytes. One power spectrum per frame gives both the
        # autocorrelation (its inverse transform) and the band levels.
        edges = _band_edges(2 * WIN)
        lo, hi = int(RATE / F0_RANGE[1]), int(RATE / F0_RANGE[0])
        for k in range(0, len(rows), 512):
            block = rows[k : k + 512]
            power = np.abs(np.fft.rfft(_windowed(padded, block), 2 * WIN)) ** 2
            level = 10 * np.log10(np.add.reduceat(power, edges, axis=1)[:, :BANDS] + 1e-12)
            shape[block] = level - level.mean(axis=1, keepdims=True)
            ac = np.fft.irfft(power)[:, :WIN]
            ac = ac / np.maximum(ac[:, :1], 1e-12)
            lag = lo + np.argmax(ac[:, lo:hi], axis=1)
            at = np.arange(len(block))
            peak = ac[at, lag]
            # The peak between lags, from the parabola through it and its neighbours: a whole-sample lag is a step
            # of 0.1-0.3 semitone at speaking pitch, as much as the whole spread of a held vowel.
            left, right = ac[at, lag - 1], ac[at, np.minimum(lag + 1, WIN - 1)]
            bend = left - 2 * peak + right
            frac = np.where(bend < 0, 0.5 * (left - right) / np.where(bend < 0, bend, -1.0), 0.0)
            period = lag + np.clip(frac, -0.5, 0.5)
            # The windowed autocorrelation falls with the lag; undo that so low voices are not judged unvoiced.
            peak = peak / np.maximum(1 - lag / WIN, 1e-3)
            ok = peak > VOICED_CORR
            voiced[block[ok]] = True
            f0[block[ok]] = RATE / period[ok]
    return _Frames(db, sounding, voiced, f0, shape)


def _band_edges(nfft: int) -> np.ndarray:
    """The FFT bins where each of the ``BANDS`` mel-spaced bands between ``BAND_RANGE`` begins (and the last ends)."""
    lo, hi = (2595 * np.log10(1 + f / 700) for f in BAND_RANGE)
    mel = np.linspace(lo, hi, BANDS + 1)
    hz = 700 * (10 ** (mel / 2595) - 1)
    return np.round(hz * nfft / RATE).astype(int)


def _runs(m: np.ndarray) -> list[tuple[int, int, bool]]:
    if not len(m):
        return []
    edges = np.flatnonzero(np.diff(m.astype(np.int8))) + 1
    starts, ends = np.r_[0, edges], np.r_[edges, len(m)]
    return [(int(a), int(b), bool(m[a])) for a, b in zip(starts, ends, strict=True)]


def _norm(w: str) -> str:
    return re.sub(r"[^\w']", "", w.lower())


def _alike(a: str, b: str) -> bool:
    """Whether two different words Whisper wrote could be one word heard twice: one ends or begins the other (at
    least two letters: "within"/"in"), or, both of three letters or more, they share more than half their letters in
    order ("rather"/"their": difflib's ratio 0.55; "that"/"this", "in"/"on": no)."""
    if a == b or min(len(a), len(b)) < 2:
        return False
    short, long_ = sorted((a, b), key=len)
    if long_.endswith(short) or long_.startswith(short):
        return True
    return len(short) >= 3 and difflib.SequenceMatcher(None, a, b).ratio() > 0.5


def _around(words: Sequence[Word], start: float, end: float) -> tuple[str, str, str]:
    before = [w.word.strip() for w in words if w.end <= start + 0.05][-CONTEXT_WORDS:]
    after = [w.word.strip() for w in words if w.start >= end - 0.05][:CONTEXT_WORDS]
    inside = [w.word.strip() for w in words if w.start < end - 0.05 and w.end > start + 0.05]
    return " ".join(before), " ".join(after), " ".join(inside)


def _silences(fr: _Frames) -> list[tuple[float, float]]:
    """Silent stretches inside speech (not before the first sound or after the last), in seconds."""
    runs = _runs(fr.sounding)
    return [(a * HOP / RATE, b * HOP / RATE) for k, (a, b, v) in enumerate(runs) if not v and 0 < k < len(runs) - 1]


def _pauses(
    fr: _Frames, words: Sequence[Word], settings: EditSettings, action: Action
) -> tuple[list[Candidate], float, float]:
    gaps = [(a, b) for a, b in _silences(fr) if b - a >= MIN_PAUSE_S]
    ordinary = [b - a for a, b in gaps if b - a <= settings.max_pause_s]
    rhythm = float(np.percentile(ordinary, settings.rhythm_percentile)) if ordinary else 0.0
    keep = max(settings.natural_pause_s, rhythm)  # never shorter than the speaker's own pauses
    out = []
    for a, b in gaps:
        if b - a <= settings.max_pause_s or b - a <= keep:
            continue
        start, end = a + keep / 2, b - keep / 2
        before, after, text = _around(words, a, b)
        # Words Whisper writes inside a pause ("2." "3.") are what it invents over silence; they lower confidence only
        # where they carry some probability.
        conf = 0.95 if not text else 0.8
        reason = f"pause of {b - a:.2f} s, kept {keep:.2f} s"
        out.append(Candidate(candidate_id("pause", start), "pause", round(start, 3), round(end, 3), action, conf,
                             before, after, text, reason))  # fmt: skip
    return out, rhythm, keep


def _core_voiced(fr: _Frames, a: int, b: int) -> float:
    """The voiced share of the sound's core: its frames within ``CORE_DB`` of its loudest. A held vowel's fading
    edges (and the fades of an edit) are too weak for the pitch; a word's consonants are inside its core."""
    sounding = fr.sounding[a:b]
    db = fr.db[a:b][sounding]
    core = db > db.max() - CORE_DB
    return float(fr.voiced[a:b][sounding][core].mean())


def _notes(fr: _Frames, a: int, b: int) -> list[np.ndarray]:
    """The pitch (semitones) of the voiced frames of each sounding piece of frames ``a:b`` that has any."""
    notes = [12 * np.log2(fr.f0[a + x : a + y][fr.voiced[a + x : a + y]]) for x, y, on in _runs(fr.sounding[a:b]) if on]
    return [n for n in notes if len(n)]


def _pitch_wobble(notes: Sequence[np.ndarray]) -> float:
    """How far the pitch strays from a straight glide, in semitones (standard deviation of each piece's voiced
    frames, ``notes``, about its own least-squares line). A filler is held on one note or glides slowly down
    (Shriberg 1999); a word's pitch rises and falls with its syllables and jumps at its consonants."""
    rest = []
    for n in notes:
        if len(n) >= 3:
            t = np.arange(len(n))
            rest.append(n - np.polyval(np.polyfit(t, n, 1), t))
    return float(np.std(np.concatenate(rest))) if rest else float("inf")


def _steadiness(fr: _Frames, a: int, b: int) -> float:
    """The share of the sound's 10 ms steps (within one piece) over which the shape of its spectrum changes by under
    ``STEADY_DB`` (root mean square over the bands): a held vowel or nasal keeps its formants, a word moves from
    sound to sound (Clark & Fox Tree 2002: fillers are prolonged, steady syllables)."""
    steps = []
    for x, y, on in _runs(fr.sounding[a:b]):
        if on and y - x >= 2:
            d = np.diff(fr.shape[a + x : a + y], axis=0)
            steps.append(np.sqrt(np.mean(d**2, axis=1)))
    moves = np.concatenate(steps) if steps else np.zeros(0)
    moves = moves[np.isfinite(moves)]
    return float(np.mean(moves < STEADY_DB)) if len(moves) else 0.0


def _hesitation(
    fr: _Frames, words: Sequence[Word], fillers: set[str], a: int, b: int
) -> tuple[float, str, float, float] | None:
    """Whether frames ``a:b`` (one sound, or pieces of one with short silences between) hold a hesitation: its
    confidence, why, its voiced share and pitch spread; ``None`` if not."""
    start, end = a * HOP / RATE, b * HOP / RATE
    if not HES_LENGTH_S[0] <= end - start <= HES_LENGTH_S[1]:
        return None
    sounding = fr.sounding[a:b]
    voiced = fr.voiced[a:b][sounding]
    if not len(voiced) or _core_voiced(fr, a, b) < CORE_VOICED:
        return None
    # One pitch: each piece held (its spread), and pieces near each other's pitch (an "uh" resumed, not a new word).
    notes = _notes(fr, a, b)
    spread = float(np.average([np.std(n) for n in notes], weights=[len(n) for n in notes]))
    medians = [float(np.median(n)) for n in notes]
    if spread > HES_PITCH_SPREAD_ST or max(medians) - min(medians) > HES_PIECE_STEP_ST:
        return None
    share = float(voiced.mean())
    over = [w for w in words if w.start < end and w.end > start]
    if any(_norm(w.word) in fillers for w in over):
        return 0.95, "a filler word", share, spread
    # Whisper's words are no proof either way (it writes nothing over some real words, and real words over held
    # fillers): the sound's own shape decides, the words only the confidence.
    wobble, steady = _pitch_wobble(notes), _steadiness(fr, a, b)
    flat = wobble <= FLAT_WOBBLE_ST and steady >= FLAT_STEADY
    if flat:
        shape = f"flat pitch (off a glide by {wobble:.2f} st), steady {steady:.0%}"
    elif end - start >= PROLONGED_S and steady >= PROLONGED_STEADY and wobble <= PROLONGED_WOBBLE_ST:
        shape = f"prolonged and steady {steady:.0%}"
    else:
        return None
    if not over:
        return 0.8, f"{shape}, nothing written", share, spread
    if all(w.probability < LOW_PROBABILITY for w in over):
        return 0.75, f"{shape}, written with low probability", share, spread
    # Confident words over a flat sound: Whisper names a filler with the short function word nearest its sound
    # ("and" for "um", "or" for "er"; a neighbour's word may graze it too, its edges being loose); with only longer
    # words there it is a real word read on one note (the sonnet's "-sire" of "desire", 0.44 s, 0.15 st off a
    # glide, written "faffir increase,").
    if flat and not any(len(_norm(w.word)) <= SHORT_WORD_LETTERS for w in over):
        return None
    return 0.6, f"{shape}, words over it", share, spread


def _hesitations(fr: _Frames, words: Sequence[Word], settings: EditSettings, action: Action) -> list[Candidate]:
    fillers = {f.lower() for f in settings.fillers}
    # A blip under 30 ms in a silence (a click, the edge of a breath) does not break it: the master's leveler lifts
    # such things over the threshold, where the raw recording leaves them under it.
    sounding = fr.sounding.copy()
    for a, b, v in _runs(sounding):
        if v and b - a < BLIP_FRAMES:
            sounding[a:b] = False
    fr = replace(fr, sounding=sounding)
    runs = _runs(fr.sounding)
    gap, join = int(HES_SILENCE_S * RATE / HOP), int(HES_JOIN_GAP_S * RATE / HOP)
    longest, piece = int(HES_LENGTH_S[1] * RATE / HOP), int(HES_PIECE_S * RATE / HOP)
    hits: list[tuple[int, int, tuple[float, str, float, float], int]] = []
    for k, (a, _, v) in enumerate(runs):
        if not v or not 0 < k < len(runs) - 1 or runs[k - 1][1] - runs[k - 1][0] < gap:
            continue
        # The sound alone, then joined with the next ones across short silences: an "uh" whose voicing falters
        # falls apart at the silence threshold into pieces too short to judge alone.
        last = k
        while last < len(runs) - 1 and runs[last][1] - a <= longest:
            pieces = last > k
            if runs[last + 1][1] - runs[last + 1][0] >= gap and (
                not pieces or all(runs[i][1] - runs[i][0] <= piece for i in range(k, last + 1, 2))
            ):
                verdict = _hesitation(fr, words, fillers, a, runs[last][1])
                if verdict is not None:
                    hits.append((a, runs[last][1], verdict, (last - k) // 2 + 1))
            if last + 2 >= len(runs) or runs[last + 1][1] - runs[last + 1][0] > join:
                break
            last += 2
    # The longest of overlapping finds: the whole hesitation, not one of its pieces.
    found: dict[float, Candidate] = {}
    taken: list[tuple[int, int]] = []
    for a, b, (conf, why, share, spread), n in sorted(hits, key=lambda h: h[0] - h[1]):
        if any(a < y and x < b for x, y in taken):
            continue
        taken.append((a, b))
        start, end = a * HOP / RATE, b * HOP / RATE
        before, after, text = _around(words, start, end)
        joined = f" in {n} pieces" if n > 1 else ""
        reason = f"{why}; {end - start:.2f} s{joined} voiced {share:.0%}, pitch spread {spread:.2f} st"
        found[start] = Candidate(candidate_id("hesitation", start), "hesitation", round(start, 3), round(end, 3),
                                 action, conf, before, after, text, reason)  # fmt: skip
    # A filler word Whisper wrote where the sound is not on its own (run into the next word) is still a filler.
    for i, w in enumerate(words):
        if _norm(w.word) in fillers and not any(c.start < w.end and c.end > w.start for c in found.values()):
            before = " ".join(x.word.strip() for x in words[max(0, i - CONTEXT_WORDS) : i])
            after = " ".join(x.word.strip() for x in words[i + 1 : i + 1 + CONTEXT_WORDS])
            found[w.start] = Candidate(candidate_id("hesitation", w.start), "hesitation", round(w.start, 3),
                                       round(w.end, 3), action, 0.9, before, after, w.word.strip(),
                                       "a filler word")  # fmt: skip
    return [found[t] for t in sorted(found)]


def _onset(fr: _Frames, t: float, after: float = 0.0) -> float:
    """Just before the sound that begins nearest ``t`` (within ``ONSET_SEARCH_S``, not before ``after``): the start
    of a sound of at least 30 ms after at least 50 ms of silence, less ``ONSET_LEAD_S``; ``t`` itself when no sound
    begins near it."""
    runs = _runs(fr.sounding)
    onsets = [a * HOP / RATE for k, (a, b, v) in enumerate(runs)
              if v and k > 0 and b - a >= 3 and runs[k - 1][1] - runs[k - 1][0] >= 5]  # fmt: skip
    near = [o for o in onsets if abs(o - t) <= ONSET_SEARCH_S and o >= after]
    return max(0.0, min(near, key=lambda o: abs(o - t)) - ONSET_LEAD_S) if near else t


def _retakes(fr: _Frames, words: Sequence[Word], settings: EditSettings, action: Action) -> list[Candidate]:
    """A run of words said again within ``retake_window_s``: ``i..`` and ``j..`` begin with the same ``m`` words and
    the first attempt has at most two words more (broken off: "He might ev- He might even"). The first attempt, up to
    where the second begins, is the candidate."""
    norm = [_norm(w.word) for w in words]
    out: list[Candidate] = []
    taken_until = -1
    for i in range(len(words)):
        if i < taken_until or not norm[i]:
            continue
        best = None
        for j in range(i + 1, min(len(words), i + 9)):
            if words[j].start - words[i].start > settings.retake_window_s:
                break
            # The first words may differ where Whisper heard the same word twice in two ways ("rather selfish,
            # their selfish"; "within thine, in thine own"): then at least the next word must be the same.
            exact = norm[i] == norm[j]
            # Two different first words need the next word shared (m >= 2 below): that test is cheap, the likeness
            # is not (difflib, tens of thousands of pairs on an hour).
            if not exact and not (i + 1 < j and j + 1 < len(words) and norm[i + 1] == norm[j + 1]
                                  and _alike(norm[i], norm[j])):  # fmt: skip
                continue
            m = 1
            while j + m < len(words) and i + m < j and norm[i + m] == norm[j + m]:
                m += 1
            tail = j - i - m  # words of the first attempt after the shared ones
            # Two alike words followed by a short one ("hosts and guests and") are not a retake: what follows the
            # differing first word must hold a word of some length.
            carried = exact or any(len(norm[j + k]) >= 4 for k in range(1, m))
            if carried and ((m >= 2 and tail <= 2) or (exact and m == 1 and tail == 0)):
                best = (j, m, tail, exact)
                break
        if best is None:
            continue
        j, m, tail, exact = best
        conf = (0.9 if tail == 0 else 0.75) if m >= 2 and exact else 0.6 if m >= 2 else 0.5

        # Whisper's word starts are off by up to a few tenths of a second; the cut runs from just before the first
        # attempt's first sound to just before the second's, so the pause before the first attempt stays.
        # Not back into the word before: a sound that begins before its middle is that word's ("and rather
        # selfish": "rather" runs on from "and", whose onset was the nearest, and the cut took "and" too).
        def mid(k: int) -> float:
            return (words[k - 1].start + words[k - 1].end) / 2 if k > 0 else 0.0

        start, end = _onset(fr, words[i].start, mid(i)), _onset(fr, words[j].start, mid(j))
        if end <= start:
            continue
        first = " ".join(w.word.strip() for w in words[i:j])
        before = " ".join(w.word.strip() for w in words[max(0, i - CONTEXT_WORDS) : i])
        after = " ".join(w.word.strip() for w in words[j : j + CONTEXT_WORDS + m])
        kind = "said again" if tail == 0 else "broken off and begun again"
        out.append(Candidate(candidate_id("retake", start), "retake", round(start, 3), round(end, 3), action, conf,
                             before, after, first, f"{m} word(s) {kind}"))  # fmt: skip
        taken_until = j
    return out


def find_cuts(
    words: Sequence[Word],
    audio: Path,
    settings: EditSettings,
    *,
    span: tuple[float, float] | None = None,
    source: Path | None = None,
) -> Cuts:
    """Cut candidates in ``audio`` (a recording, or the master), whose words are ``words`` (Whisper's, on the same
    timeline): pauses longer than ``settings.max_pause_s`` inside speech, hesitations and retakes. With ``span``,
    only that stretch is searched (the master's body: the intro's music is not speech); times stay the file's.
    ``source``: the file the times are named on when ``audio`` is another copy of it (the master's MP3, when its
    lossless copy is what was read)."""
    t0 = time.perf_counter()
    audio = Path(audio)
    x = _decode(audio)
    offset = 0.0
    if span is not None:
        a, b = (max(0, round(t * RATE)) for t in span)
        x, offset = x[a:b], a / RATE
        words = [_Shifted(w.start - offset, w.end - offset, w.word, w.probability) for w in words
                 if w.end > span[0] and w.start < span[1]]  # fmt: skip
    fr = _frames(x)
    words = sorted(words, key=lambda w: w.start)
    pauses, rhythm, keep = _pauses(fr, words, settings, settings.pauses)
    candidates = pauses + _hesitations(fr, words, settings, settings.hesitations)
    candidates += _retakes(fr, words, settings, settings.retakes)
    if offset:
        candidates = [_shift(c, offset) for c in candidates]
    return Cuts(
        source=str(source or audio),
        seconds=round(len(x) / RATE + offset, 3),
        candidates=tuple(sorted(candidates, key=lambda c: (c.start, c.kind))),
        pause_rhythm_s=round(rhythm, 3),
        kept_pause_s=round(keep, 3),
        settings=settings.model_dump(mode="json"),
        elapsed_seconds=round(time.perf_counter() - t0, 3),
    )


@dataclass(frozen=True)
class Decided:
    """What will be cut: the candidates whose action is ``cut`` or that the producer accepted, and their own cuts."""

    cuts: tuple[Candidate, ...]
    muted: tuple[Candidate, ...]
    open: tuple[Candidate, ...]  # proposed, not yet accepted or rejected


def decide(cuts: Cuts, decisions: CutDecisions, where: Path | str) -> Decided:
    """Join the candidates with a producer's decisions file ``where``; an id it names that no candidate has is an
    error naming the file and field (a typo, or candidates found again on changed audio)."""
    ids = {c.id for c in cuts.candidates}
    for name in ("accept", "reject"):
        for k, cid in enumerate(getattr(decisions, name)):
            if cid not in ids:
                raise ConfigError(
                    f"field {name}[{k}]: no cut candidate {cid!r}",
                    where=where,
                    hint="use an id from cuts.json, or remove it if the audio changed",
                )
    accepted, rejected = set(decisions.accept), set(decisions.reject)
    chosen, muted, pending = [], [], []
    for c in cuts.candidates:
        if c.id in rejected:
            continue
        if c.id in accepted or c.action == "cut":
            chosen.append(c)
        elif c.action == "mute":
            muted.append(c)
        else:
            pending.append(c)
    for k, own in enumerate(decisions.cut):
        kind: Kind = "pause"  # a producer's own cut is cut like a pause: between words, over room tone
        chosen.append(Candidate(f"own-{k}", kind, own.start, own.end, "cut", 1.0, "", "", "", own.note or "own cut"))
    return Decided(tuple(sorted(chosen, key=lambda c: c.start)), tuple(muted), tuple(pending))


def edit_master(
    master: Master,
    words: Sequence[Word] | None,
    settings: EditSettings,
    decisions: CutDecisions,
    layout: BuildLayout,
    *,
    decisions_file: Path | str,
) -> Edited:
    """The edit stage: find the cut candidates in the master's body from Whisper's ``words`` (on the master's
    timeline; ``None``: not transcribed, so nothing is found or cut), write ``cuts.json``, join the producer's
    ``decisions`` (read from ``decisions_file``) and apply what they and ``settings`` say to the master audio. The
    result carries the cut master (the master itself when nothing is cut) and the map every other timeline goes
    through; ``edit.json`` records it."""
    t0 = time.perf_counter()
    if words is None:
        cuts = Cuts(str(master.mp3), master.duration, (), 0.0, 0.0, settings.model_dump(mode="json"))
        audio, t1 = None, time.perf_counter()
    else:
        body = master.body
        # When something will be cut (long pauses are by default), the master is decoded for the splice on the
        # other core while the detection decodes and reads its own 16 kHz copy (on an hour: 62 s for the stage
        # against 85 s one after the other; resampling one decode in numpy cost more than decoding twice).
        actions = (settings.pauses, settings.hesitations, settings.retakes)
        likely = any(a != "propose" for a in actions) or decisions.accept or decisions.cut
        # Both read the PCM the master's MP3 was encoded from, when the mastering stage kept it: the cut file is then
        # one lossy generation, and FLAC decodes in half the time of MP3 (docs/editing.md, "Applying the cuts").
        src = master.lossless_source()
        if src is None and master.lossless is not None:
            log.warning("%s: %s is missing or changed; cutting the MP3 itself", master.episode_id, master.lossless)
        src = src or master.mp3
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(decode_master, master, src) if likely else None
            cuts = find_cuts(words, src, settings, span=(body.start, body.end), source=master.mp3)
            t1 = time.perf_counter()  # the detection's time; waiting for the splice's decode is the applying's
            audio = pending.result() if pending is not None else None
    write_cuts(layout.cuts_json, cuts)
    decided = decide(cuts, decisions, decisions_file)
    cut_master, cut_map, applied = apply_cuts(
        master, (*decided.cuts, *decided.muted), layout.edited_mp3, layout.edited_master_json,
        curves=(layout.loudness_json, layout.edited_loudness_json), audio=audio,
    )  # fmt: skip
    del audio
    edited = Edited(
        master=cut_master,
        map=cut_map,
        applied=applied,
        candidates=len(cuts.candidates),
        open=tuple(c.id for c in decided.open),
        detect_seconds=round(t1 - t0, 3),
        apply_seconds=round(time.perf_counter() - t1, 3),
    )
    edited.write(layout.edit_json)
    return edited
