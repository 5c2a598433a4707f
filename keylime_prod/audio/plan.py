"""The loudness plan: where everything sits on the final timeline, and the gains that put the *file* on target.

Each part is brought to the target on its own (parts recorded at uneven levels are levelled), the intro/outro beds
sit ``music_offset_lu`` from the speech and the disclaimer at the speech level. The whole episode's integrated
loudness is computed from the 10 ms energies of the planned timeline and everything is shifted so the *file* hits
the target (Apple measures the file, not the body). The codec is calibrated on a 20 s excerpt: MP3 encoding changes
loudness (about -0.4 LU at 128 kbps CBR on speech, measured here) and adds inter-sample peaks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ffmpeg
from ..config import AudioSettings
from .inputs import Asset, Part
from .loudness import SUB_MS, Meter, db_to_lin, integrated_from_energy, limit_whole, lin_to_db, tpdf_dither_to_s16
from .measure import measure_file

log = logging.getLogger(__name__)

CALIBRATION_SECONDS = 20.0
MIN_CODEC_MARGIN_DB = 0.3  # LAME adds inter-sample peaks; never aim the limiter closer than this to the ceiling


@dataclass(frozen=True)
class Layout:
    """Frame positions of everything on the final timeline (crossfades make neighbours overlap)."""

    intro_frames: int
    xf_in: int
    body_start: int
    body_frames: int
    gap: int
    disclaimer_start: int | None
    outro_start: int | None
    total: int


@dataclass(frozen=True)
class Plan(Layout):
    """A layout plus the gains and the limiter's ceiling of one render."""

    sr: int
    ch: int
    part_gains_db: tuple[float, ...]
    asset_gains_db: dict[str, float]
    ceiling_db: float  # where the limiter aims (the spec ceiling minus the codec margin)


def plan_layout(parts: list[Part], assets: dict[str, Asset], s: AudioSettings) -> Layout:
    sr = s.sample_rate
    intro = assets.get("intro")
    disc = assets.get("disclaimer")
    outro = assets.get("outro")
    body = sum(p.kept for p in parts)
    ilen = len(intro.pcm) if intro else 0
    xf_in = min(int(sr * s.intro_crossfade_ms / 1000), ilen, body) if intro else 0
    body_start = ilen - xf_in
    body_end = body_start + body
    gap = int(sr * s.gap_ms / 1000) if (disc or outro) else 0
    d_start = body_end + gap if disc else None
    if outro:
        if disc:
            assert d_start is not None
            d_end = d_start + len(disc.pcm)
            xf_out = min(int(sr * s.outro_crossfade_ms / 1000), len(disc.pcm), len(outro.pcm))
            o_start: int | None = d_end - xf_out
        else:
            o_start = body_end + gap
        assert o_start is not None
        total = o_start + len(outro.pcm)
    else:
        o_start = None
        total = (d_start + len(disc.pcm)) if (disc and d_start is not None) else body_end
    return Layout(ilen, xf_in, body_start, body, gap, d_start, o_start, total)


def ramp_energy(n: int, fade_in: int, fade_out: int) -> np.ndarray:
    """Energy factors of pydub's linear amplitude fades, per 10 ms sub-block."""
    f = np.ones(n)
    if fade_in > 0:
        k = min(fade_in, n)
        f[:k] *= (np.arange(k) / fade_in) ** 2
    if fade_out > 0:
        k = min(fade_out, n)
        f[n - k :] *= (np.arange(k, 0, -1) / fade_out) ** 2
    return f


