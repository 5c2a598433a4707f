"""Who speaks when in one recording: speech found by Silero VAD, a voice vector every half second, the vectors
clustered into voices, every 10 ms of speech given the voice it is closest to, and runs of one voice made turns.

The steps (pure functions on arrays, so each is tested on its own):

1. :func:`speech_frames`: Silero VAD (the ONNX model inside the faster-whisper wheel, as the recogniser uses it), with
   short pauses kept as pauses (a turn change often has none longer than a third of a second).
2. :func:`window_starts`: 1.6 s windows laid end to end over each stretch of speech.
3. :func:`cluster`: the windows' vectors (:mod:`.voice`) grouped by average-linkage agglomerative clustering on
   cosine distance (scipy), cut into the number of voices given, or else where the voices are best separated
   (mean silhouette); voices with too little speech to be a person (:data:`MIN_VOICE_SHARE`) join their nearest.
   The voice centroids are then refined (every window to its nearest centroid, twice).
4. :func:`frame_scores`: each 10 ms frame of speech scores each voice by the windows that cover it (weighted towards
   the window's middle, where its voice is surest), so a turn change lands between two windows' centres instead of on
   a window's edge.
5. :func:`to_turns`: the best voice per frame, runs of one voice as turns; where a second voice scores within
   :data:`OVERLAP_MARGIN` of the first and both are clearly voices, both are kept (two people at once). Gaps shorter
   than :data:`JOIN_GAP_S` within one voice are joined, turns shorter than :data:`MIN_TURN_S` dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .voice import HOP, SAMPLE_RATE, WINDOW_FRAMES

FRAME_S = HOP / SAMPLE_RATE  # 10 ms
MAX_VOICES = 8
#: The least mean silhouette at which a split into voices is believed (below it: one voice). Measured on the real
#: voices of tests/data/speakers (docs/speakers.md).
MIN_SILHOUETTE = 0.08
MIN_VOICE_SHARE = 0.03  # a voice with less of the windows than this (and fewer than MIN_VOICE_WINDOWS) is no person
MIN_VOICE_WINDOWS = 3
OVERLAP_MARGIN = 0.04  # a second voice scoring this close to the first, where ...
OVERLAP_FLOOR = 0.75  # ... both score at least this (cosine), is speaking at the same time
JOIN_GAP_S = 0.5
MIN_TURN_S = 0.3
VAD_MIN_SILENCE_MS = 300
VAD_PAD_MS = 80


@dataclass(frozen=True)
class Voices:
    """The clustering's result: a label per window (``-1``: left out) and each voice's centroid (unit vectors)."""

    labels: np.ndarray
    centroids: np.ndarray


def speech_frames(audio: np.ndarray) -> np.ndarray:
    """A boolean per 10 ms frame: where Silero VAD hears speech."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # the ONNX model ships in the wheel

    n = len(audio) // HOP + 1
    mask = np.zeros(n, bool)
    opts = VadOptions(min_silence_duration_ms=VAD_MIN_SILENCE_MS, speech_pad_ms=VAD_PAD_MS)
    for c in get_speech_timestamps(np.asarray(audio, np.float32), opts, sampling_rate=SAMPLE_RATE):
        mask[int(c["start"]) // HOP : int(c["end"]) // HOP + 1] = True
    return mask


def window_starts(speech: np.ndarray, step: int = WINDOW_FRAMES) -> np.ndarray:
    """First frames of the windows to embed: each speech stretch tiled with windows end to end (the last one ends
    where the stretch ends), every ``step`` frames: at the default step every frame of speech is in one window,
    rarely two, and the encoder's cost is about one pass over the speech (docs/speakers.md, "Cost"). A stretch
    shorter than a window gets one window centred on it."""
    n = len(speech)
    out: list[int] = []
    last = max(0, n - WINDOW_FRAMES)
    for a, b in _runs(speech):
        if b - a <= WINDOW_FRAMES:
            out.append(int(np.clip((a + b) // 2 - WINDOW_FRAMES // 2, 0, last)))
            continue
        s = list(range(a, b - WINDOW_FRAMES + 1, step))
        if s[-1] + WINDOW_FRAMES < b:
            s.append(b - WINDOW_FRAMES)
        out += [min(x, last) for x in s]
    return np.array(sorted(set(out)), dtype=int)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def silhouette(distance: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette (Rousseeuw 1987) of ``labels`` under a square ``distance`` matrix; 0 for one cluster."""
    ks = np.unique(labels)
    if len(ks) < 2:
        return 0.0
    mean_to = np.stack([distance[:, labels == k].mean(axis=1) for k in ks], axis=1)  # (n, clusters)
    own = np.searchsorted(ks, labels)
    sizes = np.array([(labels == k).sum() for k in ks])
    a = mean_to[np.arange(len(labels)), own] * sizes[own] / np.maximum(sizes[own] - 1, 1)
    other = mean_to.copy()
    other[np.arange(len(labels)), own] = np.inf
    b = other.min(axis=1)
    sil = np.where(sizes[own] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-9), 0.0)
    return float(sil.mean())


def _absorb_small(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Voices too small to be a person (a cough, a laugh, a window across a turn change) join their nearest."""
    n = len(labels)
    sizes = np.bincount(labels)
    big = [k for k in range(len(sizes)) if sizes[k] >= max(MIN_VOICE_SHARE * n, MIN_VOICE_WINDOWS)]
    if not big:
        big = [int(np.argmax(sizes))]
    cents = _unit(np.stack([vectors[labels == k].mean(axis=0) for k in big]))
    out = np.array(
        [lab if lab in big else big[int(np.argmax(cents @ v))] for v, lab in zip(vectors, labels, strict=True)]
    )
    return _relabel(out)


def cluster(vectors: np.ndarray, count: int | None = None) -> Voices:
    """Group window vectors into voices (see the module). ``count``: the number of voices if known."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist, squareform

    n = len(vectors)
    if n == 0:
        return Voices(np.zeros(0, int), np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), np.float32))
    if n == 1 or count == 1:
        return Voices(np.zeros(n, int), _unit(vectors.mean(axis=0, keepdims=True)))
    condensed = pdist(vectors.astype(np.float64), metric="cosine")
    tree = linkage(condensed, method="average")
    if count:
        labels = _relabel(fcluster(tree, t=min(count, n), criterion="maxclust") - 1)
    else:
        # The number of voices: the cut of the tree whose clusters are best separated (highest mean silhouette),
        # small clusters absorbed first; one voice unless some cut reaches MIN_SILHOUETTE.
        distance = squareform(condensed)
        labels, best = np.zeros(n, int), MIN_SILHOUETTE
        for k in range(2, min(MAX_VOICES, n) + 1):
            cand = _absorb_small(vectors, _relabel(fcluster(tree, t=k, criterion="maxclust") - 1))
            score = silhouette(distance, cand)
            if score > best + 1e-9:
                labels, best = cand, score
    cents = _unit(np.stack([vectors[labels == k].mean(axis=0) for k in range(labels.max() + 1)]))
    for _ in range(2):
        labels = np.argmax(vectors @ cents.T, axis=1)
        keep = [k for k in range(len(cents)) if (labels == k).any()]
        cents = _unit(np.stack([vectors[labels == k].mean(axis=0) for k in keep]))
    labels = np.argmax(vectors @ cents.T, axis=1)
    return Voices(labels, cents.astype(np.float32))


def _relabel(raw: np.ndarray) -> np.ndarray:
    """Labels ``0..k-1`` in order of first appearance."""
    order: dict[int, int] = {}
    for x in raw.tolist():
        order.setdefault(x, len(order))
    return np.array([order[x] for x in raw.tolist()], dtype=int)


def frame_scores(starts: np.ndarray, vectors: np.ndarray, centroids: np.ndarray, n_frames: int) -> np.ndarray:
    """``(n_frames, voices)``: each frame's cosine to each voice, averaged over the windows that cover it, each
    window weighted by a triangle peaking at its middle (``nan`` where no window covers a frame)."""
    k = len(centroids)
    sims = vectors @ centroids.T  # (windows, voices)
    acc = np.zeros((n_frames, k))
    wsum = np.zeros(n_frames)
    tri = 1.0 - np.abs(np.linspace(-1, 1, WINDOW_FRAMES)) + 1e-3
    for s, row in zip(starts.tolist(), sims, strict=True):
        e = min(n_frames, s + WINDOW_FRAMES)
        w = tri[: e - s]
        acc[s:e] += w[:, None] * row[None, :]
        wsum[s:e] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return acc / wsum[:, None]


def to_turns(scores: np.ndarray, speech: np.ndarray, overlap: bool = True) -> list[tuple[int, float, float]]:
    """Turns ``(voice, start_s, end_s)`` in time order from per-frame ``scores`` over the ``speech`` frames."""
    n, k = scores.shape
    if k == 0:
        return []
    valid = speech[:n] & np.isfinite(scores).all(axis=1)
    filled = np.where(np.isfinite(scores), scores, -np.inf)
    best = np.argmax(filled, axis=1)
    active = np.zeros((k, n), bool)
    active[best, np.arange(n)] = True
    if overlap and k > 1:
        top = np.sort(np.where(np.isfinite(filled), filled, -2.0), axis=1)
        second = np.argsort(filled, axis=1)[:, -2]
        both = (top[:, -1] - top[:, -2] <= OVERLAP_MARGIN) & (top[:, -2] >= OVERLAP_FLOOR)
        active[second[both], np.flatnonzero(both)] = True
    active &= valid[None, :]
    out: list[tuple[int, float, float]] = []
    for v in range(k):
        runs = _runs(active[v])
        joined: list[list[int]] = []
        for a, b in runs:
            if joined and (a - joined[-1][1]) * FRAME_S < JOIN_GAP_S:
                joined[-1][1] = b
            else:
                joined.append([a, b])
        out += [(v, round(a * FRAME_S, 3), round(b * FRAME_S, 3)) for a, b in joined if (b - a) * FRAME_S >= MIN_TURN_S]
    return sorted(out, key=lambda t: (t[1], t[0]))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    idx = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(idx[::2].tolist(), idx[1::2].tolist(), strict=True))


def der(
    reference: Sequence[tuple[str, float, float]], hypothesis: Sequence[tuple[str, float, float]], step: float = 0.01
) -> dict[str, float]:
    """Diarization error rate (NIST RT: missed + false alarm + confusion over the reference's speech time, overlaps
    counted per speaker, no collar), on a ``step`` grid, with the optimal one-to-one mapping of labels (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    end = max([e for _, _, e in (*reference, *hypothesis)], default=0.0)
    n = int(np.ceil(end / step)) + 1
    rl = sorted({s for s, _, _ in reference})
    hl = sorted({s for s, _, _ in hypothesis})
    r = np.zeros((len(rl), n), bool)
    h = np.zeros((len(hl), n), bool)
    for s, a, b in reference:
        r[rl.index(s), round(a / step) : round(b / step)] = True
    for s, a, b in hypothesis:
        h[hl.index(s), round(a / step) : round(b / step)] = True
    co = (r.astype(np.int32) @ h.T.astype(np.int32)) if len(rl) and len(hl) else np.zeros((len(rl), len(hl)))
    rows, cols = linear_sum_assignment(-co) if co.size else ([], [])
    nr, nh = r.sum(axis=0), h.sum(axis=0)
    correct = np.zeros(n)
    for i, j in zip(rows, cols, strict=True):
        correct += r[i] & h[j]
    total = float(nr.sum())
    missed = float(np.maximum(nr - nh, 0).sum())
    false_alarm = float(np.maximum(nh - nr, 0).sum())
    confusion = float((np.minimum(nr, nh) - correct).sum())
    t = max(total, 1e-9)
    return {
        "der": (missed + false_alarm + confusion) / t, "missed": missed / t, "false_alarm": false_alarm / t,
        "confusion": confusion / t, "speech_s": total * step,
    }  # fmt: skip


__all__ = ["Voices", "cluster", "der", "frame_scores", "speech_frames", "to_turns", "window_starts"]
