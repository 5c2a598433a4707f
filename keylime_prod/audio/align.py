"""Alignment of multitrack recordings: where each track starts relative to the first one.

Tracks of one conversation share content: each speaker's voice leaks into the others' microphones (bleed, about
20 dB down), and a clap at the start lands on every track. The cross-correlation of two tracks therefore peaks at
the lag that lines them up. We correlate the first :data:`WINDOW_S` seconds at :data:`ALIGN_RATE` (8 kHz: enough
bandwidth for a peak a fraction of a millisecond wide, well inside the 10 ms the issue asks for), pre-emphasised
so the voices' low-frequency energy and the rooms' rumble do not smear the peak, and refine it by parabolic
interpolation. The FFT correlation is one pass of O(n log n) over a few million samples.

The confidence of a match is how far the peak stands out: its height over the spread (standard deviation) of the
correlation away from it, a peak-to-sidelobe ratio. Unrelated recordings give a few units; bleed at -20 dB gives
tens (measured on the committed demo tracks; the figures are in docs/performance.md, "Multitrack sessions").

**Two peaks, not one.** Bleed reaches the other microphone late: each voice travels from its speaker to the other
microphone (a metre is about 3 ms). Host's voice in the guest's track lines up at ``offset - delay``, the guest's voice
in the host's track at ``offset + delay``, so a plain correlation peaks at whichever voice dominates the window and is
off by the acoustic delay (on the hard test session, 0.373 s for a true 0.370 s). :func:`refine` finds both peaks and
takes their midpoint: the path from A to B's microphone is as long as the one from B to A's, so the delays cancel. It
works frame by frame with GCC-PHAT (Knapp & Carter 1976: the cross-spectrum divided by its magnitude, so every frame and
every frequency counts alike, whatever the microphone levels, and a voice's pitch harmonics do not make side peaks):
each frame votes for its own peak lag, frames where the host talks vote for one bleed path and frames where the guest
talks for the other, and early reflections (weaker than the direct sound in the frame where they arise) rarely win a
vote. A clap or a single path gives one cluster of votes: then that peak is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ffmpeg
from ..errors import FFmpegError

ALIGN_RATE = 8000
WINDOW_S = 300.0  # five minutes of shared talk is plenty; an hour would only cost time
MAX_LAG_S = 60.0  # recorders started by hand are seconds apart, not minutes
PEAK_GUARD_S = 0.02  # the sidelobe statistics leave out this much around the peak (the peak's own width)
#: A match weaker than this is not trusted (unrelated speech gives ~4-6; bleed at -20 dB gives tens).
MIN_CONFIDENCE = 10.0
MAX_DELAY_S = 0.03  # acoustic delays searched around the first peak: 10 m between a speaker and the other microphone
FRAME_S = 0.5  # GCC-PHAT frames (a few syllables: one voice dominates most of them) ...
HOP_S = 0.25  # ... half overlapping
VOTE_SHARPNESS = 6.0  # a frame votes only if its peak stands this many standard deviations over its correlation
MIN_SECOND_SHARE = 0.1  # the second path needs this share of the votes (and MIN_SECOND_VOTES) to count
MIN_SECOND_VOTES = 3


@dataclass(frozen=True)
class Match:
    """Where ``track`` starts relative to ``reference`` (seconds; negative: it started earlier) and how sure;
    ``coarse_s`` is the plain correlation's peak and ``paths_s`` the bleed paths whose midpoint is ``offset_s``."""

    offset_s: float
    confidence: float
    coarse_s: float | None = None
    paths_s: tuple[float, ...] = ()


def load_window(path: Path, what: str) -> np.ndarray:
    """The first :data:`WINDOW_S` seconds of ``path``, mono at :data:`ALIGN_RATE`, pre-emphasised (float64)."""
    try:
        raw = ffmpeg.run(
            ffmpeg.decode_args(path, sample_rate=ALIGN_RATE, channels=1, duration=WINDOW_S),
            where=path,
            timeout=ffmpeg.limits.EXCERPT_TIMEOUT_S,
        ).stdout
    except FFmpegError as e:
        from ..errors import AudioError

        raise AudioError(f"{what} could not be decoded: {e.message}", where=path, hint="re-export the file") from None
    x = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4").astype(np.float64)
    # First difference: a +6 dB/octave tilt that whitens speech enough for a sharp peak, and kills DC and rumble.
    return np.diff(x, prepend=x[:1]) if len(x) else x


