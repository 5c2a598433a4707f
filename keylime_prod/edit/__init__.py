"""Cut candidates: long pauses, hesitations, retakes and false starts in a recording (or the master's body), found
from its audio and Whisper's words (``words.json``), and the producer's decisions on them (docs/editing.md).

``find_cuts(words, audio, settings)`` returns a :class:`Cuts`; nothing is cut here. Each candidate's ``action`` comes
from ``[edit]``: ``cut`` (applied without asking), ``mute`` or ``propose`` (listed for the producer, who accepts or
rejects it by id in ``configs/episodes/<id>.cuts.toml``; :func:`decide` joins the two).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import ffmpeg
from ..config import CutDecisions, EditSettings
from ..errors import ConfigError, EditError
from .artefact import Action, Candidate, Cuts, Kind, candidate_id, read_cuts, write_cuts

__all__ = ["Candidate", "Cuts", "Word", "decide", "find_cuts", "read_cuts", "write_cuts"]

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
HES_VOICED_SHARE = 0.75
HES_PITCH_SPREAD_ST = 1.5  # semitones, standard deviation over the voiced frames
HES_SILENCE_S = 0.08  # on each side
LOW_PROBABILITY = 0.6
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
class _Frames:
    db: np.ndarray  # level per 10 ms frame
    sounding: np.ndarray  # bool per frame
    voiced: np.ndarray  # bool per frame
    f0: np.ndarray  # Hz per frame, NaN where unvoiced


def _decode(path: Path) -> np.ndarray:
    out = ffmpeg.run(["-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(RATE), "-"], where=path)
    x = np.frombuffer(out.stdout, np.float32)
    if not len(x):
        raise EditError("no audio in the file", where=path, hint="check that it is a recording")
    return x


def _frames(x: np.ndarray) -> _Frames:
    n = max(1, (len(x) - WIN) // HOP + 1)
    padded = np.concatenate([x, np.zeros(WIN, np.float32)])
    idx = np.arange(n)[:, None] * HOP + np.arange(WIN)[None, :]
    fr = padded[idx] * np.hanning(WIN).astype(np.float32)
    power = np.mean(fr**2, axis=1)
    db = 10 * np.log10(power + 1e-12)
    # Digital silence (joins, gated recordings) is not the room's floor: it would put every breath over it.
    room = db[db > -100]
    loud, floor = (np.percentile(room, 95), np.percentile(room, 10)) if len(room) else (0.0, -120.0)
    sounding = db > max(loud - LOUD_RANGE_DB, floor + FLOOR_MARGIN_DB)
    # Pitch by autocorrelation (through the FFT), only where something sounds.
    f0 = np.full(n, np.nan)
    voiced = np.zeros(n, bool)
    rows = np.flatnonzero(sounding)
    if len(rows):
        spec = np.fft.rfft(fr[rows], 2 * WIN)
        ac = np.fft.irfft(np.abs(spec) ** 2)[:, :WIN]
        ac = ac / np.maximum(ac[:, :1], 1e-12)
        lo, hi = int(RATE / F0_RANGE[1]), int(RATE / F0_RANGE[0])
        lag = lo + np.argmax(ac[:, lo:hi], axis=1)
        peak = ac[np.arange(len(rows)), lag]
        # The windowed autocorrelation falls with the lag; undo that so low voices are not judged unvoiced.
        peak = peak / np.maximum(1 - lag / WIN, 1e-3)
        ok = peak > VOICED_CORR
        voiced[rows[ok]] = True
        f0[rows[ok]] = RATE / lag[ok]
    return _Frames(db, sounding, voiced, f0)


def _runs(m: np.ndarray) -> list[tuple[int, int, bool]]:
    if not len(m):
        return []
    edges = np.flatnonzero(np.diff(m.astype(np.int8))) + 1
    starts, ends = np.r_[0, edges], np.r_[edges, len(m)]
    return [(int(a), int(b), bool(m[a])) for a, b in zip(starts, ends, strict=True)]


def _norm(w: str) -> str:
    return re.sub(r"[^\w']", "", w.lower())


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


def _hesitations(fr: _Frames, words: Sequence[Word], settings: EditSettings, action: Action) -> list[Candidate]:
    fillers = {f.lower() for f in settings.fillers}
    found: dict[float, Candidate] = {}
    runs = _runs(fr.sounding)
    gap = int(HES_SILENCE_S * RATE / HOP)
    for k, (a, b, v) in enumerate(runs):
        if not v or not 0 < k < len(runs) - 1:
            continue
        if runs[k - 1][1] - runs[k - 1][0] < gap or runs[k + 1][1] - runs[k + 1][0] < gap:
            continue
        start, end = a * HOP / RATE, b * HOP / RATE
        if not HES_LENGTH_S[0] <= end - start <= HES_LENGTH_S[1]:
            continue
        voiced = fr.voiced[a:b]
        if voiced.mean() < HES_VOICED_SHARE:
            continue
        semis = 12 * np.log2(fr.f0[a:b][voiced])
        spread = float(np.std(semis))
        if spread > HES_PITCH_SPREAD_ST:
            continue
        over = [w for w in words if w.start < end and w.end > start]
        if any(_norm(w.word) in fillers for w in over):
            conf, why = 0.95, "a filler word"
        elif not over:
            conf, why = 0.7, "nothing written"
        elif all(w.probability < LOW_PROBABILITY for w in over):
            conf, why = 0.8, "written with low probability"
        elif len(over) <= 2 and (end - start) >= 0.45 and voiced.mean() >= 0.9 and spread < 1.0:
            # A long sound on its own, voiced throughout on one pitch: Whisper names such a held vowel with real
            # words, even confidently ("Demor", "do more" over an "uh" made from "a m-"); no word is one held note.
            conf, why = 0.55, "words over one held pitch"
        else:
            continue
        before, after, text = _around(words, start, end)
        reason = f"{why}; {end - start:.2f} s voiced {voiced.mean():.0%}, pitch spread {spread:.2f} st"
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


def _retakes(words: Sequence[Word], settings: EditSettings, action: Action) -> list[Candidate]:
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
            m = 0
            while j + m < len(words) and i + m < j and norm[i + m] == norm[j + m]:
                m += 1
            tail = j - i - m  # words of the first attempt after the shared ones
            if (m >= 2 and tail <= 2) or (m == 1 and tail == 0):
                best = (j, m, tail)
                break
        if best is None:
            continue
        j, m, tail = best
        conf = 0.9 if m >= 2 and tail == 0 else 0.75 if m >= 2 else 0.5
        start, end = words[i].start, words[j].start
        first = " ".join(w.word.strip() for w in words[i:j])
        before = " ".join(w.word.strip() for w in words[max(0, i - CONTEXT_WORDS) : i])
        after = " ".join(w.word.strip() for w in words[j : j + CONTEXT_WORDS + m])
        kind = "said again" if tail == 0 else "broken off and begun again"
        out.append(Candidate(candidate_id("retake", start), "retake", round(start, 3), round(end, 3), action, conf,
                             before, after, first, f"{m} word(s) {kind}"))  # fmt: skip
        taken_until = j
    return out


def find_cuts(words: Sequence[Word], audio: Path, settings: EditSettings) -> Cuts:
    """Cut candidates in ``audio`` (a recording, or the master's body), whose words are ``words`` (Whisper's, on the
    same timeline): pauses longer than ``settings.max_pause_s`` inside speech, hesitations and retakes."""
    t0 = time.perf_counter()
    audio = Path(audio)
    x = _decode(audio)
    fr = _frames(x)
    words = sorted(words, key=lambda w: w.start)
    pauses, rhythm, keep = _pauses(fr, words, settings, settings.pauses)
    candidates = pauses + _hesitations(fr, words, settings, settings.hesitations)
    candidates += _retakes(words, settings, settings.retakes)
    return Cuts(
        source=str(audio),
        seconds=round(len(x) / RATE, 3),
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
