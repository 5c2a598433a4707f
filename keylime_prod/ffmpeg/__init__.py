"""The one ffmpeg wrapper.

ffmpeg comes from the ``imageio-ffmpeg`` wheel (no system package; note that wheel ships **no ffprobe**, so media
is probed by parsing ``ffmpeg -i`` output). Commands are argv lists, never a shell. Command builders and output
parsers are pure functions tested on literal strings (the ffmpeg-normalize ``_parse_loudnorm_output`` pattern);
:func:`run` logs the full command and, on failure, shows the user the last meaningful stderr line (yt-dlp's
``real_run_ffmpeg``).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import FFmpegError

log = logging.getLogger(__name__)

#: Raw PCM formats we exchange with ffmpeg through pipes: ffmpeg format name -> numpy dtype string.
PCM_FORMATS = {"f32le": "<f4", "s16le": "<i2", "s32le": "<i4"}


@functools.lru_cache(maxsize=1)
def binary() -> str:
    """Path of the ffmpeg executable: ``$KEYLIME_FFMPEG``, else the imageio-ffmpeg wheel's, else ``ffmpeg`` on PATH.

    Checked once, with an actionable message (beets' replaygain backend does the same at start-up).
    """
    env = os.environ.get("KEYLIME_FFMPEG")
    if env:
        if not Path(env).is_file():
            raise FFmpegError("KEYLIME_FFMPEG points to no file", where=env, hint="unset it or fix the path")
        return env
    try:
        import imageio_ffmpeg

        exe: str | None = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        exe = shutil.which("ffmpeg")
    if not exe:
        raise FFmpegError("ffmpeg not found", hint="pip install imageio-ffmpeg (it ships an ffmpeg binary)")
    return exe


@functools.lru_cache(maxsize=1)
def version() -> str:
    """ffmpeg's version string, e.g. ``n9.0.2-17-g2a571b6068-20260930``."""
    out = run(["-version"], quiet=True, timeout=PROBE_TIMEOUT_S).stdout.decode("utf-8", "replace")
    return parse_version(out)


def parse_version(text: str) -> str:
    """Parse the first line of ``ffmpeg -version``."""
    m = re.search(r"ffmpeg version (\S+)", text)
    if not m:
        raise FFmpegError("cannot read ffmpeg's version", hint="is KEYLIME_FFMPEG an ffmpeg binary?")
    return m.group(1)


def last_error_line(stderr: str) -> str:
    """The last stderr line that says something (skips blank lines, the 'Conversion failed!' trailer and 'Last
    message repeated'); a 'No space left on device' line anywhere wins."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    # A full disk is the cause whatever follows it; 'Last message repeated N times' only repeats the line before.
    full = next((ln for ln in reversed(lines) if "No space left on device" in ln), None)
    if full is not None:
        return full
    skip = ("Conversion failed!", "Exiting normally", "[out#", "Last message repeated")
    for ln in reversed(lines):
        if not ln.startswith(skip):
            return ln
    return lines[-1] if lines else "ffmpeg failed without a message"


def command(args: Sequence[str]) -> list[str]:
    """Full argv: the binary, quiet banner, no stdin interaction, then ``args``."""
    return [binary(), "-hide_banner", "-nostdin", *args]


def run(
    args: Sequence[str],
    *,
    quiet: bool = False,
    input_bytes: bytes | None = None,
    where: str | Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg with ``args``; raise :class:`FFmpegError` naming ``where`` and ffmpeg's last error line. With
    ``timeout``, an ffmpeg still running after that many seconds is killed and named in the error."""
    argv = command(args)
    log.debug("ffmpeg: %s", subprocess.list2cmdline(argv))
    try:
        proc = subprocess.run(argv, input=input_bytes, capture_output=True, check=False, timeout=timeout)
    except OSError as e:
        raise FFmpegError(f"cannot run ffmpeg: {e.strerror}", where=argv[0]) from e
    except subprocess.TimeoutExpired:  # subprocess.run has killed it
        raise FFmpegError(
            f"ffmpeg gave no answer within {timeout:g} s; killed it",
            where=where,
            hint="check that its disk or network share answers, and run again",
        ) from None
    if proc.returncode != 0 and not quiet:
        raise FFmpegError(last_error_line(proc.stderr.decode("utf-8", "replace")), where=where)
    return proc


#: stderr lines a streaming child keeps for its error message (the last ones: ffmpeg ends with the cause).
STDERR_KEEP_LINES = 200

#: How long :func:`finish` waits for ffmpeg to exit once its input has ended: it only flushes then, so a minute is
#: generous; past it the process is wedged (issue 13: nothing may wait forever).
FINISH_TIMEOUT_S = 120.0


class StderrTail:
    """Drain a child's stderr on a daemon thread from the moment it starts, keeping the last ``keep`` lines.

    A pipe holds 64 KiB: a child that writes more to stderr than that while we stream its stdin or stdout stops on
    the full pipe, and we wait on it for good (reading stderr only at the end deadlocks). Every streaming child
    (ffmpeg here, the verifying child in audio/verify.py) has its stderr read by one of these.
    """

    def __init__(self, pipe: IO[bytes] | None, keep: int = STDERR_KEEP_LINES) -> None:
        self.lines: deque[str] = deque(maxlen=keep)
        self._pipe = pipe
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        if self._pipe is None:
            return
        try:
            for raw in self._pipe:
                self.lines.append(raw.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):
            pass  # the pipe was closed under us (the child was killed)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the child closed its stderr (it exited); ``False`` if it is still open after ``timeout``."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def text(self) -> str:
        return "\n".join(self.lines)


#: A streaming ffmpeg that neither takes nor gives a byte for this long while we wait on it is alive but stuck (a
#: wedged filter, a stalled share, an encoder that stopped reading): it is killed so the caller's error path reports
#: it (issue 13). A wait is one read or write of about a second of audio, which a healthy ffmpeg serves in well under
#: a second even on a loaded 2-core machine: 300 s is a margin of hundreds.
STALL_TIMEOUT_S = 300.0


class Stream(subprocess.Popen[bytes]):
    """A streaming ffmpeg whose stderr is drained from the start (:class:`StderrTail`, in ``tail``), and killed if
    a read or write marked with :meth:`waiting` lasts :data:`STALL_TIMEOUT_S` (then ``stalled`` is true)."""

    def __init__(self, argv: list[str], *, stdin: int | None, stdout: int | None) -> None:
        super().__init__(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        self.tail = StderrTail(self.stderr)
        self.stalled = False
        self._waiting_since: float | None = None
        self._watchdog: threading.Thread | None = None

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Mark one blocking read from or write to this ffmpeg (one thread at a time). Only the time spent blocked
        on ffmpeg counts, never the time we spend computing between reads or writes."""
        self._waiting_since = time.monotonic()
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, daemon=True)
            self._watchdog.start()
        try:
            yield
        finally:
            self._waiting_since = None

    def _watch(self) -> None:
        while self.poll() is None:
            time.sleep(min(1.0, STALL_TIMEOUT_S / 10))
            since = self._waiting_since
            if since is not None and time.monotonic() - since > STALL_TIMEOUT_S:
                self.stalled = True
                self.kill()  # the blocked read sees the end of the output, a blocked write a broken pipe
                return

    def failure(self, where: str | Path | None) -> FFmpegError:
        """The error for this ffmpeg's non-zero exit: its last stderr line, or the stall that made us kill it."""
        if self.stalled:
            return FFmpegError(
                f"ffmpeg made no progress for {STALL_TIMEOUT_S:g} s; killed it",
                where=where,
                hint="check that its disk or network share answers, and run again",
            )
        return FFmpegError(last_error_line(self.tail.text()), where=where)


def popen(
    args: Sequence[str], *, stdin: int | None = subprocess.DEVNULL, stdout: int | None = subprocess.PIPE
) -> Stream:
    """Start ffmpeg for streaming (pipes); the caller reads/writes and calls :func:`finish`."""
    argv = command(args)
    log.debug("ffmpeg (stream): %s", subprocess.list2cmdline(argv))
    try:
        return Stream(argv, stdin=stdin, stdout=stdout)
    except OSError as e:
        raise FFmpegError(f"cannot run ffmpeg: {e.strerror}", where=argv[0]) from e


def finish(proc: Stream, *, where: str | Path | None = None, timeout: float = FINISH_TIMEOUT_S) -> str:
    """Wait (at most ``timeout`` seconds) for a streaming ffmpeg; return the last lines of its stderr, or raise
    :class:`FFmpegError` if it failed or had to be killed."""
    if proc.stdin and not proc.stdin.closed:
        try:
            with proc.waiting():  # closing flushes what is buffered: an encoder that stopped reading blocks it
                proc.stdin.close()
        except BrokenPipeError:
            pass
    try:
        rc = reap(proc, proc.tail, timeout)
    except subprocess.TimeoutExpired:
        raise FFmpegError(
            f"ffmpeg did not exit within {timeout:g} s after its input ended; killed it",
            where=where,
            hint="run again; if it recurs, run with --verbose and report the ffmpeg command it logs",
        ) from None
    if rc != 0:
        raise proc.failure(where)
    return proc.tail.text()


def reap(proc: subprocess.Popen[bytes], tail: StderrTail, timeout: float | None) -> int:
    """Wait at most ``timeout`` seconds for a streaming child to exit, then let ``tail`` take the rest of its stderr
    and close its pipes; return its exit code. A child still running then is killed and
    :class:`subprocess.TimeoutExpired` raised (the caller names it: issue 13, nothing may wait forever)."""
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    tail.join(5)  # the pipe closes with the process; a grandchild holding it must not hold us
    for pipe in (proc.stderr, proc.stdout):
        if pipe:
            pipe.close()
    return rc


def read_stream(
    args: Sequence[str],
    *,
    chunk_bytes: int,
    where: str | Path | None = None,
    errors: list[str] | None = None,
    prefetch: int = 8,
) -> Iterator[bytes]:
    """Run ffmpeg and yield its stdout in chunks of ``chunk_bytes`` (the last may be shorter).

    A thread reads ahead up to ``prefetch`` chunks: with only the 64 KiB pipe buffer between them, ffmpeg would stall
    whenever the consumer computes, and the two would take turns instead of running on both cores (measured: pass 1
    of the mastering stage spent a quarter of its time waiting on reads). stderr is drained from the start
    (:class:`StderrTail`) so a decoder that reports many errors cannot fill its pipe and deadlock us; its last lines
    are appended to ``errors`` if given. Raises :class:`FFmpegError` if ffmpeg exits non-zero.
    """
    proc = popen(args)
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()

    def put(item: bytes | None) -> None:
        """Queue ``item``, waiting as long as the consumer needs, unless it is gone (``stop``)."""
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def pump() -> None:
        assert proc.stdout is not None
        try:
            while not stop.is_set():
                with proc.waiting():
                    buf = proc.stdout.read(chunk_bytes)
                if not buf:
                    break
                put(buf)
        except (OSError, ValueError):
            pass  # the consumer stopped and closed the pipe
        finally:
            # The end marker must arrive however long the consumer holds a block with the queue full (under load:
            # seconds). It was once dropped after 1 s, and the consumer then waited forever on an ffmpeg that had
            # exited (a CI run hung 14 minutes).
            put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    finished = False
    try:
        while (buf := _next_chunk(chunks, reader)) is not None:
            yield buf
        finished = True
    finally:
        if not finished:
            # The consumer stopped early (error or break): do not leave ffmpeg running.
            stop.set()
            proc.kill()
        rc = proc.wait()
        reader.join(timeout=5)
        proc.tail.join(timeout=5)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    if errors is not None:
        errors.extend(proc.tail.lines)
    if rc != 0:
        raise proc.failure(where)


def _next_chunk(chunks: queue.Queue[bytes | None], pump: threading.Thread) -> bytes | None:
    """The next read-ahead chunk, ``None`` at the end; a reader thread that ended without its end marker (it died)
    also ends the stream, so the consumer can never wait forever (ffmpeg's exit code then tells what happened)."""
    while True:
        try:
            return chunks.get(timeout=0.5)
        except queue.Empty:
            if not pump.is_alive() and chunks.empty():
                return None


# ------------------------------------------------------------------------------------------------------ probing


@dataclass(frozen=True)
class Probe:
    """What ``ffmpeg -i`` says about a media file's first audio stream."""

    duration: float | None
    codec: str
    sample_rate: int
    channels: int
    sample_fmt: str
    has_video: bool = False  # then ``duration`` may be the video's (the container reports the longest stream)


_CHANNEL_NAMES = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def parse_duration(stderr: str) -> float | None:
    """The ``Duration:`` ``ffmpeg -i FILE`` prints, in seconds; ``None`` when it states none (``N/A``)."""
    m = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", stderr)
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None


def parse_probe(stderr: str) -> Probe | None:
    """Parse the stream summary ``ffmpeg -i FILE`` prints; ``None`` when it lists no audio stream."""
    dur = parse_duration(stderr)
    m = re.search(r"Stream #\d+:\d+[^:]*: Audio: ([^,\s]+)[^,]*, (\d+) Hz, ([^,]+), ([^,\s]+)", stderr)
    if not m:
        return None
    layout = m.group(3).strip()
    ch = _CHANNEL_NAMES.get(layout.split("(")[0].strip())
    if ch is None:
        cm = re.match(r"(\d+) channels", layout)
        ch = int(cm.group(1)) if cm else 2
    video = re.search(r"Stream #\d+:\d+[^:]*: Video: (?!mjpeg|png)", stderr) is not None  # cover art is no video
    return Probe(dur, m.group(1), int(m.group(2)), ch, m.group(4), has_video=video)


#: A decode or encode of an excerpt (seconds to minutes of audio: the codec calibration, room tone, the alignment
#: window) takes seconds at most; past this ffmpeg is stuck and the stage must not wait on it forever (issue 13).
EXCERPT_TIMEOUT_S = 120.0

#: ``ffmpeg -i FILE`` reads headers only: well under a second for any sane file. Past this it is stuck (a file on a
#: stalled share, a malformed stream it keeps scanning), and the stage must not wait on it forever (issue 13).
PROBE_TIMEOUT_S = 60.0


#: A pass over a whole file (a filter or a full decode, no encode) runs at 100x real time and more even on a loaded
#: 2-core machine, so its limit is this much plus the file's own duration: a 100x margin on a long file, minutes on
#: a short one. Past it ffmpeg is stuck (a stalled share, a wedged filter) and must not hold us forever (issue 13).
FULL_PASS_MIN_S = 120.0


def full_pass_timeout(duration_s: float | None) -> float:
    """The limit for one ffmpeg pass over ``duration_s`` seconds of audio (see :data:`FULL_PASS_MIN_S`)."""
    return FULL_PASS_MIN_S + max(0.0, duration_s or 0.0)


#: A file that states no duration is given the longest it could play at 8 kbps (the lowest MP3 bitrate; ours are
#: 64 kbps and up): its size over this many bytes per second.
MIN_BYTES_PER_S = 1000


def full_pass_timeout_of(path: Path | str) -> float:
    """:func:`full_pass_timeout` for a file whose duration the caller does not know: ``ffmpeg -i`` reads it (bounded
    by :data:`PROBE_TIMEOUT_S`), else its size gives an upper bound (:data:`MIN_BYTES_PER_S`)."""
    duration = parse_duration(_probe_text(path))
    if duration is None:
        try:
            duration = Path(path).stat().st_size / MIN_BYTES_PER_S
        except OSError:
            pass  # unreadable: the pass itself fails at once and says why
    return full_pass_timeout(duration)


def _probe_text(path: Path | str) -> str:
    """What ``ffmpeg -i FILE`` prints about the file (its stderr), bounded by :data:`PROBE_TIMEOUT_S`."""
    return run(["-i", str(path)], quiet=True, where=path, timeout=PROBE_TIMEOUT_S).stderr.decode("utf-8", "replace")


def probe(path: Path) -> Probe:
    """Probe ``path`` (ffmpeg only: the wheel has no ffprobe). Raises :class:`FFmpegError` if it is not audio or
    ffmpeg takes over :data:`PROBE_TIMEOUT_S`."""
    err = _probe_text(path)
    info = parse_probe(err)
    if info is None:
        reason = last_error_line(err)
        if reason.startswith("At least one output file"):
            reason = "no audio stream"
        raise FFmpegError(f"not readable audio: {reason}", where=path)
    return info


# ---------------------------------------------------------------------------------------------------- builders


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
) -> list[str]:
    """Arguments that decode ``src`` to raw interleaved PCM on stdout at ``sample_rate``/``channels``.

    ``filters`` run before resampling (e.g. ``volume=...``); the soxr resampler keeps quality at ratios like
    96k -> 44.1k. ``fmt`` is one of :data:`PCM_FORMATS`; with ``fmt="s16le"``, ``dither`` names swresample's
    dither method (e.g. ``triangular``) for the conversion to 16-bit.
    """
    if fmt not in PCM_FORMATS:
        raise ValueError(f"unsupported PCM format {fmt}")
    args: list[str] = ["-v", "error"]
    if start is not None:
        args += ["-ss", f"{start:.6f}"]
    if duration is not None:
        args += ["-t", f"{duration:.6f}"]
    args += ["-i", str(src), "-map", "0:a:0", "-vn", "-sn", "-dn"]
    # soxr at its default 20-bit precision: ~120 dB of stopband, more than 16-bit output can show.
    # Resample and remix in float, always: swresample normalises an integer-output downmix differently (3 dB
    # apart from the float path for stereo to mono), so the 16-bit conversion, with its dither, is a separate step.
    layout = {1: "mono", 2: "stereo"}.get(channels)
    chain = [*filters, f"aresample={sample_rate}:resampler=soxr" + (f":ochl={layout}" if layout else "")]
    if dither and fmt == "s16le":
        chain += ["aformat=sample_fmts=flt", f"aresample=osf=s16:dither_method={dither}"]
    args += [
        "-af",
        ",".join(chain),
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


def encode_mp3_args(
    dest: Path | str, *, sample_rate: int, channels: int, bitrate_kbps: int, in_fmt: str = "s16le"
) -> list[str]:
    """Arguments that read raw PCM from stdin and write a CBR MP3 with LAME (no tags: the tag stage writes them)."""
    return [
        "-v", "error",
        "-f", in_fmt, "-ar", str(sample_rate), "-ac", str(channels), "-i", "-",
        "-c:a", "libmp3lame", "-b:a", f"{bitrate_kbps}k", "-q:a", "2",
        "-map_metadata", "-1", "-id3v2_version", "0", "-write_xing", "1",
        "-f", "mp3", "-y", str(dest),
    ]  # fmt: skip


def ebur128_args(src: Path | str) -> list[str]:
    """Arguments that measure ``src`` with ffmpeg's EBU R128 scanner, true peak on (used by tests and ``check``)."""
    return ["-nostats", "-i", str(src), "-map", "0:a:0", "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-"]


# ------------------------------------------------------------------------------------------------------ parsers


@dataclass(frozen=True)
class EbuR128:
    """The summary of ffmpeg's ``ebur128`` filter."""

    integrated_lufs: float
    lra_lu: float
    true_peak_dbtp: float | None


def parse_ebur128(stderr: str) -> EbuR128:
    """Parse the ``Summary:`` block ffmpeg's ``ebur128`` filter prints at the end."""
    i = stderr.rfind("Summary:")
    if i < 0:
        raise FFmpegError("ebur128 printed no summary")
    s = stderr[i:]

    def num(pattern: str) -> float | None:
        m = re.search(pattern, s)
        if not m:
            return None
        return float("-inf") if m.group(1) == "-inf" else float(m.group(1))

    integrated = num(r"Integrated loudness:\s+I:\s+(-?inf|-?\d+(?:\.\d+)?) LUFS")
    lra = num(r"LRA:\s+(-?\d+(?:\.\d+)?) LU")
    peak = num(r"True peak:\s+Peak:\s+(-?inf|-?\d+(?:\.\d+)?) dBFS")
    if integrated is None or lra is None:
        raise FFmpegError("cannot parse the ebur128 summary")
    return EbuR128(integrated_lufs=integrated, lra_lu=lra, true_peak_dbtp=peak)


def measure_ebur128(src: Path | str) -> EbuR128:
    """Measure a file with ffmpeg's own EBU R128 scanner (an independent check of our meter). A whole-file pass:
    bounded by :func:`full_pass_timeout_of` the file."""
    proc = run(ebur128_args(src), where=src, timeout=full_pass_timeout_of(src))
    return parse_ebur128(proc.stderr.decode("utf-8", "replace"))


def parse_ffmetadata(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Parse ``ffmpeg -i x.mp3 -f ffmetadata -`` output into (global tags, chapters).

    Each chapter dict holds ``TIMEBASE``, ``START``, ``END`` and its tags (``title`` ...). Escapes (``\\=``,
    ``\\;``, ``\\#``, ``\\\\``, escaped newlines) are undone.
    """
    tags: dict[str, str] = {}
    chapters: list[dict[str, str]] = []
    current = tags
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line or line.startswith((";", "#")):
            continue
        if line.strip() == "[CHAPTER]":
            current = {}
            chapters.append(current)
            continue
        if line.startswith("[") and line.rstrip().endswith("]"):
            current = {}
            continue
        # A value ending in an odd number of backslashes continues on the next line.
        while re.search(r"(?<!\\)(\\\\)*\\$", line) and i < len(lines):
            line = line[:-1] + "\n" + lines[i]
            i += 1
        key, val = _split_unescaped(line)
        current[key] = val
    return tags, chapters


def _split_unescaped(line: str) -> tuple[str, str]:
    out: list[str] = []
    key = None
    esc = False
    for ch in line:
        if esc:
            out.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == "=" and key is None:
            key = "".join(out)
            out = []
        else:
            out.append(ch)
    if key is None:
        return "".join(out), ""
    return key, "".join(out)


def read_ffmetadata(src: Path | str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Read tags and chapters with ffmpeg's own ID3 parser (independent of mutagen); it reads the header only, so
    it is bounded like a probe."""
    proc = run(["-v", "error", "-i", str(src), "-f", "ffmetadata", "-"], where=src, timeout=PROBE_TIMEOUT_S)
    return parse_ffmetadata(proc.stdout.decode("utf-8", "replace"))
