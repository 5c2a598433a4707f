"""Inputs of the production report: a master on a known timeline and its loudness curves, at levels we know."""

from __future__ import annotations

import json
from pathlib import Path

from keylime_prod.audio.artefact import Loudness, Master, TimelineSegment

#: Seconds between two points of the loudness curves.
HOP = 0.1


def master(tmp_path: Path, **details: object) -> Master:
    """A master of episode ep-9 (100 s: intro, body in two parts, disclaimer, outro; limited), ``details`` added."""
    return Master(
        episode_id="ep-9",
        mp3=tmp_path / "ep-9.mp3",
        report=tmp_path / "master.json",
        duration=100.0,
        sample_rate=44100,
        channels=2,
        bitrate_kbps=128,
        audio_sha256="0" * 64,
        segments=(
            TimelineSegment("intro", 0.0, 10.0),
            TimelineSegment("body", 9.0, 80.0),
            TimelineSegment("disclaimer", 80.5, 90.0),
            TimelineSegment("outro", 89.0, 100.0),
        ),
        input_loudness=Loudness(-21.3, 8.1, -0.4, -0.5),
        output_loudness=Loudness(-16.1, 3.2, -1.3, -1.4),
        method="limiter",
        gain_db=5.2,
        pieces=(TimelineSegment("part-1", 9.0, 50.0), TimelineSegment("part-2", 50.0, 80.0)),
        details={
            "parts": [
                {"file": "lara.flac", "input_lufs": -24.0, "gain_db": 8.0},
                {"file": "jason.m4a", "input_lufs": -17.0, "gain_db": 1.4},
            ],
            "limiter": {"ceiling_dbtp": -1.3, "max_reduction_db": -1.35, "limited_seconds": 0.104},
            **details,
        },
    )


def curves(tmp_path: Path) -> Path:
    """Body part 1 at -15 LUFS, part 2 at -19 (with pauses at -60: a noise floor), music at -18, -inf at the end."""
    n = int(100 / HOP)
    after = []
    for i in range(n):
        t = i * HOP
        if 9 <= t < 50:
            after.append(-60.0 if int(t) % 10 == 0 else -15.0)
        elif 50 <= t < 80:
            after.append(-60.0 if int(t) % 10 == 0 else -19.0)
        elif t >= 99.5:
            after.append(None)
        else:
            after.append(-18.0)
    before = [None if v is None else v - 5 for v in after]
    path = tmp_path / "loudness.json"
    data = {
        "hop_s": HOP,
        "before": {"momentary": before, "short_term": before},
        "after": {"momentary": after, "short_term": after},
    }
    path.write_text(json.dumps(data))
    return path
