"""Inputs of the mastering stage: check, probe, decode and measure (pass 1) the raw recordings and the assets.

Every file is decoded by our own ffmpeg call to float32 PCM at the output rate (pydub's ``from_file`` needs ffprobe,
which the imageio-ffmpeg wheel lacks, and would also truncate 24-bit/float sources to 16-bit before the gain). A
:class:`~keylime_prod.audio.loudness.Meter` keeps 10 ms sums only; leading and trailing silence is trimmed here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .. import ffmpeg
from ..config import AudioSettings
from ..errors import AudioError, FFmpegError
from .loudness import F32, SUB_MS, Meter, integrated_from_energy, lin_to_db, lra_from_energy, sound_bounds

CHUNK_SECONDS = 1.0
# A DC offset over -50 dBFS costs headroom and clicks at every cut and fade: such a recording is rendered
# from a copy without it. Under that, the offset is below what 16-bit dither and the codec leave anyway.
DC_LIMIT = 10 ** (-50 / 20)
DC_HIGHPASS_HZ = 10


@dataclass(frozen=True)
class Part:
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
    # 10 ms sample peaks of the kept stretch as the render will see them (``upmix`` included), to predict what the
    # limiter will take.
    peaks: np.ndarray
    # The file pass 2 renders from (a noise-reduced copy, or ``path``) and the leveler's gain per 10 ms
    # sub-block of the kept stretch (``k_energy``, ``peaks`` and ``loudness`` then already include it).
    source: Path | None = None
    curve_db: np.ndarray | None = None
    dc_offset: float = 0.0  # largest per-channel mean of the whole file, linear (removed when audible)
    # Amplitude of each rendered channel per unit of the measured signal: a mono recording is measured as mono
    # (``true_peak`` and ``sample_peak`` are the file's own) but rendered to stereo with swresample's upmix, which puts
    # it into each channel at -3 dB (loudness is kept, peaks drop 3 dB).
    upmix: float = 1.0

    @property
    def kept(self) -> int:
        return self.keep_end - self.keep_start

    @property
    def render_path(self) -> Path:
        return self.source or self.path

    @property
    def true_peak_db(self) -> float:
        """True peak the render will see before the part gain (the leveler's curve included: its 10 ms sample
        peaks plus the file's own margin of true over sample peak)."""
        if self.curve_db is None:
            return lin_to_db(self.true_peak * self.upmix)
        margin = lin_to_db(self.true_peak) - lin_to_db(max(self.sample_peak, 1e-12))
        return lin_to_db(float(self.peaks.max())) + margin


#: The shortest recording worth mastering: one BS.1770 gating block (400 ms).
MIN_SECONDS = 0.4


def check_file(path: Path, what: str) -> ffmpeg.Probe:
    """Fail with one clear line if ``path`` is missing, empty or not decodable audio."""
    if not path.exists():
        raise AudioError(f"{what} not found", where=path, hint="check the path in the config")
    if not path.is_file():
        # A FIFO or a device (/dev/zero) would never end or block forever: only regular files are recordings.
        raise AudioError(f"{what} is not a regular file (a folder, FIFO or device)", where=path,
                         hint="name the recording file itself")  # fmt: skip
    if path.stat().st_size == 0:
        raise AudioError(f"{what} is empty (0 bytes)", where=path, hint="re-export the recording")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:
        raise AudioError(f"{what} cannot be read (permission denied)", where=path,
                         hint=f"give this user read access, e.g. chmod a+r '{path}'") from None  # fmt: skip
    try:
        info = ffmpeg.probe(path)
    except FFmpegError as e:
        if e.hint:  # ffmpeg itself failed (stuck on the file, missing), not the file's format: keep its advice
            raise AudioError(f"{what} could not be probed: {e.message}", where=path, hint=e.hint) from None
        raise AudioError(
            f"{what} is not a supported audio file ({e.message})",
            where=path,
            hint="use WAV, FLAC, MP3, M4A/AAC or OGG/Opus",
        ) from None
    bad = wav_non_finite(path)
    if bad:
        # NaN/Inf poison every filter after them (the denoiser turns the whole file into NaN) and are no audio.
        raise AudioError(
            f"{what} holds {bad} NaN/Inf samples (a float WAV a plug-in broke)",
            where=path,
            hint="re-export it, or clip it in an editor; keylime-prod does not guess what they were",
        )
    missing = wav_missing_bytes(path)
    if missing:
        raise AudioError(
            f"{what} is truncated: its WAV header promises {missing} more bytes of audio than the file holds",
            where=path,
            hint="re-export or re-copy the recording (a crashed recorder leaves files like this)",
        )
    return info


def _wav_chunks(f: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int]]:
    """Walk a RIFF/WAVE file's chunks: ``(id, offset of its header, length the header states)``, with ``f``
    positioned at the chunk's data; nothing for a file that is not RIFF/WAVE. Chunks are word-aligned (a pad byte
    follows an odd length; Microsoft's RIFF specification)."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        hdr = f.read(8)
        clen = int.from_bytes(hdr[4:8], "little")
        yield hdr[:4], pos, clen
        pos += 8 + clen + (clen & 1)


def wav_missing_bytes(path: Path) -> int:
    """For a RIFF/WAVE file, how many bytes of the ``data`` chunk its header promises but the file lacks (0 if
    complete or not a WAV). ffmpeg decodes such files silently, so this is the only way to catch the cut."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        for cid, pos, clen in _wav_chunks(f, size):
            if cid == b"data":
                if clen in (0, 0xFFFFFFFF):  # streaming writers leave these: length unknown, not a promise
                    return 0
                return max(0, pos + 8 + clen - size)
    return 0


