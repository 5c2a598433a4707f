"""Streaming ffmpeg children: pipes in and out, stderr drained from the start, a stall watchdog, a bounded reap.

A pipe holds 64 KiB: a child whose stderr is read only at the end deadlocks once it has written more, so every
streaming child has its stderr drained by a :class:`StderrTail`; a child that neither reads nor writes for
:data:`limits.STALL_TIMEOUT_S` while we wait on it is killed and named (docs/reliability.md).
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..errors import FFmpegError
from . import limits
from .parsers import last_error_line
from .runner import command

log = logging.getLogger(__name__)


#: stderr lines a streaming child keeps for its error message (the last ones: ffmpeg ends with the cause).
STDERR_KEEP_LINES = 200


class StderrTail:
    """Drain a child's stderr on a daemon thread from the moment it starts, keeping the last ``keep`` lines.

    A pipe holds 64 KiB: a child that writes more to stderr than that while we stream its stdin or stdout stops on
    the full pipe, and we wait on it for good (reading stderr only at the end deadlocks). Every streaming child
    (ffmpeg here, the measuring child in audio/measure.py) has its stderr read by one of these.
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


class Stream(subprocess.Popen[bytes]):
    """A streaming ffmpeg whose stderr is drained from the start (:class:`StderrTail`, in ``tail``), and killed if
    a read or write marked with :meth:`waiting` lasts :data:`limits.STALL_TIMEOUT_S` (then ``stalled`` is true)."""

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
            time.sleep(min(1.0, limits.STALL_TIMEOUT_S / 10))
            since = self._waiting_since
            if since is not None and time.monotonic() - since > limits.STALL_TIMEOUT_S:
                self.stalled = True
                self.kill()  # the blocked read sees the end of the output, a blocked write a broken pipe
                return

    def failure(self, where: str | Path | None) -> FFmpegError:
        """The error for this ffmpeg's non-zero exit: its last stderr line, or the stall that made us kill it."""
        if self.stalled:
            return FFmpegError(
                f"ffmpeg made no progress for {limits.STALL_TIMEOUT_S:g} s; killed it",
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


def finish(proc: Stream, *, where: str | Path | None = None, timeout: float | None = None) -> str:
    """Wait (at most ``timeout`` seconds) for a streaming ffmpeg; return the last lines of its stderr, or raise
    :class:`FFmpegError` if it failed or had to be killed. ``timeout`` defaults to :data:`limits.FINISH_TIMEOUT_S`."""
    if timeout is None:
        timeout = limits.FINISH_TIMEOUT_S
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
    :class:`subprocess.TimeoutExpired` raised (the caller names it: nothing may wait forever)."""
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


def tail_file(path: Path, sink: IO[bytes], done: threading.Event, *, chunk_bytes: int = 1 << 16) -> None:
    """Copy the file ``path`` into ``sink`` while another process still writes it, until ``done`` is set and nothing
    more comes; then close ``sink``. A file that never appears ends with ``done``. A consumer that went away (broken
    pipe) ends the copy quietly: its own exit status tells why. Used to measure an MP3 while LAME writes it."""
    try:
        while not path.exists():
            if done.is_set():
                return
            time.sleep(0.02)
        with open(path, "rb") as f:
            while True:
                buf = f.read(chunk_bytes)
                if buf:
                    sink.write(buf)
                elif done.is_set():
                    rest = f.read()
                    if not rest:
                        break
                    sink.write(rest)
                else:
                    time.sleep(0.02)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            sink.close()
        except OSError:
            pass


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
