"""Pure builders of ffmpeg argument lists (no binary, no I/O): decoding to raw PCM, encoding an MP3, the EBU R128
scan. Tested on the lists they return."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

#: Raw PCM formats we exchange with ffmpeg through pipes: ffmpeg format name -> numpy dtype string.
PCM_FORMATS = {"f32le": "<f4", "s16le": "<i2", "s32le": "<i4"}


def decode_args(
    src: Path | str,
    *,
    sample_rate: int,
    channels: int,
    fmt: str = "f32le",
    filters: Sequence[str] = (),
    start: float | None = None,
    duration: float | None = None,
    dither: str | None = None,
    keep: Path | str | None = None,
) -> list[str]:
    """Arguments that decode ``src`` to raw interleaved PCM on stdout at ``sample_rate``/``channels``.

    ``filters`` run before resampling (e.g. ``volume=...``); the soxr resampler keeps quality at ratios like
    96k -> 44.1k. ``fmt`` is one of :data:`PCM_FORMATS`; with ``fmt="s16le"``, ``dither`` names swresample's
    dither method (e.g. ``triangular``) for the conversion to 16-bit. With ``keep``, the same filtered stream is
    also written there as FLAC (32-bit container), so whoever reads stdout measures the very copy being written.
    """
    if fmt not in PCM_FORMATS:
        raise ValueError(f"unsupported PCM format {fmt}")
    if keep is not None and fmt != "f32le":
        raise ValueError("a kept copy is written from the float stream only")
    args: list[str] = ["-v", "error"]
    if start is not None:
        args += ["-ss", f"{start:.6f}"]
    if duration is not None:
        args += ["-t", f"{duration:.6f}"]
    args += ["-i", str(src)]
    # soxr at its default 20-bit precision: ~120 dB of stopband, more than 16-bit output can show.
    # Resample and remix in float, always: swresample normalises an integer-output downmix differently (3 dB
    # apart from the float path for stereo to mono), so the 16-bit conversion, with its dither, is a separate step.
    layout = {1: "mono", 2: "stereo"}.get(channels)
    chain = [*filters, f"aresample={sample_rate}:resampler=soxr" + (f":ochl={layout}" if layout else "")]
    if dither and fmt == "s16le":
        chain += ["aformat=sample_fmts=flt", f"aresample=osf=s16:dither_method={dither}"]
    if keep is None:
        args += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-af", ",".join(chain)]
    else:
        # One decode and one filter pass feed both outputs (asplit): the copy and the stream cannot differ.
        args += ["-filter_complex", f"[0:a:0]{','.join(chain)},asplit=2[keep][out]"]
        args += ["-map", "[keep]", "-c:a", "flac", "-sample_fmt", "s32", "-y", str(keep), "-map", "[out]"]
    args += [
        "-ac",
        str(channels),
        "-ar",
        str(sample_rate),
        "-f",
        fmt,
        "-acodec",
        f"pcm_{fmt}",
        "-",
    ]
    return args


def decode_excerpts_args(
    excerpts: Sequence[tuple[Path | str, int, int]], *, sample_rate: int, channels: int
) -> list[str]:
    """Arguments that decode several excerpts ``(src, first frame, frames)`` (frames at ``sample_rate``) in one
    process, each by seeking straight to it, to raw float32 PCM on stdout, one after the other, each exactly
    ``frames`` long (padded with silence or cut: resampling may end a few frames off)."""
    args: list[str] = ["-v", "error"]
    graph = []
    layout = {1: "mono", 2: "stereo"}.get(channels)
    for i, (src, first, frames) in enumerate(excerpts):
        args += ["-ss", f"{first / sample_rate:.6f}", "-t", f"{frames / sample_rate:.6f}", "-i", str(src)]
        graph.append(
            f"[{i}:a:0]aresample={sample_rate}:resampler=soxr" + (f":ochl={layout}" if layout else "")
            + f",aformat=sample_fmts=flt:channel_layouts={layout or 'stereo'},apad=whole_len={frames},"
            f"atrim=end_sample={frames}[e{i}]"
        )  # fmt: skip
    graph.append("".join(f"[e{i}]" for i in range(len(excerpts))) + f"concat=n={len(excerpts)}:v=0:a=1[out]")
    args += ["-filter_complex", ";".join(graph), "-map", "[out]", "-ac", str(channels), "-ar", str(sample_rate)]
    return [*args, "-f", "f32le", "-acodec", "pcm_f32le", "-"]


def encode_mp3_args(
    dest: Path | str,
    *,
    sample_rate: int,
    channels: int,
    bitrate_kbps: int,
    in_fmt: str = "s16le",
    lossless: Path | str | None = None,
) -> list[str]:
    """Arguments that read raw PCM from stdin and write a CBR MP3 with LAME (no tags: the tag stage writes them);
    with ``lossless``, the same PCM also goes to that FLAC, in the same process (a second output of one input)."""
    args = [
        "-v", "error",
        "-f", in_fmt, "-ar", str(sample_rate), "-ac", str(channels), "-i", "-",
        "-c:a", "libmp3lame", "-b:a", f"{bitrate_kbps}k", "-q:a", "2",
        "-map_metadata", "-1", "-id3v2_version", "0", "-write_xing", "1",
        "-f", "mp3", "-y", str(dest),
    ]  # fmt: skip
    if lossless is not None:
        # Level 0: on an hour of 44.1 kHz stereo, 4.9 s against level 5's 6.6 s, for a file 40 % larger (a build
        # file read once or twice, not published).
        args += ["-c:a", "flac", "-compression_level", "0", "-map_metadata", "-1", "-f", "flac", "-y", str(lossless)]
    return args


def ebur128_args(src: Path | str) -> list[str]:
    """Arguments that measure ``src`` with ffmpeg's EBU R128 scanner, true peak on (used by tests and ``check``)."""
    return ["-nostats", "-i", str(src), "-map", "0:a:0", "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-"]
