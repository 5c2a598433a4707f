"""Multitrack sessions: one recording per speaker, aligned, gated against crosstalk, levelled and mixed.

:func:`master_tracks` is the mastering stage for an episode with ``[[tracks]]``: it mixes the tracks into one body
(a temporary float WAV on the session timeline) and runs that through :func:`~keylime_prod.audio.master.master`,
so the mixed body gets the same intro/disclaimer/outro, loudness plan, limiter and MP3 check as any recording.
``master.json`` gains ``tracks``: each track's offset and the confidence of its alignment, its level and gain, how
far it was turned down under the others' speech, and its own speech regions (for the per-track transcript).

The mix, in order:

1. **Check** every track (missing, corrupt, silent throughout, far shorter than the others: one line naming the
   track's ``file`` field).
2. **Align** (:mod:`.align`): each track against the first by cross-correlation of the shared bleed (or a clap),
   at the midpoint of the two bleed paths (each voice reaches the other microphone late);
   a weak match falls back to the track's configured ``offset`` or fails naming the ``offset`` field.
3. **Measure** (pass 1, streaming): 10 ms K-weighted energies of every track on the session timeline.
4. **Voice activity and crosstalk** (:func:`ownership`): the tracks are compared with each other, not judged one by
   one. How loud each track carries each other voice (the coupling, :func:`couplings`) is measured on the session
   itself; a track carries its own speaker where its level stands :data:`OWN_OVER_BLEED_DB` over what its noise floor
   and the others' bleed explain (or it is the loudest active track relative to its own speech level), with voice
   activity. A quiet microphone holds a hot guest's bleed only a few dB under its own speaker, so no threshold on a
   track's own level can tell the two apart; the prediction from the guest's track can. A track that carries only
   bleed is turned down by :data:`GATE_DB` (the issue asks for >= 20 dB): the mix then has no echo or comb filtering.
   Where two speakers talk at once both tracks are open: overlaps are kept. In pauses the track that spoke last
   stays open, so the room tone does not pump.
5. **Level** the speakers against each other: each track's own speech to the same loudness (BS.1770 gated).
6. **Mix** (pass 2, streaming): gain x gate envelope per track, summed, into the body file. The master's true-peak
   limiter then limits the sum, as for any recording.
"""

from __future__ import annotations

import logging
import math
import struct
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Assets, AudioSettings, EpisodeConfig, Track
from ..errors import AudioError
from ..progress import ProgressFn, null_progress
from . import align, speech
from .artefact import Master, MasteredDetails, MixTrack
from .inputs import check_file, decode
from .loudness import SUB_MS, Meter, integrated_from_energy, sound_bounds
from .master import master

log = logging.getLogger(__name__)

GATE_DB = 30.0  # how far a track is turned down while it carries only bleed (at least 20 dB)
OWN_OVER_BLEED_DB = 6.0  # own speech: this much over what the others' bleed and the floor explain
COUPLING_OVER_FLOOR_DB = 20.0  # couplings are measured where the source track stands this far over its floor
MIN_COUPLING_BLOCKS = 50  # ... in at least this many 10 ms blocks (half a second)
FLOOR_MARGIN_DB = 8.0  # activity: this far over the track's noise floor ...
MIN_SPEECH_REL_DB = -35.0  # ... and no quieter than this relative to the track's speech loudness
LEVEL_WINDOW_MS = 50  # levels are compared on 50 ms moving averages of the 10 ms energies
OPEN_BEFORE_MS = 40  # open the gate this early (the whole file is known: no attack to lose) ...
MIN_OWN_MS = 60  # shorter bursts of "own" speech are ignored
HOLD_MS = 250  # ... and hold it this long after the speech, so word endings and breaths are not cut
RAMP_MS = 40  # gate transitions: a moving average of this length on the linear gain
REGION_GAP_S = 0.6  # own-speech regions closer than this are one region for the transcript
REGION_PAD_S = 0.15
MIN_REGION_S = 0.25
LENGTH_RATIO = 0.75  # a track shorter than this share of the longest (and by more than MIN_LENGTH_GAP_S) is suspect
MIN_LENGTH_GAP_S = 5.0
BLOCK_SECONDS = 1.0


@dataclass(frozen=True)
class Mix:
    """The mixed body (a temporary file) and what was done to each track."""

    path: Path
    tracks: tuple[MixTrack, ...]


def _field(i: int, name: str) -> str:
    return f"tracks[{i}].{name}"


