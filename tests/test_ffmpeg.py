"""The ffmpeg wrapper: command builders and output parsers are pure and tested on literal strings; what the
bundled binary does with an argument list is tested by running it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keylime_prod import ffmpeg
from keylime_prod.errors import FFmpegError

EBUR128_SUMMARY = """\
[Parsed_ebur128_0 @ 0x55d5c5d0a2c0] Summary:

  Integrated loudness:
    I:         -16.2 LUFS
    Threshold: -26.4 LUFS

  Loudness range:
    LRA:         4.7 LU
    Threshold: -36.3 LUFS
    LRA low:   -19.5 LUFS
    LRA high:  -14.8 LUFS

  True peak:
    Peak:       -1.3 dBFS
"""

PROBE = """\
Input #0, wav, from 'a.wav':
  Metadata:
    encoder         : Lavf59.27.100
  Duration: 00:01:02.50, bitrate: 4608 kb/s
  Stream #0:0: Audio: pcm_s24le ([1][0][0][0] / 0x0001), 96000 Hz, stereo, s32 (24 bit), 4608 kb/s
At least one output file must be specified
"""

PROBE_M4A = """\
  Duration: 00:00:15.00, start: 0.000000, bitrate: 53 kb/s
  Stream #0:0[0x1](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, mono, fltp, 51 kb/s (default)
