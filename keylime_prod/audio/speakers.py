"""Level each speaker of one mixed recording to the same loudness, from who speaks when (the speakers stage's turns).

A quiet guest and a loud host in one file: the stretch-by-stretch leveler (:func:`.speech.gain_curve`) brings each
stretch of speech towards the talk-time-weighted mean, but a stretch that holds both voices, or a turn shorter than
its window, is measured as one. With the turns known, each speaker's own speech is measured first (BS.1770 gated
loudness of their turns' speech, as :mod:`.multitrack` levels each track) and gets one gain towards the same
reference; the stretch leveler then evens out what is left within each speaker. Where two people talk at once, the
gain is the mean of theirs. ``master.json`` records each speaker's loudness before and after
(``details.parts[].leveler.speakers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..config import LevelerSettings
from .loudness import SUB_MS, integrated_from_energy
from .speech import GLIDE_MS, Levelling, gain_curve

#: A speaker with less speech than this in a recording keeps the stretch leveler alone (too little to measure).
MIN_SPEAKER_S = 2.0


def speaker_blocks(turns: Sequence[tuple[str, float, float]], n: int) -> dict[str, np.ndarray]:
    """Each speaker's 10 ms sub-blocks (a boolean mask of length ``n``) from ``turns`` ``(label, start_s, end_s)``
    on the part's own timeline."""
    per_s = 1000 // SUB_MS
    out: dict[str, np.ndarray] = {}
    for who, a, b in turns:
        m = out.setdefault(who, np.zeros(n, bool))
        m[max(0, round(a * per_s)) : max(0, min(n, round(b * per_s)))] = True
    return out


def _glide(x: np.ndarray, n: int) -> np.ndarray:
    """Centred ``n``-point moving average, holding the end values beyond the ends (a gain never dips at an edge)."""
    if n <= 1 or len(x) == 0:
        return x
    padded = np.r_[np.full(n // 2, x[0]), x, np.full(n - 1 - n // 2, x[-1])]
    return np.convolve(padded, np.ones(n) / n, mode="valid")


def _lufs(k_energy: np.ndarray) -> float | None:
    v = integrated_from_energy(k_energy) if len(k_energy) else float("-inf")
    return round(float(v), 2) if np.isfinite(v) else None


def per_recording(
    turns: Sequence[tuple[str, float, float]], durations: Sequence[float]
) -> list[list[tuple[str, float, float]]]:
    """``turns`` on the recordings laid end to end, as each recording's own (times from its first sample)."""
    out: list[list[tuple[str, float, float]]] = []
    start = 0.0
    for d in durations:
        out.append([(w, a - start, b - start) for w, a, b in turns if b > start and a < start + d])
        start += d
    return out


def level(
    k_energy: np.ndarray,
    mask: np.ndarray,
    settings: LevelerSettings,
    turns: Sequence[tuple[str, float, float]],
    *,
    shift_s: float = 0.0,
) -> tuple[Levelling, dict[str, Any]]:
    """The leveler's curve for one recording's kept stretch with its speakers evened out first (see the module),
    and each speaker's loudness before and after (``{label: {"seconds", "before_lufs", "gain_db", "after_lufs"}}``).
    ``turns`` are on the recording's time; the kept stretch starts ``shift_s`` into it."""
    turns = [(w, a - shift_s, b - shift_s) for w, a, b in turns]
    n = len(k_energy)
    m = mask[:n] if len(mask) >= n else np.r_[mask, np.zeros(n - len(mask), bool)]
    blocks = {who: b & m for who, b in speaker_blocks(turns, n).items()}
    measured = {who: _lufs(k_energy[b]) for who, b in blocks.items() if b.sum() * SUB_MS / 1000 >= MIN_SPEAKER_S}
    levels = {who: v for who, v in measured.items() if v is not None and v > -70.0}
    if not settings.enabled or len(levels) < 2:
        return gain_curve(k_energy, mask, settings), {}
    seconds = {who: float(blocks[who].sum()) * SUB_MS / 1000 for who in levels}
    # The reference: the talk-time-weighted mean in LU, as the stretch leveler's (neither voice pushed all the way).
    ref = float(np.average(list(levels.values()), weights=list(seconds.values())))
    gains = {
        who: float(np.clip((ref - v) * settings.strength, -settings.max_cut_db, settings.max_gain_db))
        for who, v in levels.items()
    }
    total = np.zeros(n)
    count = np.zeros(n)
    for who, g in gains.items():
        total[blocks[who]] += g
        count[blocks[who]] += 1
    want = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    idx = np.flatnonzero(~np.isnan(want))
    curve = np.interp(np.arange(n), idx, want[idx]) if len(idx) else np.zeros(n)
    curve = _glide(curve, GLIDE_MS // SUB_MS)
    # What is left within each speaker: the stretch leveler on the speaker-levelled energies.
    rest = gain_curve(k_energy * 10 ** (curve / 10), mask, settings)
    full = curve + (rest.curve_db if rest.curve_db is not None else 0.0)
    after = k_energy * 10 ** (full / 10)
    figures = {
        who: {
            "seconds": round(seconds[who], 2), "before_lufs": levels[who], "gain_db": round(gains[who], 2),
            "after_lufs": _lufs(after[blocks[who]]),
        }
        for who in levels
    }  # fmt: skip
    lev = replace(
        rest,
        curve_db=full,
        levelled=max(rest.levelled, 1),
        gain_range_db=(round(float(full.min()), 2), round(float(full.max()), 2)),
        note=rest.note if rest.curve_db is not None else "speakers levelled",
    )
    return lev, figures


__all__ = ["level", "per_recording", "speaker_blocks"]
