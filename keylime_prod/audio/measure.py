"""The decoded-MP3 check: measure the MP3 while LAME writes it, in a thread or in a child process.

The render verifies integrated loudness and true peak on the *decoded* MP3 (the codec adds inter-sample peaks), and
renders again with the measured correction if they miss. The child process is this module's :func:`main`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .. import ffmpeg
from ..errors import AudioError, KeylimeError
from .inputs import decode
from .loudness import Meter

log = logging.getLogger(__name__)

# ``-c`` rather than ``-m`` this module: runpy warns when a package's __init__ has already imported the module it runs.
_CHILD = "import sys; from keylime_prod.audio.measure import main; sys.exit(main(sys.argv[1:]))"

#: The wait for the verifier after the encoder has exited is bounded (nothing may wait forever). It has the
#: rest of the MP3 to decode and measure: at worst all of it, niced, on a loaded machine. A whole decode and meter
#: ran at ~160x real time here (600 s of MP3 in 3.7 s, load 2.5), so 0.25 s per second of audio (40x slower than
#: that) on top of two minutes is generous; past it the verifier is wedged.
FINISH_MIN_S = 120.0
FINISH_S_PER_AUDIO_S = 0.25
#: How long abort() lets the child see the end of its stdin and exit before killing it.
ABORT_WAIT_S = 10.0


def finish_limit(audio_seconds: float) -> float:
    """Seconds the verifier may take to finish once the encoder has exited, for ``audio_seconds`` of audio."""
    return FINISH_MIN_S + FINISH_S_PER_AUDIO_S * max(0.0, audio_seconds)


def _wedged(path: Path, timeout: float) -> AudioError:
    return AudioError(
        f"verifying the MP3 did not finish within {timeout:g} s; stopped it",
        where=path,
        hint="run again; if it recurs, run with --verbose and report the log",
    )


class FollowingMeter:
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
        # popen drains the decoder's stderr from the start: a decoder reporting many errors would otherwise fill its
        # 64 KiB pipe, stop, and leave the feeder, the reader and finish() waiting on each other for good.
        self.dec = ffmpeg.popen(args, stdin=subprocess.PIPE)
        self._threads = [
            threading.Thread(target=self._feed, daemon=True),
            threading.Thread(target=self._read, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _feed(self) -> None:
        assert self.dec.stdin is not None
        ffmpeg.tail_file(self.path, self.dec.stdin, self._done)

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
            # Nobody reads the decoder's output any more: it would block on a full pipe and never exit, and the
            # feeder and finish() would wait on it for good.
            self.dec.kill()

    def finish(self, timeout: float | None) -> Meter:
        """Call after the encoder has exited: measure the rest and return the meter. ``timeout``: seconds it may
        take (:func:`finish_limit`), ``None`` in the child process, whose parent keeps the time."""
        self._done.set()
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        try:
            for t in self._threads:
                t.join(left())
                if t.is_alive():
                    raise subprocess.TimeoutExpired("the MP3 decoder", left() or 0.0)
            rc = ffmpeg.reap(self.dec, self.dec.tail, left())  # its stdout ended: it is exiting
        except subprocess.TimeoutExpired:
            assert timeout is not None
            self.abort()
            raise _wedged(self.path, timeout) from None
        err = self.dec.tail.text()
        if self._error is not None:
            raise self._error
        if rc != 0 or err.strip():
            raise AudioError(f"the encoded MP3 does not decode cleanly: {ffmpeg.last_error_line(err)}", where=self.path)
        return self.meter

    def abort(self) -> None:
        """Stop everything (the render failed)."""
        self._done.set()
        self.dec.kill()
        self.dec.wait()


class ChildFollower:
    """Runs :class:`FollowingMeter` in a child Python process (this module's :func:`main`).

    In one process the render loop and the meter fight over the GIL; on 60 minutes (2 cores) a thread made
    render + verify 1.6x the encode alone. A plain subprocess (not multiprocessing's spawn, which re-runs the
    caller's ``__main__`` when a script lacks a main guard) has its own interpreter. The child waits for ``done``
    on stdin, finishes, and pickles its :class:`Meter` to a file; end of stdin without ``done`` aborts it.
    """

    def __init__(self, path: Path, sr: int, ch: int, work: Path) -> None:
        self.path = path
        self.out = work / f"{path.stem}.meter.pickle"
        argv = [sys.executable, "-c", _CHILD, str(path), str(sr), str(ch), str(self.out)]
        log.debug("verifier: %s", subprocess.list2cmdline(argv))
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.tail = ffmpeg.StderrTail(self.proc.stderr)  # warnings must not fill its stderr pipe while LAME runs

    def finish(self, timeout: float | None) -> Meter:
        """Call after the encoder has exited: measure the rest and return the meter. A child that takes longer
        than ``timeout`` seconds (:func:`finish_limit`) is killed."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):  # a child that already died: its exit code says why
            self.proc.stdin.write(b"done\n")
            self.proc.stdin.close()
        try:
            rc = ffmpeg.reap(self.proc, self.tail, timeout)
        except subprocess.TimeoutExpired:
            assert timeout is not None
            raise _wedged(self.path, timeout) from None
        if rc != 0:
            raise AudioError(f"verifying the MP3 failed: {ffmpeg.last_error_line(self.tail.text())}", where=self.path)
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
            self.proc.wait(timeout=ABORT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure_file(path: Path, sr: int, ch: int) -> Meter:
    meter = Meter(sr, ch)
    for x in decode(path, sr, ch, "encoded MP3"):
        meter.add(x)
    return meter


def main(argv: list[str]) -> int:
    """The child process: ``MP3 SAMPLE_RATE CHANNELS OUT_PICKLE``. Follow the file, wait for ``done`` on stdin (end
    of stdin without it means abort), write the pickled meter; return the exit code."""
    path, sr, ch, out = Path(argv[0]), int(argv[1]), int(argv[2]), Path(argv[3])
    # LAME is the critical path: the verifier (and the decoder it starts) takes the CPU it leaves over.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)
    follower = FollowingMeter(path, sr, ch)
    if sys.stdin.readline().strip() != "done":
        follower.abort()
        return 2
    try:
        meter = follower.finish(None)
    except KeylimeError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    with open(out, "wb") as f:
        pickle.dump(meter, f, protocol=pickle.HIGHEST_PROTOCOL)
    return 0