"""

FFMETADATA = """\
;FFMETADATA1
title=I'm a loser\\, baby\\; \\=yes
artist=Lara Varpio
comment=line one\\
line two
[CHAPTER]
TIMEBASE=1/1000
START=0
END=15000
title=Intro
[CHAPTER]
TIMEBASE=1/1000
START=15000
END=30000
title=Why allow failure?
"""


def test_parse_ebur128_summary() -> None:
    r = ffmpeg.parse_ebur128("frame log lines...\n" + EBUR128_SUMMARY)
    assert r == ffmpeg.EbuR128(integrated_lufs=-16.2, lra_lu=4.7, true_peak_dbtp=-1.3)


def test_parse_ebur128_silence_is_minus_inf() -> None:
    text = EBUR128_SUMMARY.replace("-16.2 LUFS", "-inf LUFS").replace("-1.3 dBFS", "-inf dBFS")
    r = ffmpeg.parse_ebur128(text)
    assert r.integrated_lufs == float("-inf") and r.true_peak_dbtp == float("-inf")


def test_parse_ebur128_without_summary_fails() -> None:
    with pytest.raises(FFmpegError, match="no summary"):
        ffmpeg.parse_ebur128("nothing here")


def test_parse_probe() -> None:
    p = ffmpeg.parse_probe(PROBE)
    assert p == ffmpeg.Probe(duration=62.5, codec="pcm_s24le", sample_rate=96000, channels=2, sample_fmt="s32")
    m = ffmpeg.parse_probe(PROBE_M4A)
    assert m is not None and (m.codec, m.channels, m.sample_rate, m.duration) == ("aac", 1, 48000, 15.0)


def test_parse_probe_without_audio() -> None:
    assert ffmpeg.parse_probe("  Stream #0:0: Video: png, rgb24, 64x64\n") is None


def test_parse_ffmetadata_unescapes_and_reads_chapters() -> None:
    tags, chapters = ffmpeg.parse_ffmetadata(FFMETADATA)
    assert tags["title"] == "I'm a loser, baby; =yes"
    assert tags["comment"] == "line one\nline two"
    assert [c["title"] for c in chapters] == ["Intro", "Why allow failure?"]
    assert chapters[1]["START"] == "15000" and chapters[1]["TIMEBASE"] == "1/1000"


def test_last_error_line_skips_trailers() -> None:
    err = "[flac @ 0x1] invalid residual\nError while decoding stream\n\nConversion failed!\n"
    assert ffmpeg.last_error_line(err) == "Error while decoding stream"
    assert ffmpeg.last_error_line("") == "ffmpeg failed without a message"


def test_parse_version() -> None:
    assert (
        ffmpeg.parse_version("ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright")
        == "n9.0.2-17-g2a571b6068-20260930"
    )
    with pytest.raises(FFmpegError):
        ffmpeg.parse_version("not ffmpeg")


def test_decode_args_are_an_argv_list() -> None:
    args = ffmpeg.decode_args("in put.wav", sample_rate=44100, channels=2, start=1.5, duration=2.0)
    assert args[args.index("-i") + 1] == "in put.wav"  # no shell quoting needed: never a shell
    assert args[args.index("-ss") + 1] == "1.500000" and args[-1] == "-"
    assert "aresample=44100:resampler=soxr" in args[args.index("-af") + 1]
    with pytest.raises(ValueError):
        ffmpeg.decode_args("x", sample_rate=1, channels=1, fmt="u8")


def test_decode_args_keep_writes_the_same_stream_to_a_flac(tmp_path: Path, jfk: Path) -> None:
    """With ``keep``, one filter graph feeds the FLAC copy and stdout: the two hold the same samples."""
    dest = tmp_path / "copy.flac"
    args = ffmpeg.decode_args(jfk, sample_rate=16000, channels=1, filters=["highpass=f=80"], keep=dest)
    assert "asplit=2[keep][out]" in args[args.index("-filter_complex") + 1] and "-af" not in args
    piped = np.frombuffer(ffmpeg.run(args).stdout, "<f4")
    kept = np.frombuffer(ffmpeg.run(ffmpeg.decode_args(dest, sample_rate=16000, channels=1)).stdout, "<f4")
    assert len(piped) == len(kept) > 16000
    assert float(np.max(np.abs(piped - kept))) < 1e-6  # the FLAC holds 24 bits of the float stream
    with pytest.raises(ValueError):
        ffmpeg.decode_args("x", sample_rate=1, channels=1, fmt="s16le", keep=dest)


def test_encode_args_cbr_lame_without_tags() -> None:
    args = ffmpeg.encode_mp3_args("o.mp3", sample_rate=44100, channels=1, bitrate_kbps=96)
    assert args[args.index("-c:a") + 1] == "libmp3lame" and args[args.index("-b:a") + 1] == "96k"
    assert "-map_metadata" in args and args[-1] == "o.mp3"


def test_binary_env_override_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    ffmpeg.binary.cache_clear()
    monkeypatch.setenv("KEYLIME_FFMPEG", "/nonexistent/ffmpeg")
    try:
        with pytest.raises(FFmpegError, match="KEYLIME_FFMPEG"):
            ffmpeg.binary()
    finally:
        ffmpeg.binary.cache_clear()


def test_real_ffmpeg_runs_and_reports_errors(tmp_path) -> None:
    assert ffmpeg.version()
    with pytest.raises(FFmpegError) as ei:
        ffmpeg.run(["-i", str(tmp_path / "missing.wav"), "-f", "null", "-"], where=tmp_path / "missing.wav")
    assert "missing.wav" in str(ei.value) and "\n" not in str(ei.value)


def _consume_in_thread(it, on_chunk) -> tuple[list[bytes], list[BaseException]]:
    """Consume ``it`` on a thread so a hang fails this test (with a message) instead of blocking the run."""
    import threading

    got: list[bytes] = []
    errs: list[BaseException] = []

    def run() -> None:
        try:
            for buf in it:
                got.append(buf)
                on_chunk(len(got))
        except BaseException as e:
            errs.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    # Not a speed check: the work takes ~2 s; a minute means the reader is stuck for good (it used to wait forever).
    t.join(60)
    assert not t.is_alive(), "read_stream hung"
    return got, errs


def test_read_stream_ends_when_the_consumer_is_slow_at_the_end() -> None:
    """The end-of-stream marker must reach a consumer that is busy for longer than a second when ffmpeg ends.

    Under load the render loop (limiter, LAME back-pressure) can hold a block for seconds while the read-ahead queue is
    full; the marker used to be dropped after 1 s, and the render then waited forever on a decoder that had exited
    (the 'defunct ffmpeg' of a 14-minute CI hang).
    """
    import time

    # Exactly two chunks of 8000 bytes (1 s of 8 kHz mono s16), read ahead one at a time.
    args = ["-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "1", "-f", "s16le", "-"]
    it = ffmpeg.read_stream(args, chunk_bytes=8000, prefetch=1)
    got, errs = _consume_in_thread(it, lambda n: time.sleep(2.0) if n == 1 else None)
    assert errs == []
    assert [len(b) for b in got] == [8000, 8000]


def test_read_stream_ffmpeg_dying_mid_stream_is_an_error(tmp_path) -> None:
    """An ffmpeg that dies after some output ends the stream with an FFmpegError, never a hang (also while the
    consumer is busy when it dies)."""
    import time

    src = tmp_path / "tone.flac"
    ffmpeg.run(["-v", "error", "-f", "lavfi", "-i", "sine=r=8000:d=4", "-c:a", "flac", str(src)])
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 2000] = bytes(b ^ 0x5A for b in data[mid : mid + 2000])  # FLAC frames carry CRCs
    src.write_bytes(bytes(data))
    args = ["-v", "error", "-xerror", "-i", str(src), "-f", "s16le", "-"]  # -xerror: stop at the first bad frame
    it = ffmpeg.read_stream(args, chunk_bytes=2000, prefetch=1, where=src)
    got, errs = _consume_in_thread(it, lambda n: time.sleep(1.5) if n == 1 else None)
    assert got, "ffmpeg wrote audio before the damage"
    assert len(errs) == 1 and isinstance(errs[0], FFmpegError), errs
    assert str(src) in str(errs[0])


def test_following_ebur128_scan_while_the_file_is_written_matches_a_scan_after(tmp_path) -> None:
    """The scan that follows an MP3 while LAME writes it (the edit's cut master) reads the same file as a scan of
    the finished one: the same integrated loudness, range and true peak."""
    import subprocess

    dest = tmp_path / "speechlike.mp3"
    src = ["-v", "error", "-f", "lavfi", "-i", "sine=f=220:r=44100:d=40,volume='0.2+0.15*sin(2*PI*t/3)':eval=frame"]
    pcm = ffmpeg.run([*src, "-ac", "2", "-f", "f32le", "-"]).stdout
    scan = ffmpeg.FollowingEbuR128(dest)
    enc = ffmpeg.popen(
        ffmpeg.encode_mp3_args(dest, sample_rate=44100, channels=2, bitrate_kbps=128, in_fmt="f32le"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert enc.stdin is not None
    for k in range(0, len(pcm), 1 << 16):  # in pieces, so the scan starts on a file still growing
        enc.stdin.write(pcm[k : k + (1 << 16)])
    ffmpeg.finish(enc, where=dest)
    followed = scan.finish(60)
    after = ffmpeg.measure_ebur128(dest)
    assert followed.integrated_lufs == pytest.approx(after.integrated_lufs, abs=0.05)
    assert followed.lra_lu == pytest.approx(after.lra_lu, abs=0.1)
    assert after.true_peak_dbtp is not None and followed.true_peak_dbtp is not None
    assert followed.true_peak_dbtp == pytest.approx(after.true_peak_dbtp, abs=0.05)


def test_following_ebur128_scan_of_a_file_never_written_fails_in_one_line(tmp_path) -> None:
    scan = ffmpeg.FollowingEbuR128(tmp_path / "never.mp3")
    with pytest.raises(FFmpegError) as ei:
        scan.finish(30)
    assert "never.mp3" in str(ei.value) and "\n" not in str(ei.value)