def match(reference: np.ndarray, track: np.ndarray, rate: int = ALIGN_RATE, max_lag_s: float = MAX_LAG_S) -> Match:
    """Cross-correlate two pre-emphasised signals at ``rate``; the lag at the peak, refined to the midpoint of the
    two bleed paths (:func:`refine`), is where ``track`` starts on ``reference``'s timeline (``track[t]`` lines up
    with ``reference[t + lag]``)."""
    if not len(reference) or not len(track):
        return Match(0.0, 0.0)
    n = len(reference) + len(track)
    nfft = 1 << (n - 1).bit_length()
    # corr[k] = sum_t reference[t + k] * track[t]; negative k wrap to the end of the array.
    corr = np.fft.irfft(np.fft.rfft(reference, nfft) * np.conj(np.fft.rfft(track, nfft)), nfft)
    max_lag = min(int(max_lag_s * rate), len(reference) - 1, len(track) - 1)
    lags = np.concatenate([np.arange(-max_lag, 0), np.arange(0, max_lag + 1)])
    values = np.concatenate([corr[nfft - max_lag :], corr[: max_lag + 1]])
    i = int(np.argmax(values))
    peak = values[i]
    guard = int(PEAK_GUARD_S * rate)
    away = np.concatenate([values[: max(0, i - guard)], values[i + guard + 1 :]])
    spread = float(np.std(away)) if len(away) > 1 else 0.0
    confidence = float((peak - np.mean(away)) / spread) if spread > 0 else 0.0
    # Parabolic interpolation between the neighbours: sub-sample precision (1/8000 s is already 0.125 ms).
    frac = _parabolic(values, i) - i
    coarse = float((lags[i] + frac) / rate)
    fine = refine(reference, track, int(lags[i]), rate)
    return Match(coarse if fine is None else fine.offset_s, confidence, coarse, fine.paths_s if fine else ())


@dataclass(frozen=True)
class Paths:
    """The offset at the midpoint of the two bleed paths, and where each path's peak was (seconds)."""

    offset_s: float
    paths_s: tuple[float, ...]


def _parabolic(values: np.ndarray, i: int) -> float:
    """Sub-sample position of the peak at ``i`` (parabola through it and its neighbours)."""
    if 0 < i < len(values) - 1:
        a, b, c = values[i - 1], values[i], values[i + 1]
        den = a - 2 * b + c
        return float(i + (0.5 * (a - c) / den if den != 0 else 0.0))
    return float(i)


def refine(reference: np.ndarray, track: np.ndarray, lag: int, rate: int = ALIGN_RATE) -> Paths | None:
    """The two bleed paths around the coarse ``lag`` (samples) by frame-wise GCC-PHAT votes; their midpoint is the
    offset (see the module). ``None`` when no frame votes (nothing shared beyond the coarse peak)."""
    frame, hop, m = int(FRAME_S * rate), int(HOP_S * rate), int(MAX_DELAY_S * rate)
    nfft = 1 << (2 * frame - 1).bit_length()
    total = np.zeros(2 * m + 1)
    votes: list[int] = []
    per_frame: list[np.ndarray] = []
    start = max(0, -lag)
    stop = min(len(track), len(reference) - lag) - frame
    for t in range(start, stop + 1, hop):
        r = reference[t + lag : t + lag + frame]
        x = track[t : t + frame]
        if not r.any() or not x.any():
            continue
        cross = np.fft.rfft(r, nfft) * np.conj(np.fft.rfft(x, nfft))
        mag = np.abs(cross)
        cross /= np.maximum(mag, 1e-12 * float(mag.max()) + 1e-30)
        corr = np.fft.irfft(cross, nfft)
        c = np.concatenate([corr[nfft - m :], corr[: m + 1]])  # lags -m..m
        spread = float(np.std(c))
        k = int(np.argmax(c))
        if spread > 0 and (c[k] - float(np.mean(c))) / spread >= VOTE_SHARPNESS:
            votes.append(k)
            per_frame.append(c)
        total += c
    if not votes:
        return None
    counts = np.bincount(votes, minlength=2 * m + 1).astype(np.float64)
    # A path's votes spread over a sample or two either side (fractional delays): count them together.
    near = np.convolve(counts, np.ones(5), mode="same")
    first = int(np.argmax(near))
    guard = max(2, int(0.0005 * rate))  # two paths closer than 0.5 ms are one peak
    rest = near.copy()
    rest[max(0, first - guard) : first + guard + 1] = 0
    second = int(np.argmax(rest))
    peaks = [first]
    if rest[second] >= max(MIN_SECOND_VOTES, MIN_SECOND_SHARE * len(votes)):
        peaks.append(second)
    where = []
    for p in peaks:
        # Each path's position: the summed correlation of the frames that voted for it, interpolated.
        mine = [c for v, c in zip(votes, per_frame, strict=True) if abs(v - p) <= 2]
        s = np.sum(mine, axis=0)
        lo = max(0, p - 2)
        k = lo + int(np.argmax(s[lo : p + 3]))
        where.append((lag + _parabolic(s, k) - m) / rate)
    return Paths(float(np.mean(where)), tuple(sorted(round(w, 6) for w in where)))