def _moving_average(x: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or not len(x):
        return x
    k = np.ones(n) / n
    return np.convolve(x, k, mode="same")


def _dilate(mask: np.ndarray, before: int, after: int) -> np.ndarray:
    """``mask`` widened by ``before`` sub-blocks before each True run and ``after`` after it."""
    if not mask.any():
        return mask
    m = mask.astype(np.int32)
    c = np.concatenate([[0], np.cumsum(m)])
    idx = np.arange(len(m))
    lo = np.clip(idx - after, 0, len(m))
    hi = np.clip(idx + before + 1, 0, len(m))
    return (c[hi] - c[lo]) > 0


def _drop_short(mask: np.ndarray, shorter_than: int) -> np.ndarray:
    """``mask`` without its True runs shorter than ``shorter_than`` sub-blocks."""
    out = mask.copy()
    idx = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    for a, b in zip(idx[::2], idx[1::2], strict=True):
        if b - a < shorter_than:
            out[a:b] = False
    return out


def couplings(level: np.ndarray, floor: np.ndarray, active: np.ndarray) -> np.ndarray:
    """How loud each track carries each other track's voice: ``c[i, j]`` (dB) is track ``i``'s level minus track
    ``j``'s where ``j``'s speaker talks and ``i``'s does not (``-inf`` where it cannot be measured).

    Where track ``j`` stands well over its own floor (:data:`COUPLING_OVER_FLOOR_DB`), either ``j``'s speaker talks
    (then ``i`` holds only the bleed: the difference is the coupling) or ``j`` holds loud bleed of ``i``'s speaker
    (then the difference is large and positive): the lower of the two clusters of differences is the coupling. Its
    median, so a room's reverberation or a speaker turning away moves it little; where ``i``'s floor hides the bleed
    the difference reads high, which only makes the bleed test below more careful.
    """
    k = len(level)
    c = np.full((k, k), -np.inf)
    for j in range(k):
        loud = active[j] & (level[j] > floor[j] + COUPLING_OVER_FLOOR_DB)
        for i in range(k):
            if i == j or loud.sum() < MIN_COUPLING_BLOCKS:
                continue
            d = level[i][loud] - level[j][loud]
            lo, hi = np.percentile(d, [5, 95])
            lower = d[d <= (lo + hi) / 2]
            if len(lower) >= MIN_COUPLING_BLOCKS:
                c[i, j] = float(np.median(lower))
    return c


def ownership(
    energies: Sequence[np.ndarray], voice: Sequence[np.ndarray | None] = ()
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Which track carries its own speaker, per 10 ms sub-block of the session.

    ``energies``: each track's 10 ms K-weighted energies on the session timeline (zeros where it did not record);
    ``voice``: each track's voice activity (Silero VAD, :func:`.speech.analyse`) on the same grid, if measured: a
    sound that is not a voice (a cough, a click, a door) never opens a gate. VAD alone cannot tell a speaker from
    their bleed (it hears a voice at any level), and neither can a track's level on its own: a quiet microphone
    carries a hot guest's bleed only a few dB under its own speaker. So the tracks are compared with each other:
    each track's level is predicted from the others' (through the :func:`couplings` measured on this session) plus
    its own noise floor, and the track carries its own speaker where it is :data:`OWN_OVER_BLEED_DB` louder than
    that prediction, or where it is the loudest of the active tracks relative to its own speech level.
    Returns ``(own, open, speech_lufs)``: ``own[i]`` where track ``i``'s speaker talks (for the transcript and the
    levels), ``open[i]`` where its gate is open (own speech with its hold, plus the pauses the last speaker keeps),
    and each track's speech loudness (LUFS, BS.1770 gating over its own speech).
    """
    k = len(energies)
    n = max(len(e) for e in energies)
    e = np.zeros((k, n))
    for i, x in enumerate(energies):
        e[i, : len(x)] = x
    win = LEVEL_WINDOW_MS // SUB_MS
    with np.errstate(divide="ignore"):
        level = 10 * np.log10(np.maximum(np.stack([_moving_average(x, win) for x in e]), 1e-20)) - 0.691
    # First estimate of each track's speech loudness: gated integrated loudness of the whole track (BS.1770's
    # -10 LU relative gate leaves out most of the bleed; the own-speech estimate below replaces it).
    ref = np.array([integrated_from_energy(x) for x in e])
    ref = np.where(np.isfinite(ref), ref, -70.0)
    rel = level - ref[:, None]
    floor = np.array([np.percentile(x[x > -150], 10) if (x > -150).any() else -150.0 for x in level])
    active = level > np.maximum(floor[:, None] + FLOOR_MARGIN_DB, ref[:, None] + MIN_SPEECH_REL_DB)
    for i, v in enumerate(voice):
        if v is not None:
            active[i] &= v[:n] if len(v) >= n else np.r_[v, np.zeros(n - len(v), bool)]
    c = couplings(level, floor, active)
    own = np.zeros_like(active)
    for i in range(k):
        # What track i would hold if its own speaker were silent: its floor plus every other track's sound at the
        # coupling measured for it (power sum).
        with np.errstate(over="ignore"):
            expected = 10 ** (floor[i] / 10) + sum(
                10 ** ((level[j] + c[i, j]) / 10) for j in range(k) if j != i and np.isfinite(c[i, j])
            )
        excess = level[i] - 10 * np.log10(expected)
        others = np.where(active, rel, -np.inf)
        others = np.delete(others, i, axis=0).max(axis=0) if k > 1 else np.full(n, -np.inf)
        mine = active[i] & ((excess >= OWN_OVER_BLEED_DB) | ((rel[i] > others) & (excess >= 0)))
        # Runs shorter than MIN_OWN_MS are a click or a plosive's edge, not a turn.
        own[i] = _drop_short(mine, MIN_OWN_MS // SUB_MS)
    loud: list[float] = []
    for i in range(k):
        lv = float(integrated_from_energy(e[i][own[i]])) if own[i].any() else float(ref[i])
        loud.append(lv if math.isfinite(lv) else float(ref[i]))
    held = np.stack([_dilate(own[i], OPEN_BEFORE_MS // SUB_MS, HOLD_MS // SUB_MS) for i in range(k)])
    # Pauses: the last speaker's track stays open (before anyone speaks: the first speaker's).
    anyone = held.any(axis=0)
    last = np.full(n, -1)
    who = np.where(anyone, np.argmax(held, axis=0), -1)
    if anyone.any():
        idx = np.where(anyone, np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        last = who[idx]
        first = int(np.flatnonzero(anyone)[0])
        last[:first] = who[first]
    gate = held.copy()
    for i in range(k):
        gate[i] |= ~anyone & (last == i)
    return own, gate, loud


def regions(own: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Own-speech regions (seconds on the session timeline) for the transcript: close ones joined, padded."""
    sub_s = SUB_MS / 1000
    runs: list[list[float]] = []
    idx = np.flatnonzero(np.diff(np.concatenate([[0], own.astype(np.int8), [0]])))
    for a, b in zip(idx[::2], idx[1::2], strict=True):
        s, t = a * sub_s, b * sub_s
        if runs and s - runs[-1][1] < REGION_GAP_S:
            runs[-1][1] = t
        else:
            runs.append([s, t])
    end = len(own) * sub_s
    return tuple(
        (round(max(0.0, float(s) - REGION_PAD_S), 3), round(min(end, float(t) + REGION_PAD_S), 3))
        for s, t in runs
        if t - s >= MIN_REGION_S
    )


class _Reader:
    """Samples of one track on the session timeline: ``lead`` zeros, the track's samples, then zeros."""

    def __init__(self, blocks: Iterator[np.ndarray], lead: int) -> None:
        self.blocks = blocks
        self.buf = np.zeros(lead, np.float32)
        self.done = False

    def take(self, n: int) -> np.ndarray:
        parts = [self.buf]
        have = len(self.buf)
        while have < n and not self.done:
            try:
                x = next(self.blocks)[:, 0]
            except StopIteration:
                self.done = True
                break
            parts.append(x)
            have += len(x)
        buf = np.concatenate(parts) if len(parts) > 1 else self.buf
        out, self.buf = buf[:n], buf[n:]
        return out if len(out) == n else np.concatenate([out, np.zeros(n - len(out), np.float32)])


def _float_wav_header(frames: int, sr: int) -> bytes:
    """A RIFF/WAVE header for mono IEEE float32 (format 3) of ``frames`` frames."""
    data = frames * 4
    fmt = struct.pack("<HHIIHH", 3, 1, sr, sr * 4, 4, 32)
    fact = struct.pack("<I", frames)
    return (
        b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(fact) + 8 + data) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"fact" + struct.pack("<I", len(fact)) + fact
        + b"data" + struct.pack("<I", data)
    )  # fmt: skip


