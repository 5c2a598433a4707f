"""Time codes: ``HH:MM:SS`` and ``HH:MM:SS.mmm`` written and read in one place.

Show notes and feed descriptions print whole seconds, rounded *down* so a listener who seeks to the printed time
never lands after the chapter start (Spotify and Apple read chapters from such lines, docs/publishing.md); WebVTT,
SRT and Podlove Simple Chapters carry milliseconds (WebVTT and Normal Play Time use ``.``, SRT ``,``).
"""

from __future__ import annotations

import re

#: ``HH:MM:SS``, ``MM:SS`` or ``SS``, with an optional fraction of a second.
_FIELD = re.compile(r"\d+(\.\d+)?")

#: Seconds a float may fall short of a whole second and still print as it (``59.9999999`` is ``00:01:00``).
_EPSILON_S = 1e-6


def hms(seconds: float) -> str:
    """``HH:MM:SS``, whole seconds rounded down (hours grow past two digits when they must)."""
    s = max(0, int(seconds + _EPSILON_S))
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def hms_ms(seconds: float, sep: str = ".") -> str:
    """``HH:MM:SS.mmm``, rounded to the millisecond (``sep=","`` for SRT); a negative time is ``00:00:00.000``."""
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def parse(text: str) -> float:
    """Seconds in ``"HH:MM:SS(.mmm)"``, ``"MM:SS"`` or ``"SS"``; :class:`ValueError` for anything else."""
    fields = text.strip().split(":")
    if not 1 <= len(fields) <= 3 or not all(_FIELD.fullmatch(f) for f in fields):
        raise ValueError(f"{text!r} is not a time such as 05:30 or 01:02:03.5")
    secs = 0.0
    for field in fields:
        secs = secs * 60 + float(field)
    return secs
