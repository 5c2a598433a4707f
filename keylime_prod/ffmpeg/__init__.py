"""The one ffmpeg wrapper.

ffmpeg comes from the ``imageio-ffmpeg`` wheel (no system package; note that wheel ships **no ffprobe**, so media
is probed by parsing ``ffmpeg -i`` output). Commands are argv lists, never a shell. Its modules, in the order they
build on each other:

- :mod:`.limits`: how long any ffmpeg may take (read at call time, so tests can lower them);
- :mod:`.parsers`: pure parsers of what ffmpeg prints (version, last error line, ``-i`` summary, ebur128,
  ffmetadata), tested on literal strings (the ffmpeg-normalize ``_parse_loudnorm_output`` pattern);
- :mod:`.args`: pure argv builders (decode to PCM, encode MP3, the EBU R128 scan);
- :mod:`.runner`: finding the binary and running it to completion (:func:`run` logs the full command and, on failure,
  shows the last meaningful stderr line, as yt-dlp's ``real_run_ffmpeg`` does);
- :mod:`.stream`: streaming children (pipes, stderr drained from the start, the stall watchdog, a bounded reap);
- :mod:`.probing`: what ffmpeg tells about a file (stream summary, loudness, tags and chapters).

Callers use the names re-exported here: ``from keylime_prod import ffmpeg; ffmpeg.run([...])`` (the modules are
named apart from the functions, so ``ffmpeg.run`` and ``ffmpeg.probe`` are always the functions).
"""

from __future__ import annotations

from . import limits
from .args import PCM_FORMATS, decode_args, decode_excerpts_args, ebur128_args, encode_mp3_args
from .limits import full_pass_timeout
from .parsers import (
    EbuR128,
    Probe,
    last_error_line,
    parse_duration,
    parse_ebur128,
    parse_ffmetadata,
    parse_probe,
    parse_version,
)
from .probing import FollowingEbuR128, full_pass_timeout_of, measure_ebur128, probe, read_ffmetadata
from .runner import binary, command, run, version
from .stream import StderrTail, Stream, finish, popen, read_stream, reap, tail_file

__all__ = [
    "PCM_FORMATS",
    "EbuR128",
    "FollowingEbuR128",
    "Probe",
    "StderrTail",
    "Stream",
    "binary",
    "command",
    "decode_args",
    "decode_excerpts_args",
    "ebur128_args",
    "encode_mp3_args",
    "finish",
    "full_pass_timeout",
    "full_pass_timeout_of",
    "last_error_line",
    "limits",
    "measure_ebur128",
    "parse_duration",
    "parse_ebur128",
    "parse_ffmetadata",
    "parse_probe",
    "parse_version",
    "popen",
    "probe",
    "read_ffmetadata",
    "read_stream",
    "reap",
    "run",
    "tail_file",
    "version",
]
