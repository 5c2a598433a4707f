"""Loudness measurement (ITU-R BS.1770-4 / EBU R128), true peak, and a true-peak limiter, all streaming.

Everything here works on blocks of float32 PCM shaped ``(frames, channels)`` so an hour of audio never needs a
float64 copy of the whole episode (the usual way careless pipelines reach 6-8 GB):

- :class:`Meter` consumes blocks and keeps only 10 ms sums (K-weighted energy per channel, plain energy, sample
  peak). Integrated loudness (400 ms blocks, 75 % overlap, absolute gate -70 LUFS, relative gate -10 LU), loudness
  range (EBU Tech 3342: 3 s blocks, relative gate -20 LU, 10th to 95th percentile) and silence detection are all
  computed from those sums, for the whole signal or any stretch of it.
- True peak follows BS.1770-4 Annex 2: 4x oversampling with an interpolating FIR. Oversampling an hour of stereo
  costs ~20 s, so blocks whose sample peak cannot reach the level of interest are skipped: an interpolated sample is
  a weighted sum of input samples, so it is at most ``sample_peak * sum(|h_phase|)`` (:data:`TP_BOUND`, ~4 dB).
- :class:`TruePeakLimiter` is a look-ahead limiter on the 4x-oversampled peak envelope: the required gain is
  min-filtered over ``2W+1`` samples and then averaged over ``2W+1`` samples, which guarantees the applied gain is
  never above the required gain at any sample while staying smooth (no clicks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, signal

from .artefact import CurvePair, LoudnessCurves

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

ABSOLUTE_GATE_LUFS = -70.0  # BS.1770-4 absolute gate
RELATIVE_GATE_LU = -10.0  # BS.1770-4 relative gate
LRA_RELATIVE_GATE_LU = -20.0  # EBU Tech 3342
SUB_MS = 10  # resolution of the kept sums

# 4x interpolation filter for true peak (BS.1770-4 Annex 2 asks for >= 4x oversampling; the Annex's example is a
# 48-tap FIR, 12 taps per phase). A Kaiser-windowed sinc with the same length; each phase sums to 1.
_OS = 4
_FIR = (signal.firwin(48, 0.9 / _OS, window=("kaiser", 8.0)) * _OS).astype(np.float64)
_PHASES = [_FIR[k::_OS].copy() for k in range(_OS)]
_PHASES32 = [p.astype(np.float32) for p in _PHASES]
_HALF = len(_PHASES[0])  # samples of context an interpolated value depends on, on either side
TP_BOUND = float(max(np.abs(p).sum() for p in _PHASES))


def db_to_lin(db: float) -> float:
    """Decibels to a linear amplitude factor."""
    return float(10.0 ** (db / 20.0))


def lin_to_db(x: float) -> float:
    """Linear amplitude to decibels (``-inf`` for 0)."""
    return float(20.0 * np.log10(x)) if x > 0 else float("-inf")


def _k_weighting_sos(sr: int) -> NDArray[np.float64]:
    """The two K-weighting biquads of BS.1770-4 (shelf, then RLB high-pass) for any sample rate.

    Coefficients are derived from the analogue prototypes as in libebur128 / pyloudnorm, which reproduce the
    48 kHz table of BS.1770-4 exactly.
    """
    # Stage 1: high shelf (+4 dB above ~1.7 kHz).
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = np.tan(np.pi * f0 / sr)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    b1 = np.array([(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0])
    a1 = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    # Stage 2: RLB high-pass (~38 Hz).
    f0, q = 38.13547087602444, 0.5003270373238773
    k = np.tan(np.pi * f0 / sr)
    a0 = 1.0 + k / q + k * k
    b2 = np.array([1.0, -2.0, 1.0])
    a2 = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    return np.vstack([np.concatenate([b1, a1]), np.concatenate([b2, a2])])


def _energy_to_lufs(z: F64 | float) -> F64:
    with np.errstate(divide="ignore"):
        return np.asarray(-0.691 + 10.0 * np.log10(z), dtype=np.float64)


def frame_peaks(x: F32) -> F32:
    """``max(|x|)`` across channels for every frame. (``np.abs(x).max(axis=1)`` reduces over a 2-element axis and is
    ~15x slower on an hour of audio.)"""
    a = np.abs(x)
    out = a[:, 0].copy()
    for c in range(1, a.shape[1]):
        np.maximum(out, a[:, c], out=out)
    return out


def true_peak_envelope(x: F32) -> F32:
    """Per-sample true-peak magnitude: for each input frame, the largest ``|value|`` over the channels, the sample
    itself and the 4 interpolated points that follow it (4x oversampling, BS.1770-4 Annex 2)."""
    if len(x) == 0:
        return np.zeros(0, dtype=np.float32)
    env = frame_peaks(x).astype(np.float32, copy=False)
    # float32 convolution is twice as fast as float64 and far more precise than a peak reading needs.
    pad = np.pad(x.astype(np.float32, copy=False), ((_HALF, _HALF), (0, 0)))
    n = len(x)
    # The 47-tap-delay FIR puts phase k of output j at input time j - 6.875 + k/4, so output j = i + 7 holds the
    # four interpolated points inside [i, i + 1).
    off = (_HALF + 2) // 2
    for h in _PHASES32:
        for c in range(x.shape[1]):
            y = np.convolve(pad[:, c], h, mode="valid")  # len = n + _HALF + 1
            np.maximum(env, np.abs(y[off : off + n]), out=env)
    return env


def true_peak(x: F32, floor: float = 0.0, block: int = 256, start: int = 0, end: int | None = None) -> float:
    """True peak (linear) of frames ``start:end`` of ``x`` (frames outside serve as interpolation context).

    Only blocks whose sample peak could exceed ``max(floor, sample peak) / TP_BOUND`` are oversampled, all of them
    in one vectorised pass (gathered with their context into one 2-D array); ``floor`` lets a caller skip
    everything that cannot reach a level it already knows of.
    """
    n = len(x)
    end = n if end is None else end
    if end <= start:
        return 0.0
    span = end - start
    nb = (span + block - 1) // block
    sp = np.zeros(nb * block, dtype=np.float32)
    sp[:span] = frame_peaks(x[start:end])
    bpk = sp.reshape(nb, block).max(axis=1)
    found = float(bpk.max())  # the true peak is never below the sample peak
    cand = np.flatnonzero(bpk * np.float32(TP_BOUND) > np.float32(max(floor, found)))
    if len(cand) == 0:
        return found
    ch = x.shape[1]
    ctx = _HALF  # context frames on each side, beyond the filter's reach of _HALF // 2
    # Frames outside [0, n) are zero (a real edge of the signal); frames outside [start, end) are context only.
    padded = np.zeros((n + 2 * ctx + block, ch), dtype=np.float32)
    padded[ctx : ctx + n] = x
    rows = (start + cand * block)[:, None] + np.arange(-ctx, block + ctx)[None, :] + ctx
    win = padded[rows]  # (blocks, block + 2 ctx, ch)
    valid = (start + cand * block)[:, None] + np.arange(block)[None, :] < end
    for h in _PHASES32:
        for c in range(ch):
            y = ndimage.correlate1d(win[:, :, c], h, axis=1, mode="constant")[:, ctx : ctx + block]
            found = max(found, float(np.abs(y[valid]).max(initial=0.0)))
    return found


@dataclass(frozen=True)
class Measurement:
    """Loudness figures of a signal or a stretch of it."""

    integrated_lufs: float
    lra_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float


class Meter:
    """Streaming BS.1770 meter. Feed ``(frames, channels)`` float32 blocks with :meth:`add`.

    Keeps 10 ms sums only (a few MB for an hour), so integrated loudness, LRA and silence can be asked for the whole
    signal or any stretch (:meth:`measure` with ``start``/``end`` in 10 ms units).
    """

    def __init__(self, sample_rate: int, channels: int, *, true_peak: bool = True) -> None:
        self.sr = sample_rate
        self.channels = channels
        self.sub = sample_rate * SUB_MS // 1000
        self._sos = _k_weighting_sos(sample_rate)
        self._zi = np.zeros((self._sos.shape[0], 2, channels))
        self._carry = np.zeros((0, channels), dtype=np.float32)
        self._carry_k = np.zeros((0, channels), dtype=np.float64)
        self._kw: list[F64] = []  # per 10 ms: K-weighted energy summed over channels (channel weights 1.0)
        self._pw: list[F64] = []  # per 10 ms: plain mean square (mean over channels), for silence detection
        self._pk: list[F32] = []  # per 10 ms: sample peak
        self._tp_on = true_peak
        self._tp = 0.0
        # Frames kept for true-peak context: the last ``_pending_new`` of them are not yet counted.
        self._pending = np.zeros((0, channels), dtype=np.float32)
        self._pending_new = 0
        self.frames = 0

    def add(self, x: F32) -> None:
        """Consume the next block of samples."""
        if x.size == 0:
            return
        self.frames += len(x)
        if self._tp_on:
            # Keep a little context so interpolation across block edges is exact.
            # Keep context on both sides so interpolation across block edges is exact: measure the previous
            # block's last frames together with this block, and hold back this block's last frames for the next.
            ctx = np.concatenate([self._pending, x])
            head = len(self._pending) - self._pending_new
            count_end = len(ctx) - _HALF
            if count_end > head:
                self._tp = max(self._tp, true_peak(ctx, floor=self._tp, start=head, end=count_end))
                keep = min(len(ctx), 2 * _HALF)
                self._pending = ctx[-keep:]
                self._pending_new = min(keep, _HALF)
            else:
                self._pending, self._pending_new = ctx, len(ctx) - head
        k, self._zi = signal.sosfilt(self._sos, x, axis=0, zi=self._zi)
        xs = np.concatenate([self._carry, x]) if len(self._carry) else x
        ks = np.concatenate([self._carry_k, k]) if len(self._carry_k) else k
        m = (len(xs) // self.sub) * self.sub
        if m:
            xb = xs[:m].reshape(-1, self.sub, self.channels)
            kb = ks[:m].reshape(-1, self.sub, self.channels)
            self._kw.append(np.einsum("bsc,bsc->b", kb, kb) / self.sub)
            # Plain power only decides silence: float32 sums over 10 ms are plenty.
            self._pw.append(np.einsum("bsc,bsc->b", xb, xb).astype(np.float64) / (self.sub * self.channels))
            self._pk.append(frame_peaks(xs[:m]).reshape(-1, self.sub).max(axis=1))
        self._carry = xs[m:].copy()
        self._carry_k = ks[m:].copy()

    # -------------------------------------------------------------------------------------------- results

    @property
    def k_energy(self) -> F64:
        """K-weighted energy (channel sum) per 10 ms."""
        return np.concatenate(self._kw) if self._kw else np.zeros(0)

    @property
    def power(self) -> F64:
        """Plain mean square per 10 ms (for silence detection)."""
        return np.concatenate(self._pw) if self._pw else np.zeros(0)

    @property
    def peaks(self) -> F32:
        """Sample peak per 10 ms."""
        return np.concatenate(self._pk) if self._pk else np.zeros(0, dtype=np.float32)

    @property
    def true_peak(self) -> float:
        """True peak (linear) of everything consumed."""
        if self._pending_new:
            n = len(self._pending)
            return max(self._tp, true_peak(self._pending, floor=self._tp, start=n - self._pending_new, end=n))
        return self._tp

    def measure(self, start: int = 0, end: int | None = None) -> Measurement:
        """Loudness of 10 ms sub-blocks ``start:end`` (default: everything)."""
        ke = self.k_energy[start:end]
        pk = self.peaks[start:end]
        return Measurement(
            integrated_lufs=integrated_from_energy(ke),
            lra_lu=lra_from_energy(ke),
            true_peak_dbtp=lin_to_db(self.true_peak),
            sample_peak_dbfs=lin_to_db(float(pk.max()) if len(pk) else 0.0),
        )


def _block_energies(ke: F64, block_subs: int, step_subs: int) -> F64:
    if len(ke) < block_subs:
        # Shorter than one block: BS.1770 measures nothing; use the whole stretch as one block instead of failing.
        return np.array([ke.mean()]) if len(ke) else np.zeros(0)
    c = np.concatenate([[0.0], np.cumsum(ke)])
    starts = np.arange(0, len(ke) - block_subs + 1, step_subs)
    return np.asarray((c[starts + block_subs] - c[starts]) / block_subs, dtype=np.float64)


def integrated_from_energy(ke: F64) -> float:
    """Gated integrated loudness (BS.1770-4 section 2.8) from 10 ms K-weighted energies."""
    z = _block_energies(ke, 400 // SUB_MS, 100 // SUB_MS)  # 400 ms blocks, 75 % overlap
    if len(z) == 0:
        return float("-inf")
    lk = _energy_to_lufs(z)
    z = z[lk > ABSOLUTE_GATE_LUFS]
    if len(z) == 0:
        return float("-inf")
    rel = float(_energy_to_lufs(z.mean())) + RELATIVE_GATE_LU
    z = z[_energy_to_lufs(z) > rel]
    return float(_energy_to_lufs(z.mean())) if len(z) else float("-inf")


def lra_from_energy(ke: F64) -> float:
    """Loudness range (EBU Tech 3342) from 10 ms K-weighted energies: 3 s blocks every 100 ms."""
    z = _block_energies(ke, 3000 // SUB_MS, 100 // SUB_MS)
    if len(z) < 2:
        return 0.0
    lk = _energy_to_lufs(z)
    lk = lk[lk > ABSOLUTE_GATE_LUFS]
    if len(lk) < 2:
        return 0.0
    rel = float(_energy_to_lufs(np.power(10.0, (lk + 0.691) / 10.0).mean())) + LRA_RELATIVE_GATE_LU
    lk = lk[lk > rel]
    if len(lk) < 2:
        return 0.0
    lo, hi = np.percentile(lk, [10, 95])
    return float(hi - lo)


def sound_bounds(power: F64, threshold_db: float) -> tuple[int, int] | None:
    """First and one-past-last 10 ms sub-block whose level is above ``threshold_db`` dBFS; ``None`` if all silent.

    A short run-up (30 ms) must stay above the threshold so a single click in the room noise does not count as the
    start of speech.
    """
    if len(power) == 0:
        return None
    with np.errstate(divide="ignore"):
        level = 10.0 * np.log10(power)
    loud = level > threshold_db
    run = 3
    if len(loud) >= run:
        sustained = np.convolve(loud.astype(np.int8), np.ones(run, dtype=np.int8), mode="valid") == run
        idx = np.flatnonzero(sustained)
        if len(idx) == 0:
            idx = np.flatnonzero(loud)
            if len(idx) == 0:
                return None
            return int(idx[0]), int(idx[-1]) + 1
        return int(idx[0]), int(idx[-1]) + run
    idx = np.flatnonzero(loud)
    return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else None


class TruePeakLimiter:
    """Streaming look-ahead true-peak limiter with linked channels.

    ``push`` returns processed frames (delayed internally by the look-ahead, but the stream as a whole is not
    shifted: call :meth:`flush` at the end to get the remainder). ``reduction_db`` is the deepest gain reduction
    applied; ``limited_frames`` counts frames whose gain was below 1.
    """

    def __init__(self, sample_rate: int, channels: int, ceiling_db: float, lookahead_ms: float = 5.0) -> None:
        self.ceiling = db_to_lin(ceiling_db)
        self.w = max(1, int(sample_rate * lookahead_ms / 1000))
        self.ctx = 2 * self.w + _HALF + 1  # frames of context needed on each side
        self.channels = channels
        self._buf = np.zeros((0, channels), dtype=np.float32)
        self._hist = 0  # leading frames of _buf already emitted (context only)
        self.reduction_db = 0.0
        self.limited_frames = 0

    def _process(self, final: bool) -> F32:
        buf = self._buf
        n_avail = len(buf) - self._hist - (0 if final else self.ctx)
        if n_avail <= 0:
            return np.zeros((0, self.channels), dtype=np.float32)
        lo, hi = self._hist, self._hist + n_avail
        out = buf[lo:hi].copy()
        src = buf if not final else np.concatenate([buf, np.zeros((self.ctx, self.channels), np.float32)])
        env = self._envelope(src)
        # Fast path: nothing in reach of the ceiling (see TP_BOUND).
        if env is not None:
            req = np.minimum(1.0, self.ceiling / np.maximum(env, 1e-12)).astype(np.float32)
            if float(req.min()) < 1.0:
                size = 2 * self.w + 1
                g = ndimage.minimum_filter1d(req, size=size, mode="nearest")
                g = ndimage.uniform_filter1d(g, size=size, mode="nearest")
                # uniform_filter can round a hair above the minimum: never exceed the required gain.
                g = np.minimum(g, req)[lo:hi]
                out *= g[:, None]
                below = g < 0.9999
                if below.any():
                    self.limited_frames += int(below.sum())
                    self.reduction_db = min(self.reduction_db, lin_to_db(float(g.min())))
        keep_from = max(0, hi - self.ctx)
        self._buf = buf[keep_from:]
        self._hist = hi - keep_from
        return out

    def _envelope(self, src: F32) -> F32 | None:
        """True-peak envelope where it matters, sample peaks elsewhere; ``None`` if nothing can reach the ceiling.

        Oversampling is the expensive part, so it runs only on stretches whose sample peaks could reach the
        ceiling (``peak * TP_BOUND > ceiling``), widened by the filter's reach; everywhere else the required gain
        is 1 whatever the envelope's exact value."""
        fp = frame_peaks(src)
        hot = fp * np.float32(TP_BOUND) > np.float32(self.ceiling)
        if not hot.any():
            return None
        env = fp.astype(np.float32, copy=True)
        # Merge hot frames closer than 256 frames into one stretch (fewer, larger convolutions).
        idx = np.flatnonzero(hot)
        breaks = np.flatnonzero(np.diff(idx) > 256)
        starts = np.concatenate([[idx[0]], idx[breaks + 1]])
        ends = np.concatenate([idx[breaks], [idx[-1]]]) + 1
        n = len(src)
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            lo, hi = max(0, a - 2 * _HALF), min(n, b + 2 * _HALF)
            seg = true_peak_envelope(src[lo:hi])
            # Interior only: the outer _HALF frames of the stretch see the zero padding.
            i0 = a - lo if lo > 0 else 0
            i1 = (b - lo) if hi < n else hi - lo
            env[lo + i0 : lo + i1] = np.maximum(env[lo + i0 : lo + i1], seg[i0:i1])
        return env

    def push(self, x: F32) -> F32:
        """Add frames; return the frames that are now final."""
        self._buf = np.concatenate([self._buf, x.astype(np.float32, copy=False)])
        return self._process(final=False)

    def flush(self) -> F32:
        """Return every remaining frame."""
        return self._process(final=True)


