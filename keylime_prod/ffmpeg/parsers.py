"""Pure parsers of what ffmpeg prints: its version, its last error line, the stream summary of ``ffmpeg -i``, the
``ebur128`` filter's summary and ``-f ffmetadata`` output. Tested on literal strings (the ffmpeg-normalize
``_parse_loudnorm_output`` pattern); nothing here runs ffmpeg.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import timecode
from ..errors import FFmpegError


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
    m = re.search(r"Duration: (\d+:\d\d:\d\d(?:\.\d+)?)", stderr)
    return timecode.parse(m.group(1)) if m else None


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


# ------------------------------------------------------------------------------------------------------ ebur128


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


# --------------------------------------------------------------------------------------------------- ffmetadata


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
