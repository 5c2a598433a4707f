"""The mastering stage: raw recordings in, a loudness-correct MP3 with intro, disclaimer and outro out.

``master(episode, settings, assets, build_dir) -> Master``. What it does, in order:

1. **Probe and measure** (pass 1, streaming). Every raw file is decoded by our own ffmpeg call to float32 PCM at the
   output rate (pydub's ``from_file`` needs ffprobe, which the imageio-ffmpeg wheel lacks, and would also truncate
   24-bit/float sources to 16-bit before the gain). A :class:`~keylime_prod.loudness.Meter` keeps 10 ms sums only:
   BS.1770-4 integrated loudness, LRA, true peak, and where speech starts and ends.
2. **Plan the gain.** Each part is brought to the target on its own (parts recorded at uneven levels are levelled),
   the intro/outro beds sit ``music_offset_lu`` from the speech and the disclaimer at the speech level. The whole
   episode's integrated loudness is then computed from the 10 ms energies of the planned timeline and everything is
   shifted so the *file* hits the target (Apple measures the file, not the body).
3. **Calibrate the codec.** MP3 encoding changes loudness (about -0.4 LU at 128 kbps CBR on speech, measured here)
   and adds inter-sample peaks. A 20 s excerpt goes through the same chain and LAME, is decoded and measured; the
   gain and the limiter's ceiling are corrected by what the codec did.
4. **Render** (pass 2, streaming into LAME). Decode again, trim, apply the gain, run the true-peak limiter only if
   gain alone would break the ceiling, dither to 16-bit (TPDF), and write straight into ffmpeg's libmp3lame, while
   the intro, disclaimer and outro (small pydub ``AudioSegment``s) are faded and crossfaded around the body. The
   numpy work runs on one core while LAME encodes on the other; no copy of the whole episode is ever held.
5. **Verify** the decoded MP3 with the meter: integrated loudness within ``tolerance_lu`` of the target and true
   peak under the ceiling, or correct and render again (at most twice). ``master.json`` says whether gain alone or
   the limiter got there (ffmpeg's ``loudnorm`` switches to dynamic mode silently; we say so).
"""

from __future__ import annotations

import contextlib
import logging
import math
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

with warnings.catch_warnings():
    # pydub looks for an ffmpeg on PATH at import and warns when there is none; we never let it run one.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

from . import __version__, ffmpeg, fsutil
from .artefacts import Loudness, Master, TimelineSegment
from .config import Assets, AudioSettings, EpisodeConfig
from .errors import AudioError, FFmpegError
from .loudness import (
    F32,
    SUB_MS,
    Meter,
    TruePeakLimiter,
    db_to_lin,
    integrated_from_energy,
    lin_to_db,
    lra_from_energy,
    sound_bounds,
    tpdf_dither_to_s16,
)
from .progress import ProgressFn, null_progress

log = logging.getLogger(__name__)

REPORT_NAME = "master.json"
CHUNK_SECONDS = 1.0
EDGE_FADE_MS = 10  # fade at every trim point so a cut in the room tone never clicks
CALIBRATION_SECONDS = 20.0
MIN_CODEC_MARGIN_DB = 0.3  # LAME adds inter-sample peaks; never aim the limiter closer than this to the ceiling
MAX_RENDERS = 3
CHILD_VERIFY_SECONDS = 300  # verify in a child process for episodes longer than this


# ------------------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _Part:
    """One raw recording after pass 1."""

    path: Path
    frames: int  # decoded length at the output rate
    keep_start: int  # first kept frame (leading silence trimmed, ``keep_silence_ms`` left)
    keep_end: int  # one past the last kept frame
    loudness: float  # integrated loudness of the kept stretch, LUFS
    true_peak: float  # linear, whole file
    sample_peak: float  # linear, whole file
    lra: float
    k_energy: np.ndarray  # 10 ms K-weighted energies of the kept stretch
    peaks: np.ndarray  # 10 ms sample peaks of the kept stretch (to predict what the limiter will take)

    @property
    def kept(self) -> int:
        return self.keep_end - self.keep_start


def _check_file(path: Path, what: str) -> ffmpeg.Probe:
    """Fail with one clear line if ``path`` is missing, empty or not decodable audio."""
    if not path.exists():
        raise AudioError(f"{what} not found", where=path, hint="check the path in the config")
    if not path.is_file():
        raise AudioError(f"{what} is not a file", where=path)
    if path.stat().st_size == 0:
        raise AudioError(f"{what} is empty (0 bytes)", where=path, hint="re-export the recording")
    try:
        info = ffmpeg.probe(path)
    except FFmpegError as e:
        raise AudioError(
            f"{what} is not a supported audio file ({e.message})",
            where=path,
            hint="use WAV, FLAC, MP3, M4A/AAC or OGG/Opus",
        ) from None
    missing = wav_missing_bytes(path)
    if missing:
        raise AudioError(
            f"{what} is truncated: its WAV header promises {missing} more bytes of audio than the file holds",
            where=path,
            hint="re-export or re-copy the recording (a crashed recorder leaves files like this)",
        )
    return info


