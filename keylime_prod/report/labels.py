"""What the report calls each figure the master records, in the producer's words, with its unit and rounding.

``master.json`` keeps its figures under the names the code uses (``max_reduction_db``, ``turn_spread_before_lu``);
the page and ``produce report`` show them only through :data:`FIGURES`, so a name is explained once, and
:func:`number` is the one way a figure becomes text (rounded to what the measurement is worth, never "-0").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Label:
    """A figure's plain name, its unit and how many decimals are worth showing; ``none``: what a missing value means."""

    text: str
    unit: str = ""
    decimals: int = 1
    none: str = "not measured"
    signed: bool = False  # a change (gain): "+6.5 dB", so its direction is plain


#: Every figure of the mastering steps (``master.json``: details.limiter, .leveler, .denoise, .codec_calibration,
#: and each multitrack track's ``processing``), by its key.
FIGURES: dict[str, Label] = {
    # The true-peak limiter.
    "ceiling_dbtp": Label("limiter ceiling (under the show's, leaving room for the MP3 encoder)", "dBTP"),
    "max_reduction_db": Label("deepest gain reduction", "dB", signed=True),
    "limited_seconds": Label("time the limiter was working", "s"),
    # The leveler: evens out the loudness of speech stretches (turns) within a recording.
    "stretches": Label("speech stretches measured", decimals=0),
    "stretches_levelled": Label("stretches made louder or quieter", decimals=0),
    "gain_min_db": Label("smallest leveler change", "dB", signed=True, none="none"),
    "gain_max_db": Label("largest leveler change", "dB", signed=True, none="none"),
    "gain_range_db": Label("leveler changes", "dB", signed=True, none="none"),
    "turn_spread_before_lu": Label("loudness difference between turns, before", "LU", none="too few turns"),
    "turn_spread_after_lu": Label("loudness difference between turns, after", "LU", none="too few turns"),
    "note": Label("note", none=""),
    # Noise and hum reduction.
    "engine": Label("noise reduction", decimals=0, none="none"),
    "recordings_denoised": Label("recordings noise-reduced", decimals=0),
    "noise_under_speech_db_before": Label("room noise under the speech, before", "dB"),
    "noise_under_speech_db_after": Label("room noise under the speech, after", "dB"),
    "hum_line_db_before": Label("mains hum over the sound around it, before", "dB", none="no hum"),
    "hum_line_db_after": Label("mains hum over the sound around it, after", "dB", none="no hum"),
    "hum_notches": Label("mains hum notched at", none="no notch"),
    "dc_offsets_removed": Label("DC offsets removed", decimals=0),
    # The MP3 encoder's effect, measured once and allowed for.
    "loudness_lu": Label("MP3 encoding changed the loudness by", "LU", 2, signed=True),
    "true_peak_db": Label("MP3 encoding raised the peaks by", "dB", 2, signed=True),
    # One multitrack track's speech measurements and processing.
    "noise_floor_lufs": Label("room noise level", "LUFS"),
    "noise_under_speech_db": Label("room noise under the speech", "dB"),
    "hum_hz": Label("mains hum", "Hz", 0, none="none"),
    "hum_line_db": Label("mains hum over the sound around it", "dB"),
    "denoise": Label("noise reduction decision", none="off"),
}

#: The mastering steps' names on the page, by their key in ``master.json``'s details.
STEPS: dict[str, str] = {
    "limiter": "True-peak limiter",
    "leveler": "Leveler (evens out loud and quiet turns)",
    "denoise": "Noise and hum reduction",
    "codec calibration": "MP3 encoder check",
}


def number(value: float | None, decimals: int = 1, unit: str = "", *, signed: bool = False, none: str = "") -> str:
    """``value`` rounded to ``decimals``, with its unit; never "-0" (a rounded zero has no sign)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return none
    r = round(float(value), decimals)
    if r == 0:
        r = 0.0  # round(-0.004, 2) is -0.0, which would print "-0.00"
    text = f"{r:+.{decimals}f}" if signed and r != 0 else f"{r:.{decimals}f}"
    return f"{text} {unit}" if unit else text


def figure(key: str, value: Any) -> tuple[str, str]:
    """The label and the text of one figure: a known key by :data:`FIGURES`, any other by its words."""
    lab = FIGURES.get(key) or Label(key.replace("_", " "))
    if isinstance(value, bool):
        return lab.text, "yes" if value else "no"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(x, (int, float)) for x in value):
        lo, hi = (number(x, lab.decimals, signed=lab.signed) for x in value)
        return lab.text, f"{lo} to {hi} {lab.unit}".rstrip() if lo != hi else number(value[0], lab.decimals, lab.unit)
    if isinstance(value, (int, float)):
        return lab.text, number(value, lab.decimals, lab.unit, signed=lab.signed, none=lab.none)
    if value is None or value == "":
        return lab.text, lab.none
    return lab.text, str(value)


def duration(seconds: float) -> str:
    """A length in words ("15 s", "2 min 05 s", "1 h 02 min"), never in the HH:MM:SS of a time on the timeline: on the
    page a clock time is a place to play from, and is a link."""
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