def mix_tracks(
    tracks: Sequence[Track], settings: AudioSettings, dest: Path, *, progress: ProgressFn | None = None
) -> Mix:
    """Align, gate, level and mix ``tracks`` into ``dest`` (mono float WAV at the tracks' rate); see the module."""
    progress = progress or null_progress
    probes = [check_file(Path(t.file), _field(i, "file")) for i, t in enumerate(tracks)]
    # Mix at the tracks' own rate when they share one (the master resamples the mix once, as it would a single
    # recording): decoding an hour of each track twice without a resampler is most of what makes mixing cheap.
    rates = {p.sample_rate for p in probes}
    sr = rates.pop() if len(rates) == 1 and probes[0].sample_rate and probes[0].sample_rate % 100 == 0 else 0
    sr = sr or settings.sample_rate
    sub = sr * SUB_MS // 1000
    lengths = [p.duration or 0.0 for p in probes]
    longest = max(lengths)
    for i, (t, secs) in enumerate(zip(tracks, lengths, strict=True)):
        if secs < LENGTH_RATIO * longest and longest - secs > MIN_LENGTH_GAP_S:
            j = lengths.index(longest)
            raise AudioError(
                f"{_field(i, 'file')}: the track is {secs:.1f} s long but {_field(j, 'file')} is {longest:.1f} s: "
                "tracks of one session should be about as long",
                where=t.file,
                hint="is it from another recording, or cut short? give the whole track",
            )

    # Alignment against the first track, then each track's place on the session timeline (sample exact).
    starts, sources, confidences, unaligned = _align(tracks)
    origin = min(starts)
    lead = [round((s - origin) * sr) for s in starts]

    # Pass 1: 10 ms energies of every track on the session grid (the lead's part of a 10 ms block is fed to the
    # meter as zeros, so every track's blocks line up exactly), and the silence check.
    total = sum(int(x * sr) for x in lengths) or 1
    done = [0]
    session: list[np.ndarray] = []
    frames: list[int] = []
    analyses: list[speech.Analysis | None] = []
    # The speech steps run on every track before the mix: VAD and hum (a thread, while pass 1 meters it),
    # the noise floor, noise reduction where it is needed, and the leveler's curve (below).
    wanted = settings.leveler.enabled or settings.denoise.mode != "off"
    for i, t in enumerate(tracks):
        meter = Meter(sr, 1, true_peak=False)
        if lead[i] % sub:
            meter.add(np.zeros((lead[i] % sub, 1), np.float32))
        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(speech.analyse, Path(t.file), _field(i, "file")) if wanted else None
            for x in decode(Path(t.file), sr, 1, _field(i, "file")):
                meter.add(x)
                done[0] += len(x)
                progress("Measuring tracks", done[0], total)
            # Silence first: the analysis of a silent file has nothing to say (and says it less clearly).
            if meter.frames <= lead[i] % sub or sound_bounds(meter.power, settings.silence_threshold_db) is None:
                raise AudioError(
                    f"{_field(i, 'file')}: the track is silent throughout (nothing above "
                    f"{settings.silence_threshold_db:g} dBFS)",
                    where=t.file,
                    hint="check the recording, or remove this [[tracks]] entry",
                )
            analyses.append(fut.result() if fut is not None else None)
        session.append(np.concatenate([np.zeros(lead[i] // sub), meter.k_energy]))
        frames.append(meter.frames - lead[i] % sub)
    if unaligned is not None:  # after the silence check: a silent track cannot match either, and that says more
        raise unaligned
    voice: list[np.ndarray | None] = []
    for i, an in enumerate(analyses):
        if an is None:
            voice.append(None)
            continue
        a = lead[i] // sub
        voice.append(np.r_[np.zeros(a, bool), an.mask(len(session[i]) - a)])
    own, gate, loudness = ownership(session, voice)
    n_subs = own.shape[1]
    session = [np.r_[x, np.zeros(n_subs - len(x))] for x in session]
    audio_in = [Path(t.file) for t in tracks]  # a track's own file, or its noise-reduced copy
    processing = [
        _clean(i, t, an, voice[i], session[i], lead[i] // sub, settings, dest.parent, audio_in)
        for i, (t, an) in enumerate(zip(tracks, analyses, strict=True))
    ]
    # Each speaker's stretches to the same loudness (the leveler, on the track's own speech), then every track's
    # speech to the target: speakers levelled against each other.
    curves = []
    for i in range(len(tracks)):
        # Whole phrases, not the 10 ms pieces between syllables: the own-speech mask with the gate's hold.
        phrases = _dilate(own[i], OPEN_BEFORE_MS // SUB_MS, HOLD_MS // SUB_MS)
        lev = speech.gain_curve(session[i], phrases, settings.leveler)
        curve = np.zeros(n_subs) if lev.curve_db is None else speech.cap_pauses(lev.curve_db, phrases, 0.0)
        curve = np.r_[curve, np.zeros(n_subs - len(curve))][:n_subs]
        curves.append(curve)
        if own[i].any():
            v = integrated_from_energy(session[i][own[i]] * 10 ** (curve[own[i]] / 10))
            loudness[i] = v if math.isfinite(v) else loudness[i]
        processing[i]["leveler"] = {
            "note": lev.note, "stretches": lev.stretches, "stretches_levelled": lev.levelled,
            "gain_range_db": [round(float(curve.min()), 2), round(float(curve.max()), 2)],
            "turn_spread_before_lu": lev.spread_before_lu, "turn_spread_after_lu": lev.spread_after_lu,
        }  # fmt: skip
    target = settings.target_lufs
    gains = [target - v for v in loudness]
    closed = 10 ** (-GATE_DB / 20)
    gates = [_moving_average(np.where(g, 1.0, closed), RAMP_MS // SUB_MS) for g in gate]
    env = [g * 10 ** (c / 20) for g, c in zip(gates, curves, strict=True)]

    # Pass 2: the mix, streamed into a float WAV on the session timeline.
    total_frames = max(ld + f for ld, f in zip(lead, frames, strict=True))
    readers = [
        _Reader(decode(src, sr, 1, _field(i, "file")), ld)
        for i, (src, ld) in enumerate(zip(audio_in, lead, strict=True))
    ]
    centers = (np.arange(n_subs) + 0.5) * sub
    block = int(sr * BLOCK_SECONDS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f:
        f.write(_float_wav_header(total_frames, sr))
        pos = 0
        while pos < total_frames:
            n = min(block, total_frames - pos)
            p = np.arange(pos, pos + n)
            y = np.zeros(n, np.float32)
            for r, g, e in zip(readers, gains, env, strict=True):
                y += r.take(n) * (np.interp(p, centers, e) * 10 ** (g / 20)).astype(np.float32)
            f.write(y.astype("<f4").tobytes())
            pos += n
            progress("Mixing tracks", pos, total_frames)
    sub_s = SUB_MS / 1000
    out = []
    for i, t in enumerate(tracks):
        others = np.zeros(n_subs, bool)
        for j in range(len(tracks)):
            if j != i:
                others |= own[j]
        bleed_only = others & ~own[i]
        depth = float(-20 * np.log10(np.mean(gates[i][bleed_only]))) if bleed_only.any() else 0.0
        out.append(
            MixTrack(
                file=Path(t.file).name,
                speaker=t.speaker,
                start_s=round((starts[i] - origin), 6),
                offset_s=round(starts[i] - starts[0], 6),
                offset_source=sources[i],
                confidence=round(confidences[i], 2),
                speech_lufs=round(loudness[i], 2),
                gain_db=round(gains[i], 2),
                own_speech_s=round(float(own[i].sum()) * sub_s, 2),
                bleed_reduction_db=round(depth, 2),
                regions=regions(own[i]),
                processing=processing[i],
            )
        )
        log.info(
            "%s (%s): starts at %+.3f s (%s, confidence %.0f), speech %.1f LUFS, gain %+.1f dB",
            t.file.name, t.speaker, starts[i] - starts[0], sources[i], confidences[i], loudness[i], gains[i],
        )  # fmt: skip
    return Mix(dest, tuple(out))


def _clean(
    i: int,
    track: Track,
    an: speech.Analysis | None,
    voice: np.ndarray | None,
    energy: np.ndarray,
    first_sub: int,
    settings: AudioSettings,
    work: Path,
    audio_in: list[Path],
) -> dict[str, Any]:
    """Noise floor and hum of one track (the speech measurements), and noise reduction into ``work`` where they call
    for it (``audio_in[i]`` then names the cleaned copy the mix reads). Returns what was measured and done."""
    if an is None or voice is None:
        return {"denoise": "off"}
    floor = speech.noise_floor(energy[first_sub:], voice[first_sub:])
    engine, why = speech.needs_denoise(settings.denoise, floor, an)
    out: dict[str, Any] = {
        "noise_floor_lufs": floor.noise_lufs,
        "noise_under_speech_db": None if floor.under_speech_db is None else round(floor.under_speech_db, 2),
        "hum_hz": an.hum_hz,
        "hum_line_db": an.hum_line_db,
        "hum_notches": speech.notch_text(an),
        "denoise": why,
        "engine": engine,
    }
    if engine is not None:
        dest = work / f"track-{i}-denoised.flac"
        what = _field(i, "file")
        speech.denoise(
            Path(track.file), engine, an.hum_hz, settings.denoise.strength, 1, floor.noise_lufs, dest, what,
            harmonics=an.hum_harmonics,
        )  # fmt: skip
        audio_in[i] = dest
        log.info("%s: %s; reduced with %s", what, why, engine)
    return out


def _align(tracks: Sequence[Track]) -> tuple[list[float], list[str], list[float], AudioError | None]:
    """Each track's start on the first track's timeline (plus the first's own configured offset), how it was
    found (``auto`` or ``config``), the match's confidence, and the error for the first track that could not be
    aligned (raised by the caller once the tracks are known not to be silent)."""
    error: AudioError | None = None
    base = tracks[0].offset or 0.0
    ref = align.load_window(Path(tracks[0].file), _field(0, "file"))
    starts, sources, conf = [base], ["reference"], [0.0]
    for i, t in enumerate(tracks[1:], 1):
        m = align.match(ref, align.load_window(Path(t.file), _field(i, "file")))
        if m.confidence >= align.MIN_CONFIDENCE:
            if t.offset is not None and abs(base + m.offset_s - t.offset) > 0.05:
                log.warning(
                    "%s: found offset %.3f s, configured %.3f s: using the one found (confidence %.0f)",
                    _field(i, "offset"), base + m.offset_s, t.offset, m.confidence,
                )  # fmt: skip
            starts.append(base + m.offset_s)
            sources.append("auto")
        elif t.offset is not None:
            log.warning(
                "%s: the tracks do not match well enough to align (confidence %.1f < %.0f): using the configured "
                "offset %.3f s", _field(i, "offset"), m.confidence, align.MIN_CONFIDENCE, t.offset,
            )  # fmt: skip
            starts.append(t.offset)
            sources.append("config")
        else:
            starts.append(base)
            sources.append("none")
            error = error or AudioError(
                f"{_field(i, 'offset')}: cannot align {Path(t.file).name} with {Path(tracks[0].file).name}: the "
                f"match is weak (confidence {m.confidence:.1f}, needs {align.MIN_CONFIDENCE:g}); the tracks share "
                "no bleed or clap in their first minutes",
                where=t.file,
                hint=f"set {_field(i, 'offset')} to where this track starts relative to the first one, in seconds "
                "(or clap once at the start of every recording)",
            )
        conf.append(m.confidence)
    return starts, sources, conf, error


def master_tracks(
    episode: EpisodeConfig,
    settings: AudioSettings,
    assets: Assets,
    build_dir: Path,
    *,
    progress: ProgressFn | None = None,
) -> Master:
    """The mastering stage for ``[[tracks]]``: mix (see the module), then master the mixed body like a recording.

    Times in the mixed body are session times, so ``master.pieces`` maps session time (chapters, regions) onto the
    published timeline as for any recording.
    """
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_dir, prefix=".mix-") as tmp:
        t0 = time.perf_counter()
        mix = mix_tracks(episode.tracks, settings, Path(tmp) / "session-mix.wav", progress=progress)
        mix_seconds = round(time.perf_counter() - t0, 3)
        # The tracks had the speech steps already (VAD, floor, hum, denoise, leveler): the mix is not processed again.
        done = settings.model_copy(
            update={"leveler": settings.leveler.model_copy(update={"enabled": False}),
                    "denoise": settings.denoise.model_copy(update={"mode": "off"})}
        )  # fmt: skip
        result = master(
            episode.model_copy(update={"recordings": (mix.path,), "tracks": ()}),
            done, assets, build_dir, progress=progress,
        )  # fmt: skip
    names = tuple(t.file for t in mix.tracks)
    body = replace(result.body, sources=names)
    result = replace(
        result,
        segments=tuple(body if s.name == "body" else s for s in result.segments),
        pieces=tuple(replace(p, sources=names) for p in result.pieces),
        tracks=mix.tracks,
        settings=settings.model_dump(mode="json"),
    )
    if isinstance(result.details, MasteredDetails):  # the mix's time first, as it ran first
        result = replace(
            result, details=replace(result.details, seconds={"mix": mix_seconds, **result.details.seconds})
        )
    result.write()
    return result


__all__ = ["GATE_DB", "Mix", "master_tracks", "mix_tracks", "ownership", "regions"]
