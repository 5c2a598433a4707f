"""Inputs of the production report: a master on a known timeline and its loudness curves, at levels we know."""

from __future__ import annotations

import json
from pathlib import Path

from keylime_prod.audio.artefact import (
    BodyOutput,
    CodecCalibration,
    DenoiseSummary,
    LevelerSummary,
    LimiterFigures,
    Loudness,
    Master,
    MasteredDetails,
    Mp3Format,
    PartDetails,
    RenderPass,
    TimelineSegment,
)

#: Seconds between two points of the loudness curves.
HOP = 0.1


def part(file: str, input_lufs: float, gain_db: float) -> PartDetails:
    """One recording of a master's details: its file, level before and the gain it got (nothing else done)."""
    return PartDetails(file, input_lufs, -3.0, -3.2, 4.0, gain_db, 0.5, 0.5, {"note": "off"}, {"decision": "off"}, {})


def master(
    tmp_path: Path,
    *,
    parts: tuple[PartDetails, ...] | None = None,
    leveler: LevelerSummary | None = None,
    denoise: DenoiseSummary | None = None,
) -> Master:
    """A master of episode ep-9 (100 s: intro, body in two parts, disclaimer, outro; limited), with the details
    ``parts``, ``leveler`` and ``denoise`` given (else two recordings, nothing levelled or denoised)."""
    details = MasteredDetails(
        parts=parts or (part("lara.flac", -24.0, 8.0), part("jason.m4a", -17.0, 1.4)),
        assets={},
        body_output=BodyOutput(-16.0, 3.0),
        codec_calibration=CodecCalibration(0.01, 0.05),
        leveler=leveler or LevelerSummary(0, 0, None, None, None, None),
        denoise=denoise or DenoiseSummary("none", 0, None, None, None, None, 0),
        limiter=LimiterFigures(ceiling_dbtp=-1.3, max_reduction_db=-1.35, limited_seconds=0.104),
        renders=1,
        render_history=(RenderPass(-16.0, -16.1, -1.3),),
        seconds={"render+verify": 1.0},
        mp3=Mp3Format("mp3", 44100, 2),
    )
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
        details=details,
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
