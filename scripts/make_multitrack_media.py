#!/usr/bin/env python3
"""Make the multitrack demo and test material committed under ``configs/raw/multitrack-demo/`` (issue 10, item 5).

One short conversation of three people (two hosts and a guest) recorded as a double-ender would be: one track per
speaker, each carrying its own voice, the other speakers' voices leaking in about 20 dB down (bleed), its own room
noise, and a faint steady rumble unique to its room (air handling, below any voice: a marker the tests use to see
how far a track is turned down while someone else talks). The three recorders start a few hundred milliseconds
apart and at different levels, as real ones do.

Needs, at development time only, **espeak-ng** (``apt-get install espeak-ng``) and the ffmpeg binary from
imageio-ffmpeg (through :func:`keylime_prod.ffmpeg.binary`). The committed files are what the project uses: users,
tests and CI never need espeak-ng or this script. ``session.json`` beside the tracks records the truth the tests
measure against: every turn (speaker, start and end of its speech on the session timeline, text), each track's
start on that timeline, and its levels.

Usage (from the repository root)::

    python scripts/make_multitrack_media.py [--out configs/raw/multitrack-demo]

Deterministic: fixed noise seeds; espeak-ng 1.51 made the committed files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg, fsutil  # noqa: E402

RATE = 22050  # espeak-ng's own rate; small files, and the master resamples anyway
BLEED_DB = -20.0  # the others' voices in each track, relative to their own direct level
NOISE_DB = -52.0  # room noise RMS, relative to the track's speech RMS
MARKER_DB = -35.0  # the room's steady rumble, relative to the track's speech RMS
LEAD_S = 1.2  # room tone before the first word on the session timeline


@dataclass(frozen=True)
class Speaker:
    name: str
    voice: str
    wpm: int
    file: str
    start_s: float  # where this track's first sample sits on the session timeline
    level_db: float  # speech RMS in the track, dBFS (uneven on purpose: the mix must level them)
    marker_hz: float  # the room's rumble: under every voice's fundamental, and not mains hum (50/60 Hz)
    seed: int


SPEAKERS = (
    Speaker("Lara Varpio", "en-us+f3", 150, "track-lara.flac", 0.0, -20.0, 31.0, 21),
    Speaker("Jason Frank", "en-us+m3", 155, "track-jason.flac", 0.350, -29.0, 37.0, 22),
    Speaker("Linda Snell", "en-gb+f4", 150, "track-linda.flac", -0.220, -24.0, 43.0, 23),
)

#: (speaker index, text, gap before this turn in seconds; negative: it starts before the previous turn ends).
TURNS = (
    (0, "Welcome back to KeyLIME. Today we have a guest with us to talk about feedback in residency.", 0.0),
    (2, "Thanks for having me. Feedback is the part of teaching that residents remember the longest.", 0.6),
    (1, "Right, and the paper we read asks whether the feedback actually changes what they do.", 0.5),
    (0, "The authors followed forty residents for a whole year on the wards.", 0.6),
    (1, "Exactly.", -0.9),
    (2, "What surprised me was how often the written comments said nothing specific at all.", 0.6),
    (0, "So the message is simple. Be specific, be timely, and then follow up.", 0.5),
)


def espeak(text: str, voice: str, wpm: int, work: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng, float32 at :data:`RATE`, with its own leading and trailing silence cut."""
    wav = work / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(wav), text], check=True)
    out = ffmpeg.run(ffmpeg.decode_args(wav, sample_rate=RATE, channels=1), where=wav).stdout
    x = np.frombuffer(out, dtype="<f4").astype(np.float64)
    loud = np.flatnonzero(np.abs(x) > 1e-3)
    return x[loud[0] : loud[-1] + 1]