def wav_missing_bytes(path: Path) -> int:
    """For a RIFF/WAVE file, how many bytes of the ``data`` chunk its header promises but the file lacks (0 if
    complete or not a WAV). ffmpeg decodes such files silently, so this is the only way to catch the cut."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            hdr = f.read(8)
            cid, clen = hdr[:4], int.from_bytes(hdr[4:8], "little")
            if cid == b"data":
                if clen in (0, 0xFFFFFFFF):  # streaming writers leave these: length unknown, not a promise
                    return 0
                return max(0, pos + 8 + clen - size)
            pos += 8 + clen + (clen & 1)
    return 0


def _decode(
    path: Path,
    sr: int,
    ch: int,
    what: str,
    progress: Callable[[int], None] | None = None,
    *,
    fmt: str = "f32le",
    gain_db: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield ``(frames, ch)`` blocks of ``path`` (float32, or int16 with ``fmt="s16le"``: then ffmpeg applies
    ``gain_db`` and TPDF-dithers to 16-bit itself); corrupt data is an :class:`AudioError`."""
    errors: list[str] = []
    dtype = np.dtype(ffmpeg.PCM_FORMATS[fmt])
    frame_bytes = dtype.itemsize * ch
    chunk = int(sr * CHUNK_SECONDS) * frame_bytes
    carry = b""
    args = ffmpeg.decode_args(
        path,
        sample_rate=sr,
        channels=ch,
        fmt=fmt,
        filters=[f"volume={gain_db:.6f}dB:precision=double"] if gain_db is not None else [],
        dither="triangular" if fmt == "s16le" else None,
    )
    try:
        for buf in ffmpeg.read_stream(args, chunk_bytes=chunk, where=path, errors=errors):
            if carry:
                buf = carry + buf
            n = len(buf) // frame_bytes * frame_bytes
            carry = buf[n:]
            if n:
                x = np.frombuffer(buf[:n], dtype=dtype).reshape(-1, ch)
                if progress:
                    progress(len(x))
                yield x
    except FFmpegError as e:
        raise AudioError(f"{what} could not be decoded: {e.message}", where=path, hint="re-export the file") from None
    bad = [ln for ln in errors if ln.strip()]
    if bad:
        raise AudioError(
            f"{what} is corrupt or truncated: {bad[-1].strip()}", where=path, hint="re-export or re-copy the file"
        )