def wav_non_finite(path: Path) -> int:
    """For an IEEE-float RIFF/WAVE file, how many samples are NaN or infinite (0 for anything else)."""
    size, fmt = path.stat().st_size, b""
    with open(path, "rb") as f:
        for cid, pos, clen in _wav_chunks(f, size):
            if cid == b"fmt ":
                fmt = f.read(min(clen, 40))
            elif cid == b"data" and len(fmt) >= 16:
                tag = int.from_bytes(fmt[24:26] if fmt[:2] == b"\xfe\xff" and len(fmt) >= 26 else fmt[:2], "little")
                bits = int.from_bytes(fmt[14:16], "little")
                if tag != 3 or bits not in (32, 64):  # 3: WAVE_FORMAT_IEEE_FLOAT
                    return 0
                count = min(clen, size - pos - 8) // (bits // 8)
                data = np.memmap(path, dtype=np.float32 if bits == 32 else np.float64, mode="r", offset=pos + 8,
                                 shape=(count,))  # fmt: skip
                return int(count - np.count_nonzero(np.isfinite(data)))
    return 0


def decode(
    path: Path,
    sr: int,
    ch: int,
    what: str,
    progress: Callable[[int], None] | None = None,
    *,
    fmt: str = "f32le",
    gain_db: float | None = None,
    filters: Sequence[str] = (),
    keep: Path | None = None,
) -> Iterator[np.ndarray]:
    """Yield ``(frames, ch)`` blocks of ``path`` (float32, or int16 with ``fmt="s16le"``: then ffmpeg applies
    ``gain_db`` and TPDF-dithers to 16-bit itself); corrupt data is an :class:`AudioError`. With ``keep``, ffmpeg
    also writes the filtered stream there (FLAC), complete once the last block is yielded."""
    errors: list[str] = []
    dtype = np.dtype(ffmpeg.PCM_FORMATS[fmt])
    frame_bytes = dtype.itemsize * ch
    chunk = int(sr * CHUNK_SECONDS) * frame_bytes
    carry = b""
    warned = False
    args = ffmpeg.decode_args(
        path,
        sample_rate=sr,
        channels=ch,
        fmt=fmt,
        filters=[*filters, *([f"volume={gain_db:.6f}dB:precision=double"] if gain_db is not None else [])],
        dither="triangular" if fmt == "s16le" else None,
        keep=keep,
    )
    try:
        for buf in ffmpeg.read_stream(args, chunk_bytes=chunk, where=path, errors=errors):
            if carry:
                buf = carry + buf
            n = len(buf) // frame_bytes * frame_bytes
            carry = buf[n:]
            if n:
                x = np.frombuffer(buf[:n], dtype=dtype).reshape(-1, ch)
                if fmt == "f32le" and not np.isfinite(x).all():
                    # A float recording can hold NaN/Inf (a broken plug-in): they would poison every sum downstream.
                    if not warned:
                        logging.getLogger(__name__).warning("%s holds NaN/Inf samples: read as 0 / full scale", what)
                        warned = True
                    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
                if progress:
                    progress(len(x))
                yield x
    except FFmpegError as e:
        hint = e.hint or "re-export the file"  # ffmpeg's own advice when it was stuck and killed
        raise AudioError(f"{what} could not be decoded: {e.message}", where=path, hint=hint) from None
    bad = [ln for ln in errors if ln.strip()]
    if bad:
        raise AudioError(
            f"{what} is corrupt or truncated: {bad[-1].strip()}", where=path, hint="re-export or re-copy the file"
        )


