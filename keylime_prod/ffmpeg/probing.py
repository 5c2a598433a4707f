"""What ffmpeg tells about a file: its audio stream (``ffmpeg -i``; the imageio-ffmpeg wheel ships **no ffprobe**),
its EBU R128 loudness and its ID3 tags and chapters as ffmpeg's own parser reads them. Each read is bounded by a
limit from :mod:`.limits`."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from ..errors import FFmpegError
from . import limits
from .args import ebur128_args
from .parsers import EbuR128, Probe, last_error_line, parse_duration, parse_ebur128, parse_ffmetadata, parse_probe
from .runner import run
from .stream import finish as finish_stream
from .stream import popen, tail_file


def _probe_text(path: Path | str) -> str:
    """What ``ffmpeg -i FILE`` prints about the file (its stderr), bounded by :data:`limits.PROBE_TIMEOUT_S`."""
    proc = run(["-i", str(path)], quiet=True, where=path, timeout=limits.PROBE_TIMEOUT_S)
    return proc.stderr.decode("utf-8", "replace")


def probe(path: Path) -> Probe:
    """Probe ``path`` (ffmpeg only: the wheel has no ffprobe). Raises :class:`FFmpegError` if it is not audio or
    ffmpeg takes over :data:`limits.PROBE_TIMEOUT_S`."""
    err = _probe_text(path)
    info = parse_probe(err)
    if info is None:
        reason = last_error_line(err)
        if reason.startswith("At least one output file"):
            reason = "no audio stream"
        raise FFmpegError(f"not readable audio: {reason}", where=path)
    return info


def full_pass_timeout_of(path: Path | str) -> float:
    """:func:`limits.full_pass_timeout` for a file whose duration the caller does not know: ``ffmpeg -i`` reads it
    (bounded by :data:`limits.PROBE_TIMEOUT_S`), else its size gives an upper bound (:data:`limits.MIN_BYTES_PER_S`).
    """
    duration = parse_duration(_probe_text(path))
    if duration is None:
        try:
            duration = Path(path).stat().st_size / limits.MIN_BYTES_PER_S
        except OSError:
            pass  # unreadable: the pass itself fails at once and says why
    return limits.full_pass_timeout(duration)


def measure_ebur128(src: Path | str) -> EbuR128:
    """Measure a file with ffmpeg's own EBU R128 scanner (an independent check of our meter). A whole-file pass:
    bounded by :func:`full_pass_timeout_of` the file."""
    proc = run(ebur128_args(src), where=src, timeout=full_pass_timeout_of(src))
    return parse_ebur128(proc.stderr.decode("utf-8", "replace"))


class FollowingEbuR128:
    """ffmpeg's EBU R128 scan of an MP3 *while it is being written* (:func:`stream.tail_file` feeds the growing file
    to the scanner): on two cores the measurement costs little wall time beyond the encode, where a scan after it
    decodes the whole file again. Start it before the encoder; call :meth:`finish` once the encoder has exited."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._done = threading.Event()
        args = ebur128_args("pipe:0")
        at = args.index("-i")
        args[at:at] = ["-f", "mp3"]  # a pipe has no name to guess the format from
        self.proc = popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self.proc.stdin is not None
        self._feeder = threading.Thread(target=tail_file, args=(path, self.proc.stdin, self._done), daemon=True)
        self._feeder.start()

    def finish(self, timeout: float) -> EbuR128:
        """The scan of the whole file, waiting at most ``timeout`` seconds for the rest of it."""
        self._done.set()
        self._feeder.join(timeout)
        text = finish_stream(self.proc, where=self.path, timeout=timeout)
        return parse_ebur128(text)

    def abort(self) -> None:
        """Stop the scan (the encode failed)."""
        self._done.set()
        self.proc.kill()
        self.proc.wait()


def read_ffmetadata(src: Path | str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Read tags and chapters with ffmpeg's own ID3 parser (independent of mutagen); it reads the header only, so
    it is bounded like a probe."""
    proc = run(["-v", "error", "-i", str(src), "-f", "ffmetadata", "-"], where=src, timeout=limits.PROBE_TIMEOUT_S)
    return parse_ffmetadata(proc.stdout.decode("utf-8", "replace"))