def pink(n: int, seed: int) -> np.ndarray:
    """Unit-RMS pink noise (1/f power), band-limited to 60 Hz-6 kHz like a room's air handling."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec *= np.where((f > 60) & (f < 6000), 1 / np.sqrt(np.maximum(f, 1.0)), 0.0)
    y = np.fft.irfft(spec, n)
    return y / np.sqrt(np.mean(y**2))


def build(out: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clips = [espeak(text, SPEAKERS[who].voice, SPEAKERS[who].wpm, work) for who, text, _gap in TURNS]
    # Every voice at the same RMS while speaking, before the tracks' own levels are applied.
    clips = [c / np.sqrt(np.mean(c[np.abs(c) > 1e-3] ** 2)) * 0.1 for c in clips]
    turns = []
    t = LEAD_S
    prev_end = LEAD_S
    for (who, text, gap), clip in zip(TURNS, clips, strict=True):
        start = prev_end + gap if turns else LEAD_S
        start = round(start * RATE) / RATE
        end = start + len(clip) / RATE
        turns.append({"speaker": SPEAKERS[who].name, "start": round(start, 4), "end": round(end, 4), "text": text})
        t = max(t, end)
        prev_end = end if gap >= 0 else max(prev_end, end)
    session_len = t + 1.5
    n = int(session_len * RATE) + RATE  # a second of margin either side for the tracks' start offsets
    origin = RATE // 2  # session time 0 sits here in the working buffers
    voices = np.zeros((len(SPEAKERS), n))
    for turn, clip, (who, _text, _gap) in zip(turns, clips, TURNS, strict=True):
        i = origin + round(float(turn["start"]) * RATE)  # type: ignore[arg-type]
        voices[who, i : i + len(clip)] += clip
    files = []
    for k, sp in enumerate(SPEAKERS):
        others = voices.sum(axis=0) - voices[k]
        direct = voices[k] + others * 10 ** (BLEED_DB / 20)
        speech_rms = 0.1
        t_axis = np.arange(n) / RATE
        room = pink(n, sp.seed) * speech_rms * 10 ** (NOISE_DB / 20)
        rumble = np.sin(2 * np.pi * sp.marker_hz * t_axis) * np.sqrt(2) * speech_rms * 10 ** (MARKER_DB / 20)
        track = (direct + room + rumble) * 10 ** ((sp.level_db + 20.0) / 20)  # speech RMS 0.1 is -20 dBFS
        a = origin + round(sp.start_s * RATE)
        b = origin + round((session_len - 0.3 * k) * RATE)  # the recorders also stop at different times
        pcm = np.clip(track[a:b], -1.0, 1.0).astype("<f4")
        dest = out / sp.file
        with fsutil.atomic_path(dest) as tmp_path:
            ffmpeg.run(
                ["-v", "error", "-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", "-", "-map_metadata", "-1",
                 "-fflags", "+bitexact", "-flags:a", "+bitexact", "-c:a", "flac", "-sample_fmt", "s16",
                 "-f", "flac", "-y", str(tmp_path)],
                input_bytes=pcm.tobytes(),
                where=dest,
            )  # fmt: skip
        dest.chmod(0o644)
        files.append(
            {
                "file": sp.file,
                "speaker": sp.name,
                "voice": sp.voice,
                "start_s": round(round(sp.start_s * RATE) / RATE, 6),
                "speech_dbfs": sp.level_db,
                "bleed_db": BLEED_DB,
                "noise_db": NOISE_DB,
                "marker_hz": sp.marker_hz,
                "marker_db": MARKER_DB,
                "seconds": round(len(pcm) / RATE, 4),
            }
        )
    return {"rate": RATE, "tracks": files, "turns": turns, "session_seconds": round(session_len, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "configs" / "raw" / "multitrack-demo")
    a = ap.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is needed to make this material: apt-get install espeak-ng")
    a.out.mkdir(parents=True, exist_ok=True)
    truth = build(a.out)
    fsutil.write_text(a.out / "session.json", json.dumps(truth, indent=2) + "\n")
    for tr in truth["tracks"]:  # type: ignore[attr-defined]
        size = (a.out / tr["file"]).stat().st_size
        print(f"{tr['file']}: {tr['seconds']:.2f} s, starts at {tr['start_s']:+.3f} s, {size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
