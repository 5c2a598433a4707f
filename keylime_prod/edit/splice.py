"""Taking stretches out of a signal, or covering them with room tone, without a click (docs/editing.md, "Applying
the cuts"). Pure numpy on ``(samples, channels)`` float arrays: the edit stage decodes and encodes around it.

Each end of a stretch is moved to the quietest moment near it and then to a zero crossing, and the two sides are
joined with an equal-power crossfade (cos/sin gains, whose squares sum to one: two unrelated room tones crossed
keep their level, where a linear fade would dip 3 dB in the middle).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

#: The crossfade at every join: 15 ms, inside the 10-20 ms that hides a join in room tone without smearing speech.
CROSSFADE_S = 0.015
#: The quietest 5 ms is looked for within this of a detected end (the detector's 10 ms frames already sit in silence,
#: or just before an onset) ...
SEARCH_S = 0.04
#: ... and within this of a producer's own cut, placed by ear.
WORD_SEARCH_S = 0.1
QUIET_S = 0.005


def _mono(x: np.ndarray) -> np.ndarray:
    # A sum over the channel axis, not ``mean(axis=1)``: numpy's strided mean of an hour's stereo took 10 s.
    return x.sum(axis=1, dtype=np.float32) / np.float32(x.shape[1]) if x.ndim == 2 else x


def quiet_point(x: np.ndarray, at: int, search: int, rate: int) -> int:
    """The sample nearest ``at`` to join at: the middle of the quietest ``QUIET_S`` within ``search`` samples of it,
    then the nearest zero crossing within half of that (where there is one)."""
    n = len(x)
    w = max(1, int(QUIET_S * rate))
    lo, hi = max(0, at - search), min(n - w, at + search)
    if hi <= lo:
        return int(np.clip(at, 0, n))
    # Only the stretch searched is mixed down: a whole hour's mono copy per end made an hour's edit take minutes.
    base = max(0, lo - w)
    m = _mono(x[base : min(n, hi + 2 * w)])
    sq = np.concatenate([[0.0], np.cumsum(m[lo - base : hi - base + w].astype(np.float64) ** 2)])
    energy = sq[w:] - sq[:-w]
    # Ties (room tone is even) go to the point nearest the asked-for end.
    dist = np.abs(np.arange(len(energy)) + lo + w // 2 - at)
    best = lo + int(np.lexsort((dist, np.round(energy, 12)))[0]) + w // 2
    half = w // 2
    seg = m[max(0, best - half) - base : min(n, best + half + 1) - base]
    signs = np.flatnonzero(np.diff(np.signbit(seg).astype(np.int8)))
    if len(signs):
        best = max(0, best - half) + int(signs[np.argmin(np.abs(signs - half))]) + 1
    return int(best)


def _fades(length: int) -> tuple[np.ndarray, np.ndarray]:
    theta = (np.arange(length) + 0.5) / length * (np.pi / 2)
    return np.cos(theta).astype(np.float32)[:, None], np.sin(theta).astype(np.float32)[:, None]


def cut_pieces(x: np.ndarray, spans: Sequence[tuple[int, int]], rate: int) -> Iterator[np.ndarray]:
    """The pieces of ``x`` without the sample spans ``spans`` (sorted, apart by more than a crossfade), in order:
    views of ``x`` between the joins and the crossfades at them (the caller writes them out as they come, so an
    hour's edit never holds a second copy of the hour). Each ``(a, b)`` is taken out exactly (the result is
    ``b - a`` samples shorter), the signal before ``a`` crossfaded into the one after ``b`` over ``CROSSFADE_S``
    centred on the join."""
    h = max(1, int(CROSSFADE_S * rate / 2))
    pos = 0
    fade_out, fade_in = _fades(2 * h)
    if x.ndim == 1:
        fade_out, fade_in = fade_out[:, 0], fade_in[:, 0]
    for a, b in spans:
        a, b = max(a, pos + h, h), min(b, len(x) - h)
        if b <= a:
            continue
        yield x[pos : a - h]
        yield (x[a - h : a + h] * fade_out + x[b - h : b + h] * fade_in).astype(np.float32)
        pos = b + h
    yield x[pos:]


def cut(x: np.ndarray, spans: Sequence[tuple[int, int]], rate: int) -> np.ndarray:
    """``x`` without the sample spans ``spans``, in one array (:func:`cut_pieces`)."""
    return np.concatenate(list(cut_pieces(x, spans, rate))).astype(np.float32)


def room_tone(x: np.ndarray, rate: int, *, within: tuple[int, int] | None = None) -> np.ndarray:
    """The speaker's own room tone: the longest stretch of ``x`` (in ``within``) whose 20 ms frames stay within
    6 dB of the quietest tenth of the frames that are not digital silence (a gated join is not the room)."""
    lo, hi = within or (0, len(x))
    m = _mono(x[lo:hi])
    f = int(0.02 * rate)
    nf = len(m) // f
    if nf < 2:
        return x[lo:hi].copy()
    db = 10 * np.log10(np.mean(m[: nf * f].reshape(nf, f).astype(np.float64) ** 2, axis=1) + 1e-20)
    live = db > -150
    if not live.any():
        return x[lo:hi].copy()
    floor = np.percentile(db[live], 10)
    quiet = live & (db < floor + 6)
    best, start, run = (0, 0), 0, 0
    for i, q in enumerate(quiet):
        if q:
            if run == 0:
                start = i
            run += 1
            if run > best[1]:
                best = (start, run)
        else:
            run = 0
    a, k = best
    # One frame in from each end: the edges of a quiet stretch lean into the sounds around it.
    a, k = (a + 1, k - 2) if k > 4 else (a, k)
    return x[lo + a * f : lo + (a + k) * f].copy()


def _fill(tone: np.ndarray, length: int, rate: int) -> np.ndarray:
    """``length`` samples of ``tone`` laid end to end with equal-power crossfades (never a repeat's hard edge)."""
    h = max(1, int(CROSSFADE_S * rate / 2))
    if len(tone) <= 4 * h:
        tone = np.concatenate([tone, tone[::-1]])
    fo, fi = _fades(2 * h)
    out = tone
    while len(out) < length:
        out = np.concatenate([out[: -2 * h], out[-2 * h :] * fo + tone[: 2 * h] * fi, tone[2 * h :]])
    return out[:length]


def mute(x: np.ndarray, spans: Sequence[tuple[int, int]], tone: np.ndarray, rate: int) -> np.ndarray:
    """``x`` with each sample span in ``spans`` replaced by ``tone`` (room tone), the timeline kept: crossfaded in
    and out over ``CROSSFADE_S`` at each end."""
    y = x.copy()
    h = max(1, int(CROSSFADE_S * rate / 2))
    fo, fi = _fades(2 * h)
    for a, b in spans:
        a, b = max(a, h), min(b, len(x) - h)
        if b <= a:
            continue
        filler = _fill(tone, b - a + 2 * h, rate)
        y[a - h : a + h] = x[a - h : a + h] * fo + filler[: 2 * h] * fi
        y[a + h : b - h] = filler[2 * h : b - a]
        y[b - h : b + h] = filler[b - a :] * fo + x[b - h : b + h] * fi
    return y
