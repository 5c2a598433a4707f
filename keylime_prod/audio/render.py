"""Pass 2: the streaming render into LAME, with the true-peak limiter and the crossfades around the body.

Decode again, trim, apply the gain, run the true-peak limiter only if gain alone would break the ceiling, dither to
16-bit (TPDF), and write straight into ffmpeg's libmp3lame, while the intro, disclaimer and outro (small pydub
``AudioSegment``s) are faded and crossfaded around the body. The numpy work runs on one core while LAME encodes on
the other; no copy of the whole episode is ever held.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

with warnings.catch_warnings():
    # pydub looks for an ffmpeg on PATH at import and warns when there is none; we never let it run one.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

from .. import ffmpeg
from ..config import AudioSettings
from ..errors import AudioError
from ..progress import ProgressFn
from .inputs import Asset, Part, decode
from .loudness import F32, SUB_MS, Meter, TruePeakLimiter, db_to_lin, limit_whole, tpdf_dither_to_s16
from .measure import ChildFollower, FollowingMeter, finish_limit
from .plan import Plan

log = logging.getLogger(__name__)

EDGE_FADE_MS = 10  # fade at every trim point so a cut in the room tone never clicks
CHILD_MEASURE_SECONDS = 300  # measure the written MP3 in a child process for episodes longer than this
ROOM_TONE_UNDER_DB = 20.0  # the quietest stretch is room tone only this far under the recording's loudness


class BodyStream:
    """Pass 2 over the raw parts: trimmed, gained, edge-faded blocks of the body, in order.

    Yields ``(final, block)``. A part whose measured true peak stays under the limiter's ceiling after its gain
    cannot need limiting: ffmpeg applies the gain and dithers to 16-bit itself and the int16 blocks are final
    (``final=True``), so Python only forwards bytes to LAME. Other parts come as float32 for the limiter.
    """

    def __init__(
        self,
        parts: list[Part],
        gains_db: list[float],
        s: AudioSettings,
        ceiling_db: float,
        report: Callable[[int], None],
    ):
        self.parts, self.gains, self.s, self.ceiling_db, self.report = parts, gains_db, s, ceiling_db, report
        self.rng = np.random.default_rng(9)  # dither of levelled parts (fixed: same inputs, same bytes)

    def gain_alone(self, p: Part, gain_db: float) -> bool:
        """Whether gain alone keeps this part under the ceiling (0.1 dB spare for the resampler's own peaks)."""
        return p.true_peak_db + gain_db <= self.ceiling_db - 0.1

    def __iter__(self) -> Iterator[tuple[bool, np.ndarray]]:
        sr, ch = self.s.sample_rate, self.s.channels
        fade = int(sr * EDGE_FADE_MS / 1000)
        for i, (p, g) in enumerate(zip(self.parts, self.gains, strict=True)):
            final = self.gain_alone(p, g)
            pos = 0
            lin = np.float32(db_to_lin(g))
            what = f"recording {i + 1}"
            # The leveler's curve is applied here, in float; without one, ffmpeg applies the gain and dithers.
            curve = None if p.curve_db is None else (10 ** (p.curve_db / 20)).astype(np.float32)
            sub = sr * SUB_MS // 1000
            blocks = (
                decode(p.render_path, sr, ch, what, self.report, fmt="s16le", gain_db=g)
                if final and curve is None
                else decode(p.render_path, sr, ch, what, self.report)
            )
            for x in blocks:
                a, b = max(p.keep_start, pos), min(p.keep_end, pos + len(x))
                if b > a:
                    if final and curve is None:
                        y = x[a - pos : b - pos]
                    elif curve is None:
                        y = x[a - pos : b - pos] * lin
                    else:
                        # Linear between the 10 ms sub-block centres, on this block's few sub-blocks only.
                        r0, r1 = a - p.keep_start, b - p.keep_start
                        k0, k1 = max(0, r0 // sub - 1), min(len(curve), r1 // sub + 2)
                        env = np.interp(
                            np.arange(r0, r1, dtype=np.float64), (np.arange(k0, k1) + 0.5) * sub, curve[k0:k1]
                        ).astype(np.float32)
                        y = x[a - pos : b - pos] * (env * lin)[:, None]
                    # Edge fades at the trim points (positions relative to the kept stretch).
                    rel0, rel1 = a - p.keep_start, b - p.keep_start
                    if rel0 < fade:
                        k = np.arange(rel0, min(rel1, fade), dtype=np.float32)
                        y = scale(y, slice(0, len(k)), k / fade)
                    if rel1 > p.kept - fade:
                        k = np.arange(max(rel0, p.kept - fade), rel1, dtype=np.float32)
                        y = scale(y, slice(len(y) - len(k), len(y)), (p.kept - k) / fade)
                    yield final, (tpdf_dither_to_s16(y, self.rng) if final and curve is not None else y)
                pos += len(x)
            # Resampling can end a few frames short of the length planned from pass 1: pad so every later
            # position on the timeline is exactly where master.json says it is.
            short = p.keep_end - max(p.keep_start, pos)
            if short > 0:
                yield final, np.zeros((short, ch), np.int16 if final else np.float32)


def room_tone(p: Part, frames: int, sr: int, ch: int) -> F32:
    """``frames`` of the quietest stretch of ``p``'s kept audio (its room tone, on the 10 ms energies of pass 1; the
    leveler's curve there included), with 10 ms fades at both ends; silence if the recording has no pause."""
    sub = sr * SUB_MS // 1000
    n = max(1, -(-frames // sub))
    if len(p.k_energy) <= n:
        return np.zeros((frames, ch), np.float32)
    c = np.concatenate([[0.0], np.cumsum(p.k_energy)])
    sums = c[n:] - c[:-n]
    i = int(np.argmin(sums))
    # Only a real pause is room tone: a recording with none (a tone, speech wall to wall) gives silence as before.
    if -0.691 + 10 * np.log10(max(float(sums[i]) / n, 1e-20)) > p.loudness - ROOM_TONE_UNDER_DB:
        return np.zeros((frames, ch), np.float32)
    start = p.keep_start + i * sub
    raw = ffmpeg.run(
        ffmpeg.decode_args(p.render_path, sample_rate=sr, channels=ch, start=start / sr, duration=frames / sr),
        where=p.render_path,
        timeout=ffmpeg.limits.EXCERPT_TIMEOUT_S,
    ).stdout
    y = np.zeros((frames, ch), np.float32)
    got = np.frombuffer(raw[: len(raw) // (4 * ch) * 4 * ch], dtype="<f4").reshape(-1, ch)[:frames]
    y[: len(got)] = got
    if p.curve_db is not None:
        y *= np.float32(10 ** (float(np.mean(p.curve_db[i : i + n])) / 20))
    fade = min(int(sr * EDGE_FADE_MS / 1000), frames // 2)
    if fade:
        ramp = np.arange(fade, dtype=np.float32) / fade
        y[:fade] *= ramp[:, None]
        y[-fade:] *= ramp[::-1, None]
    return y


def scale(y: np.ndarray, where: slice, ramp: np.ndarray) -> np.ndarray:
    """Multiply frames ``where`` of ``y`` by ``ramp`` (float32 in place; int16 on a copy, rounded)."""
    if y.dtype == np.int16:
        y = y.copy()
        y[where] = np.rint(y[where].astype(np.float32) * ramp[:, None]).astype(np.int16)
        return y
    if not y.flags.writeable:
        y = y.copy()
    y[where] *= ramp[:, None]
    return y


def to_segment(pcm16: np.ndarray, sr: int) -> AudioSegment:
    return AudioSegment(data=pcm16.tobytes(), sample_width=2, frame_rate=sr, channels=pcm16.shape[1])


def from_segment(seg: AudioSegment) -> F32:
    a = np.frombuffer(seg.raw_data, dtype="<i2").reshape(-1, seg.channels)
    return (a.astype(np.float32) / np.float32(32768.0)).astype(np.float32)


@dataclass
class RenderStats:
    reduction_db: float = 0.0
    limited_frames: int = 0


def _tail(
    parts: list[Part],
    assets: dict[str, Asset],
    plan: Plan,
    s: AudioSettings,
    levelled: Callable[[str], AudioSegment],
    rng: np.random.Generator,
    stats: RenderStats,
) -> AudioSegment | None:
    """What follows the body: the gap (room tone), the disclaimer, and the outro bed rising under the disclaimer's
    last words, faded out; ``None`` for an episode with none of them. Draws its dither from ``rng`` after the body's,
    so the same inputs give the same bytes."""
    sr, ch = plan.sr, plan.ch
    tail_seg: AudioSegment | None = None
    if plan.gap:
        # Room tone, not digital silence: a hole of -inf dB between the body and the disclaimer is heard as the
        # line going dead. The quietest stretch of the last recording, at that recording's gain.
        tone = room_tone(parts[-1], plan.gap, sr, ch) * np.float32(db_to_lin(plan.part_gains_db[-1]))
        tail_seg = to_segment(tpdf_dither_to_s16(tone, rng), sr)
    if "disclaimer" in assets:
        d = levelled("disclaimer")
        tail_seg = d if tail_seg is None else tail_seg + d
    if "outro" in assets:
        o = levelled("outro")
        assert plan.outro_start is not None
        body_end = plan.body_start + plan.body_frames
        already = body_end + (tail_seg.frame_count() if tail_seg is not None else 0)
        overlap = int(already - plan.outro_start)
        if tail_seg is not None and overlap > 0:
            keep = tail_seg.get_sample_slice(0, int(tail_seg.frame_count() - overlap))
            under = tail_seg.get_sample_slice(int(tail_seg.frame_count() - overlap), None)
            rise = o.get_sample_slice(0, overlap).fade_in(len(under))
            y, red = limit_whole(from_segment(under.overlay(rise)), sr, ch, plan.ceiling_db)
            stats.reduction_db = min(stats.reduction_db, red)
            mixed = to_segment(tpdf_dither_to_s16(y, rng), sr)
            tail_seg = keep + mixed + o.get_sample_slice(overlap, None)
        else:
            tail_seg = o if tail_seg is None else tail_seg + o
    if tail_seg is not None and s.fade_out_ms:
        tail_seg = tail_seg.fade_out(min(s.fade_out_ms, len(tail_seg)))
    return tail_seg


def render(
    dest: Path,
    parts: list[Part],
    assets: dict[str, Asset],
    plan: Plan,
    s: AudioSettings,
    progress: ProgressFn,
    lossless: Path | None = None,
) -> tuple[RenderStats, Meter]:
    """Stream the whole episode into LAME (and the same 16-bit PCM into the FLAC ``lossless``, if given); return
    what the limiter did and the meter of the decoded MP3."""
    sr, ch = plan.sr, plan.ch
    rng = np.random.default_rng(258)  # fixed seed: the same inputs give a byte-identical MP3
    stats = RenderStats()
    total_raw = sum(p.frames for p in parts)
    done = [0]

    def report(n: int) -> None:
        done[0] += n
        progress("Rendering and encoding", done[0], total_raw)

    def levelled(name: str) -> AudioSegment:
        a = assets[name]
        y, red = limit_whole(a.pcm * np.float32(db_to_lin(plan.asset_gains_db[name])), sr, ch, plan.ceiling_db)
        stats.reduction_db = min(stats.reduction_db, red)
        return to_segment(tpdf_dither_to_s16(y, rng), sr)

    proc = ffmpeg.popen(
        ffmpeg.encode_mp3_args(dest, sample_rate=sr, channels=ch, bitrate_kbps=s.bitrate_kbps, lossless=lossless),
        stdin=-1,
        stdout=-3,  # subprocess.PIPE, DEVNULL
    )
    assert proc.stdin is not None
    # A child process costs ~1.5 s to start (a fresh interpreter importing numpy and scipy): worth it only when
    # the episode is long enough for GIL contention to cost more.
    follower: FollowingMeter | ChildFollower = (
        ChildFollower(dest, sr, ch, dest.parent)
        if plan.total > CHILD_MEASURE_SECONDS * sr
        else FollowingMeter(dest, sr, ch)
    )

    def write(pcm16: np.ndarray | bytes) -> None:
        data = pcm16 if isinstance(pcm16, bytes) else pcm16.tobytes()
        try:
            assert proc.stdin is not None
            with proc.waiting():  # a LAME that stopped reading is killed after ffmpeg.limits.STALL_TIMEOUT_S
                proc.stdin.write(data)
        except BrokenPipeError:
            ffmpeg.finish(proc, where=dest)  # raises with ffmpeg's own message
            raise AudioError("the MP3 encoder stopped early", where=dest) from None

    try:
        # --- head: the intro, with the body's first ``xf_in`` frames mixed under its tail.
        head: AudioSegment | None = None
        if "intro" in assets:
            head = levelled("intro")
            if s.fade_in_ms:
                head = head.fade_in(s.fade_in_ms)
        pending_head = plan.xf_in  # body frames still to mix into the intro's tail
        head_body: list[np.ndarray] = []
        limiter = TruePeakLimiter(sr, ch, plan.ceiling_db)
        first_body = head is None

        def emit_body(y: F32) -> None:
            if len(y):
                emit_final(tpdf_dither_to_s16(y, rng))

        def emit_final(q: np.ndarray) -> None:
            nonlocal pending_head, first_body
            if not len(q):
                return
            if first_body and s.fade_in_ms:
                n = min(len(q), int(sr * s.fade_in_ms / 1000))
                q = scale(q, slice(0, n), np.arange(n, dtype=np.float32) / max(1, n))
                first_body = False
            if pending_head > 0:
                take = min(pending_head, len(q))
                head_body.append(q[:take])
                pending_head -= take
                q = q[take:]
                if pending_head == 0:
                    _flush_head()
            if len(q):
                write(q)

        def _flush_head() -> None:
            assert head is not None
            bh = np.concatenate(head_body) if head_body else np.zeros((0, ch), np.int16)
            split = head.frame_count() - len(bh)
            lead = head.get_sample_slice(0, int(split))
            tail = head.get_sample_slice(int(split), None)
            # The bed fades out under the first words; the speech keeps its level (a ducked crossfade, not pydub's
            # symmetric one, which would fade the first words in).
            mixed = tail.fade_out(len(tail)) if len(bh) else tail
            if len(bh):
                mixed = to_segment(bh, sr).overlay(mixed)
                # Two signals summed can exceed the ceiling: limit the mixed stretch on its own.
                y, red = limit_whole(from_segment(mixed), sr, ch, plan.ceiling_db)
                stats.reduction_db = min(stats.reduction_db, red)
                mixed = to_segment(tpdf_dither_to_s16(y, rng), sr)
            write(lead.raw_data)
            write(mixed.raw_data)

        if head is not None and plan.xf_in == 0:
            _flush_head()

        body = BodyStream(parts, list(plan.part_gains_db), s, plan.ceiling_db, report)
        for final, x in body:
            if final:
                emit_body(limiter.flush())  # a limited part before this one ends first
                emit_final(x)
            else:
                emit_body(limiter.push(x))
        emit_body(limiter.flush())
        if pending_head > 0 and head is not None:
            _flush_head()
        stats.reduction_db = min(stats.reduction_db, limiter.reduction_db)
        stats.limited_frames += limiter.limited_frames

        tail_seg = _tail(parts, assets, plan, s, levelled, rng, stats)
        if tail_seg is not None:
            write(tail_seg.raw_data)
        t_enc = time.perf_counter()
        ffmpeg.finish(proc, where=dest)
        log.debug("render: encoder drained in %.2f s", time.perf_counter() - t_enc)
    except BaseException:
        proc.kill()
        proc.wait()
        follower.abort()
        raise
    t_ver = time.perf_counter()
    meter = follower.finish(finish_limit(plan.total / sr))
    log.debug("render: measuring the MP3 finished %.2f s after the encoder", time.perf_counter() - t_ver)
    return stats, meter
