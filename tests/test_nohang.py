"""Nothing in the master stage may wait forever (issue 13's rule): children that flood stderr or never exit.

Each test drives the real code path with real ffmpeg; only a stand-in child is put in front of it. Before the fixes
these tests hung (pytest-timeout turns a regression into a failure instead of a hung CI job).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.configs import episode, plain
from support.media import ebur128

from keylime_prod import audio, ffmpeg, transcript
from keylime_prod.audio import inputs, measure, speech
from keylime_prod.catalogue import check
from keylime_prod.config import Assets
from keylime_prod.errors import AudioError, FFmpegError, TranscriptError
from keylime_prod.tags import chapter_check

FLOOD_BYTES = 1 << 20  # 16 times the 64 KiB pipe buffer

# Stands in for ffmpeg: when the command line holds the marker, write FLOOD_BYTES of warning lines to stderr before
# touching stdin (the pipe fills while the parent streams to it), then fail with a last line of its own, stall, or
# run the real ffmpeg with the same arguments on the same pipes.
_WRAPPER = """\
import os, sys
args = sys.argv[1:]
if os.environ["FLOOD_MARKER"] in args:
    line = b"[libmp3lame @ 0x5555] a warning the encoder repeats\\n"
    sys.stderr.buffer.write(line * ({n} // len(line) + 1))
    sys.stderr.flush()
    if os.environ.get("FLOOD_THEN_STALL"):
        import time
        time.sleep(3600)
    if os.environ.get("FLOOD_THEN_FAIL"):
        sys.stderr.write("Error: the real cause, after the flood\\n")
        sys.exit(1)
os.execv({real!r}, [{real!r}, *args])
"""


@pytest.fixture
def flooding_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``flood(marker, fail=False, stall=False)``: from now on, ffmpeg commands holding ``marker`` flood their stderr
    first (then fail, stall, or go on as ffmpeg)."""
    real = ffmpeg.binary()
    script = tmp_path / "ffmpeg-flood"
    script.write_text(f"#!{sys.executable}\n" + _WRAPPER.format(n=FLOOD_BYTES, real=real))
    script.chmod(0o755)

    def flood(marker: str, *, fail: bool = False, stall: bool = False) -> None:
        monkeypatch.setenv("KEYLIME_FFMPEG", str(script))
        monkeypatch.setenv("FLOOD_MARKER", marker)
        if fail:
            monkeypatch.setenv("FLOOD_THEN_FAIL", "1")
        if stall:
            monkeypatch.setenv("FLOOD_THEN_STALL", "1")
        ffmpeg.binary.cache_clear()

    yield flood
    ffmpeg.binary.cache_clear()  # monkeypatch restores the environment after this; the next call reads it again


@pytest.fixture
def stalled_ffmpeg(flooding_ffmpeg, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``stall(marker, **limits)``: ffmpeg commands holding ``marker`` never end; each ``limits`` item sets that
    limit of keylime_prod.ffmpeg.limits (small, so the test waits a second, not the real limit)."""

    def stall(marker: str, **limits: float) -> None:
        for name, value in limits.items():
            monkeypatch.setattr(ffmpeg.limits, name, value)
        flooding_ffmpeg(marker, stall=True)

    return stall


@pytest.mark.timeout(60)
def test_render_survives_an_mp3_encoder_that_floods_stderr(tmp_path: Path, make_speech, flooding_ffmpeg) -> None:
    """LAME's stderr was read only after the last PCM was written: 1 MiB of warnings filled the pipe, the encoder
    stopped reading stdin and the render waited on it for good."""
    src = make_speech("s.wav", -5.0)
    flooding_ffmpeg("libmp3lame")
    m = audio.master(episode(src), plain(), Assets(), tmp_path / "build")
    got = ebur128(m.mp3)  # the MP3 is whole and on target
    assert abs(got.integrated_lufs - (-16.0)) <= 0.5, got


@pytest.mark.timeout(60)
def test_denoise_encoder_that_floods_stderr_then_fails_names_its_last_line(
    tmp_path: Path, make_speech, flooding_ffmpeg
) -> None:
    """The denoise FLAC encoder fed on stdin: a flood and a failure must end in an error with ffmpeg's last line
    (not a hang, nor a bare BrokenPipeError)."""
    src = make_speech("s.wav", -5.0)
    flooding_ffmpeg("flac", fail=True)
    dest = tmp_path / "clean.flac"
    with pytest.raises(FFmpegError) as err:
        speech.denoise(src, "afftdn", None, 12.0, 1, -60.0, dest, "recording 1")
    assert "the real cause, after the flood" in str(err.value)
    assert str(dest) in str(err.value)


@pytest.mark.timeout(60)
def test_reading_stdout_while_ffmpeg_floods_stderr_does_not_hang(tmp_path: Path, jfk: Path, flooding_ffmpeg) -> None:
    """The popen + read stdout + finish pattern (the transcript stage's decoder): stderr is drained from the start."""
    flooding_ffmpeg("f32le")
    proc = ffmpeg.popen(ffmpeg.decode_args(jfk, sample_rate=16000, channels=1))
    assert proc.stdout is not None
    data = proc.stdout.read()
    err = ffmpeg.finish(proc, where=jfk)
    assert len(data) // 4 == pytest.approx(16000 * 11.0, rel=0.01)  # jfk.wav is 11 s
    assert err.rstrip().endswith("a warning the encoder repeats")  # the last lines are kept, not the whole megabyte
    assert len(err) < FLOOD_BYTES


@pytest.mark.timeout(60)
def test_child_verifier_that_never_exits_is_killed_with_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ChildFollower.finish() waited on the verifying child without a limit: a wedged child held the master forever."""
    monkeypatch.setattr(measure, "_CHILD", "import time; time.sleep(3600)")
    mp3 = tmp_path / "ep.mp3"
    follower = measure.ChildFollower(mp3, 44100, 2, tmp_path)
    with pytest.raises(AudioError) as err:
        follower.finish(timeout=1.0)
    msg = str(err.value)
    assert "\n" not in msg and str(mp3) in msg and "did not finish within 1 s" in msg
    assert follower.proc.poll() is not None  # killed, not left behind


@pytest.mark.timeout(60)
def test_child_verifier_abort_does_not_wait_on_a_child_that_ignores_its_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(measure, "_CHILD", "import time; time.sleep(3600)")
    monkeypatch.setattr(measure, "ABORT_WAIT_S", 0.5)
    follower = measure.ChildFollower(tmp_path / "ep.mp3", 44100, 2, tmp_path)
    follower.abort()
    assert follower.proc.poll() is not None


def test_finish_limit_grows_with_the_audio() -> None:
    assert measure.finish_limit(0) == measure.FINISH_MIN_S
    assert measure.finish_limit(3600) > measure.finish_limit(60) > measure.FINISH_MIN_S


def test_ffmpeg_finish_kills_an_ffmpeg_that_does_not_exit(tmp_path: Path) -> None:
    """ffmpeg.finish() is bounded too: an ffmpeg still running at the limit is killed and named."""
    # Reads a never-ending source: it would run until killed.
    proc = ffmpeg.popen(
        ["-v", "error", "-re", "-f", "lavfi", "-i", "anullsrc", "-f", "null", "-"], stdout=subprocess.DEVNULL
    )
    with pytest.raises(FFmpegError) as err:
        ffmpeg.finish(proc, where="x.mp3", timeout=0.5)
    assert "did not exit" in str(err.value)
    assert proc.poll() is not None


@pytest.mark.timeout(60)
def test_a_probe_that_never_answers_is_killed_and_the_recording_named(
    tmp_path: Path, make_speech, stalled_ffmpeg
) -> None:
    """The master stage probes every recording first; an ffmpeg stuck on it (a stalled share) held the stage."""
    src = make_speech("stuck.wav", -5.0)
    stalled_ffmpeg(str(src), PROBE_TIMEOUT_S=1.0)  # the probe is the first command that names it
    with pytest.raises(AudioError) as err:
        audio.master(episode(src), plain(), Assets(), tmp_path / "build")
    msg = str(err.value)
    assert "could not be probed: ffmpeg gave no answer within 1 s" in msg and str(src) in msg and "\n" not in msg
    assert "use WAV" not in msg  # the format is not what is wrong


@pytest.mark.timeout(60)
def test_a_stuck_codec_calibration_encode_is_killed_and_named(tmp_path: Path, make_speech, stalled_ffmpeg) -> None:
    """The short excerpts the stage runs through ffmpeg.run (codec calibration, room tone, alignment window) are
    bounded too; the calibration encode is the first command holding libmp3lame."""
    src = make_speech("s.wav", -5.0)
    stalled_ffmpeg("libmp3lame", EXCERPT_TIMEOUT_S=1.0)
    with pytest.raises(FFmpegError) as err:
        audio.master(episode(src), plain(), Assets(), tmp_path / "build")
    msg = str(err.value)
    assert "gave no answer within 1 s" in msg and "calibration.mp3" in msg and "\n" not in msg


@pytest.mark.timeout(60)
def test_a_stuck_dc_removal_pass_is_killed_and_the_recording_named(tmp_path: Path, make_speech, stalled_ffmpeg) -> None:
    """remove_dc runs a whole-file ffmpeg pass: it is bounded by the recording's duration plus FULL_PASS_MIN_S."""
    src = make_speech("s.wav", -5.0)
    stalled_ffmpeg(f"highpass=f={inputs.DC_HIGHPASS_HZ}:poles=2", FULL_PASS_MIN_S=0.5)
    with pytest.raises(AudioError) as err:
        inputs.remove_dc(src, tmp_path / "dc-1.wav", "recording 1", 0.5)
    msg = str(err.value)
    assert "recording 1: removing its DC offset failed: ffmpeg gave no answer within 1 s" in msg
    assert str(src) in msg and "\n" not in msg and "re-export" not in msg


def test_full_pass_limit_grows_with_the_audio() -> None:
    assert ffmpeg.full_pass_timeout(None) == ffmpeg.full_pass_timeout(0) == ffmpeg.limits.FULL_PASS_MIN_S
    assert ffmpeg.full_pass_timeout(3600) == ffmpeg.limits.FULL_PASS_MIN_S + 3600  # 100x real time leaves a 100x margin


def _short_mp3(tmp_path: Path) -> Path:
    mp3 = tmp_path / "short.mp3"
    ffmpeg.run(["-v", "error", "-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "libmp3lame", "-y", str(mp3)])
    return mp3


# (the argument that marks the stuck command, the limit made small, the call): every ffmpeg.run outside the master
# stage (the tag stage's decode check, the published-feed check's ebur128, ffmpeg's own ID3 reader, `produce
# check`'s encode and ffmpeg -version).
_OUTSIDE_MASTER = {
    "decoded_duration": ("pipe:1", {"FULL_PASS_MIN_S": 0.5}, lambda mp3: chapter_check.decoded_duration(mp3)),
    "measure_ebur128": ("ebur128=peak=true:framelog=quiet", {"FULL_PASS_MIN_S": 0.5}, ffmpeg.measure_ebur128),
    "read_ffmetadata": ("ffmetadata", {"PROBE_TIMEOUT_S": 0.5}, ffmpeg.read_ffmetadata),
    "version": ("-version", {"PROBE_TIMEOUT_S": 0.5}, lambda mp3: ffmpeg.version.__wrapped__()),
    "check": ("sine=d=0.1", {"EXCERPT_TIMEOUT_S": 0.5}, lambda mp3: _first_ffmpeg_error(check.check_all(mp3.parent))),
}


def _first_ffmpeg_error(report: check.CheckReport) -> None:
    """`produce check` collects its failures: raise the ffmpeg one."""
    raise next(e for e in report.errors if isinstance(e, FFmpegError))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(_OUTSIDE_MASTER))
def test_every_ffmpeg_run_outside_the_master_stage_is_bounded(tmp_path: Path, stalled_ffmpeg, name: str) -> None:
    """These ran ffmpeg with no limit: a stuck ffmpeg held the tag stage, the release checks or `produce check`."""
    marker, limits, call = _OUTSIDE_MASTER[name]
    mp3 = _short_mp3(tmp_path)
    stalled_ffmpeg(marker, **limits)
    with pytest.raises(FFmpegError) as err:
        call(mp3)
    assert "gave no answer within" in str(err.value)


@pytest.mark.timeout(60)
def test_a_decoder_alive_but_silent_is_killed_and_the_recording_named(
    tmp_path: Path, make_speech, stalled_ffmpeg
) -> None:
    """read_stream's consumer waited without end on an ffmpeg that stays alive but writes nothing (pass 1 here)."""
    src = make_speech("s.wav", -5.0)
    stalled_ffmpeg("f32le", STALL_TIMEOUT_S=0.5)  # the probe passes; the first decode stalls
    with pytest.raises(AudioError) as err:
        audio.master(episode(src), plain(), Assets(), tmp_path / "build")
    msg = str(err.value)
    assert "recording 1 could not be decoded: ffmpeg made no progress for 0.5 s; killed it" in msg
    assert str(src) in msg and "\n" not in msg and "re-export" not in msg


@pytest.mark.timeout(60)
def test_an_encoder_that_stops_reading_its_input_is_killed(tmp_path: Path, make_speech, stalled_ffmpeg) -> None:
    """A write to an encoder that stopped reading (LAME in the render, FLAC here) blocked for good once the pipe
    was full; the watchdog kills it and the broken pipe ends in the stall's own message."""
    src = make_speech("s.wav", -5.0)
    stalled_ffmpeg("flac", STALL_TIMEOUT_S=0.5)
    dest = tmp_path / "clean.flac"
    with pytest.raises(FFmpegError) as err:
        speech.denoise(src, "afftdn", None, 12.0, 1, -60.0, dest, "recording 1")
    msg = str(err.value)
    assert "ffmpeg made no progress for 0.5 s; killed it" in msg and str(dest) in msg and "\n" not in msg


@pytest.mark.timeout(60)
def test_a_transcript_decoder_alive_but_silent_is_killed(jfk: Path, tmp_path: Path, stalled_ffmpeg) -> None:
    """The transcript stage reads each block from ffmpeg: a decoder that stays alive but writes nothing is killed."""
    stalled_ffmpeg("f32le", STALL_TIMEOUT_S=0.5)
    with pytest.raises(TranscriptError) as err:
        transcript._decode(jfk, 0.0, 5.0)
    msg = str(err.value)
    assert "ffmpeg made no progress for 0.5 s; killed it" in msg and str(jfk) in msg and "\n" not in msg
