"""Finding ffmpeg and running it to completion: argv lists, never a shell, always with a time limit.

ffmpeg comes from the ``imageio-ffmpeg`` wheel (no system package). :func:`run` logs the full command and, on
failure, shows the user the last meaningful stderr line (yt-dlp's ``real_run_ffmpeg``).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import FFmpegError
from . import limits
from .parsers import last_error_line, parse_version

log = logging.getLogger(__name__)


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
    out = run(["-version"], quiet=True, timeout=limits.PROBE_TIMEOUT_S).stdout.decode("utf-8", "replace")
    return parse_version(out)


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