def limit_whole(x: F32, sr: int, ch: int, ceiling_db: float) -> tuple[F32, float]:
    """``x`` through a fresh :class:`TruePeakLimiter` in one go (a short signal: a bed, a crossfade, an excerpt);
    returns the limited signal and the deepest gain reduction in dB."""
    lim = TruePeakLimiter(sr, ch, ceiling_db)
    out = np.concatenate([lim.push(x), lim.flush()]) if len(x) else x
    return out, lim.reduction_db


def tpdf_dither_to_s16(x: F32, rng: np.random.Generator) -> NDArray[np.int16]:
    """Quantise float samples to 16-bit with triangular (TPDF) dither of +-1 LSB, so quiet passages keep resolution
    instead of turning into truncation distortion."""
    r = rng.integers(0, 1 << 32, size=x.size, dtype=np.uint32)
    tpdf = ((r & 0xFFFF).astype(np.float32) - (r >> 16).astype(np.float32)) * np.float32(1.0 / 65536.0)
    y = x.reshape(-1) * np.float32(32767.0) + tpdf
    np.rint(y, out=y)
    np.clip(y, -32768, 32767, out=y)
    return y.astype(np.int16).reshape(x.shape)


def loudness_series(ke: F64, hop_ms: int = 100) -> tuple[list[float | None], list[float | None]]:
    """Momentary (400 ms) and short-term (3 s) loudness every ``hop_ms`` from 10 ms K-weighted energies (EBU Tech
    3341 windows, ungated), each window ending at its block's time; ``None`` where the window is silent (-inf).
    One cumulative sum: an hour costs a few milliseconds."""
    c = np.concatenate([[0.0], np.cumsum(ke, dtype=np.float64)])
    ends = np.arange(hop_ms // SUB_MS, len(ke) + 1, hop_ms // SUB_MS)

    def series(window_ms: int) -> list[float | None]:
        w = window_ms // SUB_MS
        starts = np.maximum(ends - w, 0)
        mean = (c[ends] - c[starts]) / np.maximum(ends - starts, 1)
        lufs = _energy_to_lufs(np.maximum(mean, 0.0))
        return [round(float(v), 2) if np.isfinite(v) else None for v in lufs]

    return series(400), series(3000)


def curves_of(after: F64, before: F64 | None = None, hop_ms: int = 100) -> LoudnessCurves:
    """``loudness.json``, the production report's curves (format: ``{"hop_s", "before":
    {"momentary", "short_term"}, "after": {...}}`` in LUFS on the published timeline, ``null`` for -inf), from 10 ms
    K-weighted energies of the published audio (``after``) and of the inputs placed on its timeline (``before``).
    ``before=None``: the published audio is the input (an archive episode kept as published), one series for both."""
    am, as_ = loudness_series(after, hop_ms)
    bm, bs = (am, as_) if before is None else loudness_series(before, hop_ms)
    return LoudnessCurves(hop_ms / 1000, CurvePair(tuple(bm), tuple(bs)), CurvePair(tuple(am), tuple(as_)))