def _measure_part(
    path: Path, info: ffmpeg.Probe, settings: AudioSettings, index: int, report: Callable[[int], None]
) -> _Part:
    """Pass 1 over one raw recording (``info``: its probe, from the up-front check)."""
    what = f"recording {index + 1}"
    sr, ch = settings.sample_rate, settings.channels
    # Measure at the file's own rate: resampling an hour of audio only to measure it would cost as much as the
    # measurement. (Rates that are not a whole number of frames per 10 ms, like 22050, are resampled so the
    # 10 ms grid stays exact.) Channels: a downmix to the output's count changes loudness, so measure that; an
    # upmix of mono (-3 dB into each channel) keeps loudness but would hide 3 dB of the file's true peak.
    rate_in = info.sample_rate if info.sample_rate % 100 == 0 else sr
    ch_in = min(info.channels, ch)
    meter = Meter(rate_in, ch_in)
    for x in _decode(path, rate_in, ch_in, what, lambda n: report(n * sr // rate_in)):
        meter.add(x)
    if meter.frames == 0:
        raise AudioError(f"{what} decodes to no audio", where=path, hint="re-export the recording")
    decoded = meter.frames / rate_in
    if info.duration and info.duration > 1.0 and decoded < 0.95 * info.duration - 0.5:
        raise AudioError(
            f"{what} is truncated: the header says {info.duration:.1f} s but only {decoded:.1f} s decode",
            where=path,
            hint="re-export or re-copy the file",
        )
    bounds = sound_bounds(meter.power, settings.silence_threshold_db)
    if bounds is None:
        raise AudioError(
            f"{what} is silent (nothing above {settings.silence_threshold_db:g} dBFS)",
            where=path,
            hint="check the recording, or lower audio.silence_threshold_db",
        )
    keep = settings.keep_silence_ms // SUB_MS
    s0, s1 = max(0, bounds[0] - keep), min(len(meter.power), bounds[1] + keep)
    ke = meter.k_energy[s0:s1]
    lufs = integrated_from_energy(ke)
    if not math.isfinite(lufs):
        raise AudioError(f"{what} is silent (below the -70 LUFS gate)", where=path, hint="check the recording")
    sub = sr * SUB_MS // 1000  # 10 ms in output frames: the grid maps exactly between rates
    frames = round(meter.frames * sr / rate_in)
    return _Part(
        path=path,
        frames=frames,
        keep_start=s0 * sub,
        keep_end=min(frames, s1 * sub),
        loudness=lufs,
        true_peak=meter.true_peak,
        sample_peak=float(meter.peaks.max()),
        lra=lra_from_energy(ke),
        k_energy=ke,
        peaks=meter.peaks[s0:s1].astype(np.float64),
    )


@dataclass(frozen=True)
class _Asset:
    """An intro, disclaimer or outro, decoded whole (they are short), with its measured loudness."""

    name: str
    path: Path
    pcm: F32
    loudness: float
    k_energy: np.ndarray
    is_music: bool


def _load_asset(name: str, path: Path, settings: AudioSettings) -> _Asset:
    """Decode and measure a (checked) intro, disclaimer or outro."""
    what = f"{name} asset"
    sr, ch = settings.sample_rate, settings.channels
    blocks = list(_decode(path, sr, ch, what))
    pcm = np.concatenate(blocks) if blocks else np.zeros((0, ch), np.float32)
    meter = Meter(sr, ch, true_peak=False)
    meter.add(pcm)
    lufs = integrated_from_energy(meter.k_energy)
    if len(pcm) == 0 or not math.isfinite(lufs):
        raise AudioError(f"{what} is silent", where=path, hint="check the file named in [assets]")
    return _Asset(name, path, pcm, lufs, meter.k_energy, is_music=name != "disclaimer")


# --------------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Layout:
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
class _Plan(_Layout):
    """A layout plus the gains and the limiter's ceiling of one render."""

    sr: int
    ch: int
    part_gains_db: tuple[float, ...]
    asset_gains_db: dict[str, float]
    ceiling_db: float  # where the limiter aims (the spec ceiling minus the codec margin)


def _layout(parts: list[_Part], assets: dict[str, _Asset], s: AudioSettings) -> _Layout:
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
    return _Layout(ilen, xf_in, body_start, body, gap, d_start, o_start, total)


def _ramp_energy(n: int, fade_in: int, fade_out: int) -> np.ndarray:
    """Energy factors of pydub's linear amplitude fades, per 10 ms sub-block."""
    f = np.ones(n)
    if fade_in > 0:
        k = min(fade_in, n)
        f[:k] *= (np.arange(k) / fade_in) ** 2
    if fade_out > 0:
        k = min(fade_out, n)
        f[n - k :] *= (np.arange(k, 0, -1) / fade_out) ** 2
    return f


def _episode_energy(
    parts: list[_Part],
    assets: dict[str, _Asset],
    part_gains: list[float],
    asset_gains: dict[str, float],
    layout: _Layout,
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
        e[i : i + n] += energy[:n] * 10 ** (gain_db / 10) * _ramp_energy(n, fade_in, fade_out)

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


# -------------------------------------------------------------------------------------------------- rendering


class _BodyStream:
    """Pass 2 over the raw parts: trimmed, gained, edge-faded blocks of the body, in order.

    Yields ``(final, block)``. A part whose measured true peak stays under the limiter's ceiling after its gain
    cannot need limiting: ffmpeg applies the gain and dithers to 16-bit itself and the int16 blocks are final
    (``final=True``), so Python only forwards bytes to LAME. Other parts come as float32 for the limiter.
    """

    def __init__(
        self,
        parts: list[_Part],
        gains_db: list[float],
        s: AudioSettings,
        ceiling_db: float,
        report: Callable[[int], None],
    ):
        self.parts, self.gains, self.s, self.ceiling_db, self.report = parts, gains_db, s, ceiling_db, report

    def gain_alone(self, p: _Part, gain_db: float) -> bool:
        """Whether gain alone keeps this part under the ceiling (0.1 dB spare for the resampler's own peaks)."""
        return lin_to_db(p.true_peak) + gain_db <= self.ceiling_db - 0.1

    def __iter__(self) -> Iterator[tuple[bool, np.ndarray]]:
        sr, ch = self.s.sample_rate, self.s.channels
        fade = int(sr * EDGE_FADE_MS / 1000)
        for i, (p, g) in enumerate(zip(self.parts, self.gains, strict=True)):
            final = self.gain_alone(p, g)
            pos = 0
            lin = np.float32(db_to_lin(g))
            what = f"recording {i + 1}"
            blocks = (
                _decode(p.path, sr, ch, what, self.report, fmt="s16le", gain_db=g)
                if final
                else _decode(p.path, sr, ch, what, self.report)
            )
            for x in blocks:
                a, b = max(p.keep_start, pos), min(p.keep_end, pos + len(x))
                if b > a:
                    y = x[a - pos : b - pos] if final else x[a - pos : b - pos] * lin
                    # Edge fades at the trim points (positions relative to the kept stretch).
                    rel0, rel1 = a - p.keep_start, b - p.keep_start
                    if rel0 < fade:
                        k = np.arange(rel0, min(rel1, fade), dtype=np.float32)
                        y = _scale(y, slice(0, len(k)), k / fade)
                    if rel1 > p.kept - fade:
                        k = np.arange(max(rel0, p.kept - fade), rel1, dtype=np.float32)
                        y = _scale(y, slice(len(y) - len(k), len(y)), (p.kept - k) / fade)
                    yield final, y
                pos += len(x)
            # Resampling can end a few frames short of the length planned from pass 1: pad so every later
            # position on the timeline is exactly where master.json says it is.
            short = p.keep_end - max(p.keep_start, pos)
            if short > 0:
                yield final, np.zeros((short, ch), np.int16 if final else np.float32)


def _scale(y: np.ndarray, where: slice, ramp: np.ndarray) -> np.ndarray:
    """Multiply frames ``where`` of ``y`` by ``ramp`` (float32 in place; int16 on a copy, rounded)."""
    if y.dtype == np.int16:
        y = y.copy()
        y[where] = np.rint(y[where].astype(np.float32) * ramp[:, None]).astype(np.int16)
        return y
    if not y.flags.writeable:
        y = y.copy()
    y[where] *= ramp[:, None]
    return y


def _to_segment(pcm16: np.ndarray, sr: int) -> AudioSegment:
    return AudioSegment(data=pcm16.tobytes(), sample_width=2, frame_rate=sr, channels=pcm16.shape[1])


def _from_segment(seg: AudioSegment) -> F32:
    a = np.frombuffer(seg.raw_data, dtype="<i2").reshape(-1, seg.channels)
    return (a.astype(np.float32) / np.float32(32768.0)).astype(np.float32)


def _limit_whole(x: F32, sr: int, ch: int, ceiling_db: float) -> tuple[F32, float]:
    lim = TruePeakLimiter(sr, ch, ceiling_db)
    out = np.concatenate([lim.push(x), lim.flush()]) if len(x) else x
    return out, lim.reduction_db


@dataclass
class _RenderStats:
    reduction_db: float = 0.0
    limited_frames: int = 0


class _FollowingMeter:
    """Decode and measure the MP3 *while LAME is still writing it*.

    LAME is single-threaded; the render loop leaves room on the second core, so verifying the decoded MP3 costs
    almost no extra wall time this way instead of a full decode after the encode. A thread tails the growing
    file into a decoding ffmpeg; another feeds the decoded PCM to a :class:`Meter`. (The MP3's Xing/LAME header
    is only final at the end, so this decode does not trim the encoder delay: ~25 ms of leading silence that
    changes neither loudness nor peak.)
    """

    def __init__(self, path: Path, sr: int, ch: int) -> None:
        self.path, self.sr, self.ch = path, sr, ch
        self.meter = Meter(sr, ch)
        self._done = threading.Event()
        self._error: BaseException | None = None
        args = ffmpeg.decode_args("pipe:0", sample_rate=sr, channels=ch)
        at = args.index("-i")
        args[at:at] = ["-f", "mp3"]  # a pipe has no file name to guess the format from
        self.dec = ffmpeg.popen(args, stdin=subprocess.PIPE)
        self._threads = [
            threading.Thread(target=self._feed, daemon=True),
            threading.Thread(target=self._read, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _feed(self) -> None:
        assert self.dec.stdin is not None
        try:
            while not self.path.exists():
                if self._done.is_set():
                    return
                time.sleep(0.02)
            with open(self.path, "rb") as f:
                while True:
                    buf = f.read(1 << 16)
                    if buf:
                        self.dec.stdin.write(buf)
                    elif self._done.is_set():
                        rest = f.read()
                        if not rest:
                            break
                        self.dec.stdin.write(rest)
                    else:
                        time.sleep(0.02)
        except (BrokenPipeError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                self.dec.stdin.close()

    def _read(self) -> None:
        assert self.dec.stdout is not None
        frame = 4 * self.ch
        carry = b""
        try:
            while buf := self.dec.stdout.read(self.sr * frame):
                buf = carry + buf
                n = len(buf) // frame * frame
                carry = buf[n:]
                if n:
                    self.meter.add(np.frombuffer(buf[:n], dtype="<f4").reshape(-1, self.ch))
        except BaseException as e:  # surfaced by finish()
            self._error = e

    def finish(self) -> Meter:
        """Call after the encoder has exited: measure the rest and return the meter."""
        self._done.set()
        for t in self._threads:
            t.join()
        err = ffmpeg.finish(self.dec, where=self.path)
        if self._error is not None:
            raise self._error
        if err.strip():
            raise AudioError(f"the encoded MP3 does not decode cleanly: {ffmpeg.last_error_line(err)}", where=self.path)
        return self.meter

    def abort(self) -> None:
        """Stop everything (the render failed)."""
        self._done.set()
        self.dec.kill()
        self.dec.wait()


class _ChildFollower:
    """Runs :class:`_FollowingMeter` in a child Python process (``python -m keylime_prod._verify_child``).

    In one process the render loop and the meter fight over the GIL; on 60 minutes (2 cores) a thread made
    render + verify 1.6x the encode alone. A plain subprocess (not multiprocessing's spawn, which re-runs the
    caller's ``__main__`` when a script lacks a main guard) has its own interpreter. The child waits for ``done``
    on stdin, finishes, and pickles its :class:`Meter` to a file; end of stdin without ``done`` aborts it.
    """

    def __init__(self, path: Path, sr: int, ch: int, work: Path) -> None:
        self.path = path
        self.out = work / f"{path.stem}.meter.pickle"
        argv = [sys.executable, "-m", "keylime_prod._verify_child", str(path), str(sr), str(ch), str(self.out)]
        log.debug("verifier: %s", subprocess.list2cmdline(argv))
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self) -> Meter:
        """Call after the encoder has exited: measure the rest and return the meter."""
        _, err = self.proc.communicate(input=b"done\n")
        if self.proc.returncode != 0:
            line = ffmpeg.last_error_line(err.decode("utf-8", "replace"))
            raise AudioError(f"verifying the MP3 failed: {line}", where=self.path)
        with open(self.out, "rb") as f:
            meter = pickle.load(f)
        assert isinstance(meter, Meter)
        return meter

    def abort(self) -> None:
        """Stop the child (the render failed)."""
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _render(
    dest: Path,
    parts: list[_Part],
    assets: dict[str, _Asset],
    plan: _Plan,
    s: AudioSettings,
    progress: ProgressFn,
) -> tuple[_RenderStats, Meter]:
    """Stream the whole episode into LAME; return what the limiter did and the meter of the decoded MP3."""
    sr, ch = plan.sr, plan.ch
    rng = np.random.default_rng(258)  # fixed seed: the same inputs give a byte-identical MP3
    stats = _RenderStats()
    total_raw = sum(p.frames for p in parts)
    done = [0]

    def report(n: int) -> None:
        done[0] += n
        progress("Rendering and encoding", done[0], total_raw)

    def levelled(name: str) -> AudioSegment:
        a = assets[name]
        y, red = _limit_whole(a.pcm * np.float32(db_to_lin(plan.asset_gains_db[name])), sr, ch, plan.ceiling_db)
        stats.reduction_db = min(stats.reduction_db, red)
        return _to_segment(tpdf_dither_to_s16(y, rng), sr)

    proc = ffmpeg.popen(
        ffmpeg.encode_mp3_args(dest, sample_rate=sr, channels=ch, bitrate_kbps=s.bitrate_kbps),
        stdin=-1,
        stdout=-3,  # subprocess.PIPE, DEVNULL
    )
    assert proc.stdin is not None
    # A child process costs ~1.5 s to start (a fresh interpreter importing numpy and scipy): worth it only when
    # the episode is long enough for GIL contention to cost more.
    follower: _FollowingMeter | _ChildFollower = (
        _ChildFollower(dest, sr, ch, dest.parent)
        if plan.total > CHILD_VERIFY_SECONDS * sr
        else _FollowingMeter(dest, sr, ch)
    )

    def write(pcm16: np.ndarray | bytes) -> None:
        data = pcm16 if isinstance(pcm16, bytes) else pcm16.tobytes()
        try:
            assert proc.stdin is not None
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
                q = _scale(q, slice(0, n), np.arange(n, dtype=np.float32) / max(1, n))
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
                mixed = _to_segment(bh, sr).overlay(mixed)
                # Two signals summed can exceed the ceiling: limit the mixed stretch on its own.
                y, red = _limit_whole(_from_segment(mixed), sr, ch, plan.ceiling_db)
                stats.reduction_db = min(stats.reduction_db, red)
                mixed = _to_segment(tpdf_dither_to_s16(y, rng), sr)
            write(lead.raw_data)
            write(mixed.raw_data)

        if head is not None and plan.xf_in == 0:
            _flush_head()

        body = _BodyStream(parts, list(plan.part_gains_db), s, plan.ceiling_db, report)
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

        # --- tail: gap, disclaimer, and the outro bed rising under the disclaimer's last words.
        tail_seg: AudioSegment | None = None
        if plan.gap:
            tail_seg = _to_segment(np.zeros((plan.gap, ch), np.int16), sr)
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
                y, red = _limit_whole(_from_segment(under.overlay(rise)), sr, ch, plan.ceiling_db)
                stats.reduction_db = min(stats.reduction_db, red)
                mixed = _to_segment(tpdf_dither_to_s16(y, rng), sr)
                tail_seg = keep + mixed + o.get_sample_slice(overlap, None)
            else:
                tail_seg = o if tail_seg is None else tail_seg + o
        if tail_seg is not None and s.fade_out_ms:
            tail_seg = tail_seg.fade_out(min(s.fade_out_ms, len(tail_seg)))
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
    meter = follower.finish()
    log.debug("render: verification finished %.2f s after the encoder", time.perf_counter() - t_ver)
    return stats, meter


def _measure_file(path: Path, sr: int, ch: int) -> Meter:
    meter = Meter(sr, ch)
    for x in _decode(path, sr, ch, "encoded MP3"):
        meter.add(x)
    return meter


def _calibrate(part: _Part, gain_db: float, s: AudioSettings, ceiling_db: float, work: Path) -> tuple[float, float]:
    """Run a 20 s excerpt of the loudest part through gain, limiter, dither and LAME; return (loudness change
    in LU, true-peak overshoot in dB) that the codec caused."""
    sr, ch = s.sample_rate, s.channels
    mid = (part.keep_start + part.keep_end) // 2
    half = int(sr * CALIBRATION_SECONDS / 2)
    a, b = max(part.keep_start, mid - half), min(part.keep_end, mid + half)
    # Seek straight to the excerpt (decoding half an hour to reach the middle would cost more than the rest).
    raw = ffmpeg.run(
        ffmpeg.decode_args(part.path, sample_rate=sr, channels=ch, start=a / sr, duration=(b - a) / sr),
        where=part.path,
    ).stdout
    blocks = [np.frombuffer(raw[: len(raw) // (4 * ch) * 4 * ch], dtype="<f4").reshape(-1, ch)]
    if not len(blocks[0]):
        return 0.0, 0.0
    y, _ = _limit_whole(np.concatenate(blocks) * np.float32(db_to_lin(gain_db)), sr, ch, ceiling_db)
    pcm = tpdf_dither_to_s16(y, np.random.default_rng(1))
    pre = Meter(sr, ch)
    pre.add(pcm.astype(np.float32) / np.float32(32768.0))
    mp3 = work / "calibration.mp3"
    ffmpeg.run(
        ffmpeg.encode_mp3_args(mp3, sample_rate=sr, channels=ch, bitrate_kbps=s.bitrate_kbps),
        input_bytes=pcm.tobytes(),
        where=mp3,
    )
    post = _measure_file(mp3, sr, ch)
    n = min(len(pre.k_energy), len(post.k_energy))
    d_lu = integrated_from_energy(post.k_energy[:n]) - integrated_from_energy(pre.k_energy[:n])
    d_tp = lin_to_db(post.true_peak) - lin_to_db(pre.true_peak)
    if not (math.isfinite(d_lu) and math.isfinite(d_tp)):
        return 0.0, 0.0
    log.debug("codec calibration: loudness %+.2f LU, true peak %+.2f dB", d_lu, d_tp)
    return d_lu, d_tp


# ------------------------------------------------------------------------------------------------------ stage


class _Clock:
    """Wall time per step, summed over repeats (recorded in master.json so slow steps are visible)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self._t, 3)
        self._t = now
        log.debug("mastering step %s: %.2f s", name, self.laps[name])


def master(
    episode: EpisodeConfig,
    settings: AudioSettings,
    assets: Assets,
    build_dir: Path,
    *,
    progress: ProgressFn | None = None,
) -> Master:
    """Master one episode into ``build_dir/<id>.mp3`` and ``build_dir/master.json``.

    Raises :class:`AudioError` for unusable inputs (missing, empty, corrupt, truncated, unsupported, silent) and
    writes nothing under the final names in that case: both outputs appear atomically at the very end.
    """
    progress = progress or null_progress
    s = settings
    sr, ch = s.sample_rate, s.channels
    build_dir = Path(build_dir)
    # Validate every input before any long work so a bad file fails in seconds, not after an hour of decoding.
    probes = [_check_file(Path(rec), f"recording {i + 1}") for i, rec in enumerate(episode.recordings)]
    named = {"intro": assets.intro, "disclaimer": assets.disclaimer, "outro": assets.outro}
    for name, path in named.items():
        if path is not None:
            _check_file(Path(path), f"{name} asset")

    # Pass 1: measure.
    expected = sum(int((pr.duration or 0) * sr) for pr in probes) or 1
    done = [0]

    def report(n: int) -> None:
        done[0] += n
        progress("Measuring loudness", done[0], expected)

    clock = _Clock()
    parts = [
        _measure_part(Path(rec), info, s, i, report)
        for i, (rec, info) in enumerate(zip(episode.recordings, probes, strict=True))
    ]
    clock.lap("measure")
    loaded = {name: _load_asset(name, Path(path), s) for name, path in named.items() if path is not None}
    clock.lap("assets")

    # Plan: level each part to the target, beds relative to speech, then aim the whole file at the target.
    part_gains = [s.target_lufs - p.loudness for p in parts]
    asset_gains = {
        n: s.target_lufs + (s.music_offset_lu if a.is_music else 0.0) - a.loudness for n, a in loaded.items()
    }
    layout = _layout(parts, loaded, s)

    def aim(shift: float, ceiling_db: float | None) -> float:
        """The shift that puts the planned file on the target (a few rounds: limiting depends on the shift)."""
        for _ in range(1 if ceiling_db is None else 4):
            energy = _episode_energy(
                parts,
                loaded,
                [g + shift for g in part_gains],
                {k: v + shift for k, v in asset_gains.items()},
                layout,
                s,
                ceiling_db,
            )
            shift += s.target_lufs - integrated_from_energy(energy)
        return shift

    shift = aim(0.0, None)

    build_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_dir, prefix=".master-") as tmp:
        work = Path(tmp)
        loudest = max(range(len(parts)), key=lambda i: parts[i].kept)
        ceiling = s.true_peak_db - MIN_CODEC_MARGIN_DB
        d_lu, d_tp = _calibrate(parts[loudest], part_gains[loudest] + shift, s, ceiling, work)
        clock.lap("calibrate")
        ceiling = s.true_peak_db - max(MIN_CODEC_MARGIN_DB, d_tp + 0.15)
        shift = aim(shift, ceiling) - d_lu  # the codec made it quieter by -d_lu: pre-compensate

        final = build_dir / f"{episode.id}.mp3"
        for attempt in range(1, MAX_RENDERS + 1):
            gains = [g + shift for g in part_gains]
            plan = _Plan(
                **asdict(layout),
                sr=sr,
                ch=ch,
                part_gains_db=tuple(gains),
                asset_gains_db={k: v + shift for k, v in asset_gains.items()},
                ceiling_db=ceiling,
            )
            mp3_tmp = work / f"render-{attempt}.mp3"
            stats, out = _render(mp3_tmp, parts, loaded, plan, s, progress)
            clock.lap("render+verify")
            got = out.measure()
            err_lu = s.target_lufs - got.integrated_lufs
            over = got.true_peak_dbtp - s.true_peak_db
            log.info(
                "render %d: %.2f LUFS, %.2f dBTP (limiter: %.2f dB max reduction)",
                attempt, got.integrated_lufs, got.true_peak_dbtp, stats.reduction_db,
            )  # fmt: skip
            if abs(err_lu) <= min(0.2, s.tolerance_lu) and over <= 0.0:
                break
            if attempt == MAX_RENDERS:
                if abs(err_lu) <= s.tolerance_lu and over <= 0.0:
                    break
                raise AudioError(
                    f"could not reach {s.target_lufs:g} LUFS / {s.true_peak_db:g} dBTP after {attempt} renders "
                    f"(got {got.integrated_lufs:.2f} LUFS, {got.true_peak_dbtp:.2f} dBTP)",
                    where=episode.id,
                    hint="check the recordings for clipping, or relax audio.tolerance_lu",
                )
            shift += err_lu
            if over > 0.0:
                ceiling -= over + 0.1

        method = "limiter" if stats.limited_frames > 0 or stats.reduction_db < -0.01 else "gain"
        sub = sr * SUB_MS // 1000

        def seconds(frames: int) -> float:
            return round(frames / sr, 6)

        segs: list[TimelineSegment] = []
        if "intro" in loaded:
            segs.append(TimelineSegment("intro", 0.0, seconds(plan.intro_frames), 0.0, (loaded["intro"].path.name,)))
        first_raw = parts[0].keep_start
        segs.append(
            TimelineSegment(
                "body",
                seconds(plan.body_start),
                seconds(plan.body_start + plan.body_frames),
                seconds(first_raw),
                tuple(p.path.name for p in parts),
            )
        )
        if plan.disclaimer_start is not None:
            d = loaded["disclaimer"]
            segs.append(
                TimelineSegment(
                    "disclaimer", seconds(plan.disclaimer_start), seconds(plan.disclaimer_start + len(d.pcm)), 0.0,
                    (d.path.name,),
                )
            )  # fmt: skip
        if plan.outro_start is not None:
            o = loaded["outro"]
            segs.append(
                TimelineSegment(
                    "outro", seconds(plan.outro_start), seconds(plan.outro_start + len(o.pcm)), 0.0, (o.path.name,)
                )
            )
        # Where each raw part sits: raw time (joined raw files, as a producer's editor shows them) -> episode time.
        pieces: list[TimelineSegment] = []
        raw_off, pos = 0, plan.body_start
        for i, p in enumerate(parts):
            pieces.append(
                TimelineSegment(
                    f"part-{i + 1}", seconds(pos), seconds(pos + p.kept), seconds(raw_off + p.keep_start),
                    (p.path.name,),
                )
            )  # fmt: skip
            raw_off += p.frames
            pos += p.kept

        body_ke = np.concatenate([p.k_energy for p in parts])
        input_loudness = Loudness(
            integrated_lufs=round(integrated_from_energy(body_ke), 2),
            lra_lu=round(lra_from_energy(body_ke), 2),
            true_peak_dbtp=round(lin_to_db(max(p.true_peak for p in parts)), 2),
            sample_peak_dbfs=round(lin_to_db(max(p.sample_peak for p in parts)), 2),
        )
        b0, b1 = plan.body_start // sub, (plan.body_start + plan.body_frames) // sub
        body_out = out.measure(b0, b1)
        output_loudness = Loudness(
            integrated_lufs=round(got.integrated_lufs, 2),
            lra_lu=round(got.lra_lu, 2),
            true_peak_dbtp=round(got.true_peak_dbtp, 2),
            sample_peak_dbfs=round(got.sample_peak_dbfs, 2),
        )
        mp3_info = ffmpeg.probe(mp3_tmp)
        # LAME's header carries the encoder delay and padding, so decoders return exactly the frames we wrote.
        duration = round(plan.total / sr, 6)
        if mp3_info.duration is not None and abs(mp3_info.duration - duration) > 0.05:
            log.warning("%s: ffmpeg reads %.2f s, %.2f s were written", final.name, mp3_info.duration, duration)
        with fsutil.atomic_path(final) as t:
            Path(mp3_tmp).replace(t)
        result = Master(
            episode_id=episode.id,
            mp3=final,
            report=build_dir / REPORT_NAME,
            duration=duration,
            sample_rate=sr,
            channels=ch,
            bitrate_kbps=s.bitrate_kbps,
            audio_sha256=fsutil.sha256_file(final),
            segments=tuple(segs),
            input_loudness=input_loudness,
            output_loudness=output_loudness,
            method=method,
            gain_db=round(float(np.mean(gains)), 2),
            settings=s.model_dump(mode="json"),
            tools={"keylime-prod": __version__, "ffmpeg": ffmpeg.version(), "encoder": "libmp3lame"},
            pieces=tuple(pieces),
            details={
                "parts": [
                    {
                        "file": p.path.name,
                        "input_lufs": round(p.loudness, 2),
                        "input_true_peak_dbtp": round(lin_to_db(p.true_peak), 2),
                        "input_lra_lu": round(p.lra, 2),
                        "gain_db": round(g, 2),
                        "trimmed_start_s": seconds(p.keep_start),
                        "trimmed_end_s": seconds(p.frames - p.keep_end),
                    }
                    for p, g in zip(parts, gains, strict=True)
                ],
                "assets": {
                    n: {
                        "file": a.path.name,
                        "input_lufs": round(a.loudness, 2),
                        "gain_db": round(plan.asset_gains_db[n], 2),
                    }
                    for n, a in loaded.items()
                },
                "body_output": {
                    "integrated_lufs": round(body_out.integrated_lufs, 2),
                    "lra_lu": round(body_out.lra_lu, 2),
                },
                "codec_calibration": {"loudness_lu": round(d_lu, 3), "true_peak_db": round(d_tp, 3)},
                "limiter": {
                    "ceiling_dbtp": round(plan.ceiling_db, 2),
                    "max_reduction_db": round(stats.reduction_db, 2),
                    "limited_seconds": round(stats.limited_frames / sr, 3),
                },
                "renders": attempt,
                "seconds": clock.laps,
                "mp3": {"codec": mp3_info.codec, "sample_rate": mp3_info.sample_rate, "channels": mp3_info.channels},
            },
        )
    fsutil.write_json(result.report, result.to_json())
    log.info(
        "%s: %.2f LUFS, %.2f dBTP (%s)",
        final.name, output_loudness.integrated_lufs, output_loudness.true_peak_dbtp,
        "gain alone" if method == "gain" else f"gain and up to {-stats.reduction_db:.1f} dB of limiting",
    )  # fmt: skip
    return result


__all__ = ["REPORT_NAME", "master"]