def measure_rate(info: ffmpeg.Probe, sr: int) -> int:
    """The rate pass 1 measures a recording at: its own, unless that is not a whole number of frames per 10 ms (22050
    Hz: then the output rate ``sr``, so the 10 ms grid stays exact)."""
    return info.sample_rate if info.sample_rate % 100 == 0 else sr


def measure_part(
    path: Path,
    info: ffmpeg.Probe,
    settings: AudioSettings,
    index: int,
    report: Callable[[int], None],
    *,
    filters: Sequence[str] = (),
    keep: Path | None = None,
    tap: Callable[[np.ndarray], None] | None = None,
) -> Part:
    """Pass 1 over one raw recording (``info``: its probe, from the up-front check). With ``filters``, over what
    they make of it (``info.channels`` then says how many channels they leave); with ``keep``, that is also
    written there as it is measured. ``tap`` sees every decoded block too."""
    what = f"recording {index + 1}"
    sr, ch = settings.sample_rate, settings.channels
    # Measure at the file's own rate: resampling an hour of audio only to measure it would cost as much as the
    # measurement. (Rates that are not a whole number of frames per 10 ms, like 22050, are resampled so the
    # 10 ms grid stays exact.) Channels: a downmix to the output's count changes loudness, so measure that; an
    # upmix of mono (-3 dB into each channel) keeps loudness but would hide 3 dB of the file's true peak.
    rate_in = measure_rate(info, sr)
    ch_in = min(info.channels, ch)
    meter = Meter(rate_in, ch_in)
    dc_sum, sq_sum = np.zeros(ch_in), np.zeros(ch_in)
    for x in decode(path, rate_in, ch_in, what, lambda n: report(n * sr // rate_in), filters=filters, keep=keep):
        meter.add(x)
        if tap is not None:
            tap(x)
        dc_sum += x.sum(axis=0, dtype=np.float64)
        sq_sum += np.einsum("ij,ij->j", x, x, dtype=np.float64)
    if meter.frames == 0:
        raise AudioError(f"{what} decodes to no audio", where=path, hint="re-export the recording")
    decoded = meter.frames / rate_in
    if decoded < MIN_SECONDS:
        raise AudioError(
            f"{what} is too short to master: {meter.frames} samples ({decoded * 1000:.0f} ms); BS.1770 measures "
            f"in {MIN_SECONDS * 1000:.0f} ms blocks",
            where=path,
            hint="check that this is the right file",
        )
    # The container's duration is the longest stream's: an MP4 whose video runs past its audio is not truncated.
    if info.duration and not info.has_video and info.duration > 1.0 and decoded < 0.95 * info.duration - 0.5:
        raise AudioError(
            f"{what} is truncated: the header says {info.duration:.1f} s but only {decoded:.1f} s decode",
            where=path,
            hint="re-export or re-copy the file",
        )
    dc = dc_sum / max(meter.frames, 1)
    if np.abs(dc).max() > DC_LIMIT:
        # What is left once the offset is gone (variance = mean square - mean^2): nothing above the silence
        # threshold means the file is a DC plateau, which the power-based trim below would take for sound.
        ac_db = lin_to_db(math.sqrt(max(0.0, float((sq_sum / meter.frames - dc**2).max()))))
        if ac_db < settings.silence_threshold_db:
            raise AudioError(
                f"{what} holds nothing but a DC offset ({lin_to_db(float(np.abs(dc).max())):.1f} dBFS; "
                f"under {settings.silence_threshold_db:g} dBFS once it is removed)",
                where=path,
                hint="check the recording: a DC offset alone is a faulty interface or cable, not sound",
            )
    bounds = sound_bounds(meter.power, settings.silence_threshold_db)
    if bounds is None:
        raise AudioError(
            f"{what} is silent (nothing above {settings.silence_threshold_db:g} dBFS)",
            where=path,
            hint="check the recording, or lower audio.silence_threshold_db",
        )
    pad = settings.keep_silence_ms // SUB_MS
    s0, s1 = max(0, bounds[0] - pad), min(len(meter.power), bounds[1] + pad)
    ke = meter.k_energy[s0:s1]
    lufs = integrated_from_energy(ke)
    if not math.isfinite(lufs):
        raise AudioError(f"{what} is silent (below the -70 LUFS gate)", where=path, hint="check the recording")
    sub = sr * SUB_MS // 1000  # 10 ms in output frames: the grid maps exactly between rates
    frames = round(meter.frames * sr / rate_in)
    # swresample's mono -> stereo matrix sends the centre to both fronts at M_SQRT1_2 (libswresample/rematrix.c).
    # The plan's limiter model must see the rendered peaks: counting the mono peaks predicted limiting (and its
    # loss of loudness) 3 dB early, which left the first render ~0.2 LU loud and cost a second one.
    upmix = math.sqrt(0.5) if ch_in < ch else 1.0
    return Part(
        path=path,
        frames=frames,
        keep_start=s0 * sub,
        keep_end=min(frames, s1 * sub),
        loudness=lufs,
        true_peak=meter.true_peak,
        sample_peak=float(meter.peaks.max()),
        lra=lra_from_energy(ke),
        k_energy=ke,
        peaks=meter.peaks[s0:s1].astype(np.float64) * upmix,
        dc_offset=float(np.abs(dc).max()),
        upmix=upmix,
    )


def remove_dc(path: Path, dest: Path, what: str, duration_s: float) -> Path:
    """Write ``path`` without its DC offset to ``dest`` (float WAV at the file's own rate and channels: float, so
    a recording over full scale is not clipped). A 10 Hz high-pass takes out a constant or drifting offset and
    leaves every audible frequency alone. ffmpeg is killed after :func:`.ffmpeg.full_pass_timeout` of the
    recording's ``duration_s`` (nothing waits forever)."""
    args = ["-v", "error", "-i", str(path), "-af", f"highpass=f={DC_HIGHPASS_HZ}:poles=2"]
    try:
        limit = ffmpeg.full_pass_timeout(duration_s)
        ffmpeg.run([*args, "-c:a", "pcm_f32le", "-y", str(dest)], where=path, timeout=limit)
    except FFmpegError as e:
        raise AudioError(
            f"{what}: removing its DC offset failed: {e.message}", where=path, hint=e.hint or "re-export the file"
        ) from None  # ffmpeg's own advice (it was stuck and killed) when it has one
    return dest


@dataclass(frozen=True)
class Asset:
    """An intro, disclaimer or outro, decoded whole (they are short), with its measured loudness."""

    name: str
    path: Path
    pcm: F32
    loudness: float
    k_energy: np.ndarray
    is_music: bool


def load_asset(name: str, path: Path, settings: AudioSettings) -> Asset:
    """Decode and measure a (checked) intro, disclaimer or outro."""
    what = f"{name} asset"
    sr, ch = settings.sample_rate, settings.channels
    blocks = list(decode(path, sr, ch, what))
    pcm = np.concatenate(blocks) if blocks else np.zeros((0, ch), np.float32)
    meter = Meter(sr, ch, true_peak=False)
    meter.add(pcm)
    lufs = integrated_from_energy(meter.k_energy)
    if len(pcm) == 0 or not math.isfinite(lufs):
        raise AudioError(f"{what} is silent", where=path, hint="check the file named in [assets]")
    return Asset(name, path, pcm, lufs, meter.k_energy, is_music=name != "disclaimer")