def episode_energy(
    parts: list[Part],
    assets: dict[str, Asset],
    part_gains: list[float],
    asset_gains: dict[str, float],
    layout: Layout,
    s: AudioSettings,
    ceiling_db: float | None = None,
) -> np.ndarray:
    """10 ms K-weighted energies of the planned episode, fades included (overlaps add energy: the beds and the
    speech are uncorrelated). Used to aim the whole file at the target before rendering anything.

    With ``ceiling_db``, a 10 ms block of speech whose peak the gain pushes over the ceiling is counted at the
    level the limiter will bring it down to, so heavy limiting does not leave the file short of the target and
    cost a second render (limiting loses loudness only where it acts; the meter sees it block by block)."""
    xf_in, body_start, d_start, o_start = layout.xf_in, layout.body_start, layout.disclaimer_start, layout.outro_start
    total = layout.total
    sub = s.sample_rate * SUB_MS // 1000
    e = np.zeros(total // sub + 2)

    def subs(ms: float) -> int:
        return int(ms / SUB_MS)

    def place(energy: np.ndarray, start_frame: int, gain_db: float, fade_in: int = 0, fade_out: int = 0) -> None:
        i = start_frame // sub
        n = min(len(energy), len(e) - i)
        e[i : i + n] += energy[:n] * 10 ** (gain_db / 10) * ramp_energy(n, fade_in, fade_out)

    fade_in = subs(s.fade_in_ms)
    if "intro" in assets:
        place(assets["intro"].k_energy, 0, asset_gains["intro"], fade_in, xf_in // sub)
        fade_in = 0
    pos = body_start
    for p, g in zip(parts, part_gains, strict=True):
        energy = p.k_energy
        if ceiling_db is not None:
            # True peaks sit a little over the sample peaks: count 0.5 dB more, so the prediction errs on the side
            # of more limiting.
            over = p.peaks[: len(energy)] * 10 ** ((g + 0.5 - ceiling_db) / 20)
            energy = energy * np.minimum(1.0, 1.0 / np.maximum(over, 1e-12) ** 2)
        place(energy, pos, g, fade_in)
        fade_in = 0
        pos += p.kept
    last = "outro" if o_start is not None else ("disclaimer" if d_start is not None else None)
    if d_start is not None:
        d = assets["disclaimer"]
        place(d.k_energy, d_start, asset_gains["disclaimer"], 0, subs(s.fade_out_ms) if last == "disclaimer" else 0)
    if o_start is not None:
        overlap = (d_start + len(assets["disclaimer"].pcm) - o_start) // sub if d_start is not None else 0
        place(assets["outro"].k_energy, o_start, asset_gains["outro"], overlap, subs(s.fade_out_ms))
    return e


def _excerpt(path: Path, a: int, b: int, sr: int, ch: int) -> np.ndarray:
    """Frames ``a..b`` of ``path`` at ``sr``/``ch`` (float32), decoded by seeking straight to them."""
    raw = ffmpeg.run(
        ffmpeg.decode_args(path, sample_rate=sr, channels=ch, start=a / sr, duration=(b - a) / sr),
        where=path,
        timeout=ffmpeg.limits.EXCERPT_TIMEOUT_S,
    ).stdout
    return np.frombuffer(raw[: len(raw) // (4 * ch) * 4 * ch], dtype="<f4").reshape(-1, ch)


def peak_windows(parts: list[Part], gains_db: list[float], sub: int, n: int, subs: int) -> list[tuple[int, int, int]]:
    """The ``n`` windows of ``subs`` 10 ms sub-blocks holding the episode's highest peaks after the part gains (and
    the leveler's curve, already in ``Part.peaks``): ``(part index, first frame, end frame)`` in the part's file.

    The codec's true-peak overshoot is a maximum over the peaks that reach the limiter's ceiling, and an hour has
    hundreds of them: measured on one 20 s stretch of speech it came out 0.1-0.4 dB short, and the first render of
    a real hour of speech broke the -1 dBTP ceiling (docs/audio.md, "One render"). These are the windows to measure.
    """
    cands: list[tuple[float, int, int]] = []
    for k, (p, g) in enumerate(zip(parts, gains_db, strict=True)):
        m = len(p.peaks) // subs
        if m == 0:
            continue
        top = p.peaks[: m * subs].reshape(m, subs).max(axis=1) * 10 ** (g / 20)
        for j in np.argsort(top)[::-1][:n]:
            cands.append((float(top[j]), k, int(j)))
    cands.sort(reverse=True)
    out = []
    for _, k, j in cands[:n]:
        a = parts[k].keep_start + j * subs * sub
        out.append((k, a, a + subs * sub))
    return sorted(out)


PEAK_WINDOWS = 24  # 24 x 0.5 s of the highest peaks beside the 20 s of typical speech
PEAK_WINDOW_SUBS = 50
JOIN_FADE_MS = 5  # the windows are joined with short fades: a step at a join would be a peak of its own


def calibrate(
    parts: list[Part], gains_db: list[float], loudest: int, s: AudioSettings, ceiling_db: float, work: Path
) -> tuple[float, float]:
    """Run a 20 s excerpt of the loudest part, then the windows of the episode's highest peaks
    (:func:`peak_windows`), through gain, limiter, dither and LAME; return (loudness change in LU over the 20 s,
    true-peak overshoot in dB over everything) that the codec caused."""
    sr, ch = s.sample_rate, s.channels
    part = parts[loudest]
    mid = (part.keep_start + part.keep_end) // 2
    half = int(sr * CALIBRATION_SECONDS / 2)
    a, b = max(part.keep_start, mid - half), min(part.keep_end, mid + half)
    # Seek straight to the excerpt (decoding half an hour to reach the middle would cost more than the rest).
    speech = _excerpt(part.render_path, a, b, sr, ch)
    if not len(speech):
        return 0.0, 0.0
    y_speech, _ = limit_whole(speech * np.float32(db_to_lin(gains_db[loudest])), sr, ch, ceiling_db)
    pieces = [y_speech]
    sub = sr * SUB_MS // 1000
    fade = int(sr * JOIN_FADE_MS / 1000)
    ramp = (np.arange(fade, dtype=np.float32) / fade)[:, None]
    windows = peak_windows(parts, gains_db, sub, PEAK_WINDOWS, PEAK_WINDOW_SUBS)
    if windows:
        # All the windows in one ffmpeg process (a process each cost ~0.5 s apiece on a busy machine).
        frames = PEAK_WINDOW_SUBS * sub
        raw = ffmpeg.run(
            ffmpeg.decode_excerpts_args(
                [(parts[k].render_path, a, frames) for k, a, _ in windows], sample_rate=sr, channels=ch
            ),
            where=part.render_path,
            # A decoder and a seek per window: bounded like a pass over that much audio, not like one excerpt.
            timeout=ffmpeg.limits.full_pass_timeout(len(windows) * frames / sr),
        ).stdout
        got = np.frombuffer(raw[: len(raw) // (4 * ch) * 4 * ch], dtype="<f4").reshape(-1, ch)
        for i, (k, wa, _) in enumerate(windows):
            x = got[i * frames : (i + 1) * frames].copy()
            if len(x) <= 2 * fade:
                continue
            curve = parts[k].curve_db
            if curve is not None:
                i0 = (wa - parts[k].keep_start) // sub
                env = np.repeat(10 ** (curve[i0 : i0 + PEAK_WINDOW_SUBS] / 20), sub)[: len(x)].astype(np.float32)
                x[: len(env)] *= env[:, None]
            y, _ = limit_whole(x * np.float32(db_to_lin(gains_db[k])), sr, ch, ceiling_db)
            y[:fade] *= ramp
            y[-fade:] *= ramp[::-1]
            pieces.append(y)
    pcm = tpdf_dither_to_s16(np.concatenate(pieces), np.random.default_rng(1))
    pre = Meter(sr, ch)
    pre.add(pcm.astype(np.float32) / np.float32(32768.0))
    mp3 = work / "calibration.mp3"
    ffmpeg.run(
        ffmpeg.encode_mp3_args(mp3, sample_rate=sr, channels=ch, bitrate_kbps=s.bitrate_kbps),
        input_bytes=pcm.tobytes(),
        where=mp3,
        timeout=ffmpeg.limits.EXCERPT_TIMEOUT_S,
    )
    post = measure_file(mp3, sr, ch)
    n = min(len(pre.k_energy), len(post.k_energy), len(y_speech) // sub)
    d_lu = integrated_from_energy(post.k_energy[:n]) - integrated_from_energy(pre.k_energy[:n])
    d_tp = lin_to_db(post.true_peak) - lin_to_db(pre.true_peak)
    if not (math.isfinite(d_lu) and math.isfinite(d_tp)):
        return 0.0, 0.0
    log.debug("codec calibration: loudness %+.2f LU, true peak %+.2f dB", d_lu, d_tp)
    return d_lu, d_tp
