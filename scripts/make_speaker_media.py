#!/usr/bin/env python3
"""Make ``tests/data/speakers/``: real voices in one mixed recording, with the truth of who speaks when.

* ``three_voices.flac``: three real readers taking turns, each voice at the same loudness (``EQUAL_LUFS``): the
  Sonnet 1 reader and the *Sense and Sensibility* reader (``tests/data``, LibriVox, public domain) are the show's two
  hosts, John F. Kennedy (``tests/data/jfk.wav``, public domain) the guest. ``uneven_voices.flac``: the same turns with
  a loud host, a middle one and a quiet guest (``UNEVEN_LUFS``), for levelling per speaker.
* ``host_sonnet.flac``, ``host_sense.flac``: each host's enrolment sample, from the part of their reading that the
  mixes do not use (a voice is never recognised from the very audio it is tested on).
* ``conversation.flac``: the real two-person telephone call (Diane and Sheila, with overlapping speech) that
  pyannote-audio ships in its wheel (``pyannote/audio/sample/sample.wav``, MIT), as it is; its reference turns are the
  wheel's ``sample.rttm``.

``speakers.json`` records every turn (speaker, role, start and end in seconds on the mix) and each file's levels.

Usage (from the repository root; needs pyannote-audio's wheel or the package installed, and the project's ffmpeg)::

    pip download --no-deps --only-binary=:all: -d /tmp/w pyannote-audio==4.0.7
    python scripts/make_speaker_media.py --wheel /tmp/w/pyannote_audio-4.0.7-py3-none-any.whl

Deterministic (bitexact FLAC).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg  # noqa: E402

RATE = 16000
DATA = REPO / "tests" / "data"
EQUAL_LUFS = -23.0
UNEVEN_LUFS = {"sonnet": -17.0, "sense": -21.0, "jfk": -33.0}
FADE_S = 0.01
LEAD_S = 0.8
TAIL_S = 1.0
SOURCES = {"sonnet": "sonnet1_librivox.flac", "sense": "sense_librivox.flac", "jfk": "jfk.wav"}
PEOPLE = {
    "sonnet": ("Avery Lane", "host"),
    "sense": ("Blair Moss", "host"),
    "jfk": ("John F. Kennedy", "guest"),
}
#: Each host's enrolment sample: the start of their reading, up to a pause (ffmpeg silencedetect at -35 dB).
ENROL = {"sonnet": (0.0, 14.8), "sense": (0.0, 11.07)}
#: The turns of the mixes, in order: (voice, start, end in its source, cut in its pauses) and the pause before it.
TURNS = (
    ("sonnet", 14.8, 22.66, 0.0),
    ("sense", 11.07, 16.95, 0.6),
    ("jfk", 0.0, 2.7, 0.5),
    ("sonnet", 22.66, 30.96, 0.7),
    ("sense", 16.95, 23.43, 0.5),
    ("jfk", 2.7, 7.85, 0.6),
    ("sonnet", 30.96, 43.78, 0.5),
    ("sense", 23.43, 27.1, 0.7),
    ("jfk", 7.85, 11.0, 0.5),
    ("sonnet", 43.78, 53.0, 0.6),
)
SAMPLE = "pyannote/audio/sample/"


def _decode(path: Path) -> np.ndarray:
    args = ffmpeg.decode_args(path, sample_rate=RATE, channels=1)
    out = subprocess.run(ffmpeg.command(args), capture_output=True, check=True).stdout
    return np.frombuffer(out, "<f4").astype(np.float64)


def _write(x: np.ndarray, dest: Path) -> None:
    args = [ffmpeg.binary(), "-v", "error", "-y", "-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", "-"]
    codec = ["-c:a", "flac", "-sample_fmt", "s16", "-fflags", "+bitexact", "-flags:a", "+bitexact"]
    subprocess.run([*args, *codec, str(dest)], input=x.astype("<f4").tobytes(), check=True)


def _lufs(x: np.ndarray, work: Path) -> float:
    """Integrated loudness by ffmpeg's ``ebur128`` filter."""
    _write(x, work / "m.flac")
    return ffmpeg.measure_ebur128(work / "m.flac").integrated_lufs


def _cut(x: np.ndarray, a: float, b: float) -> np.ndarray:
    y = x[round(a * RATE) : round(b * RATE)].copy()
    n = round(FADE_S * RATE)
    ramp = np.linspace(0.0, 1.0, n)
    y[:n] *= ramp
    y[-n:] *= ramp[::-1]
    return y


def _mix(voices: dict[str, np.ndarray], levels: dict[str, float]) -> tuple[np.ndarray, list[dict[str, object]]]:
    parts = [np.zeros(round(LEAD_S * RATE))]
    turns: list[dict[str, object]] = []
    t = LEAD_S
    for voice, a, b, gap in TURNS:
        parts.append(np.zeros(round(gap * RATE)))
        t += gap
        clip = _cut(voices[voice], a, b) * 10 ** (levels[voice] / 20)
        name, role = PEOPLE[voice]
        turns.append({"speaker": name, "voice": voice, "role": role, "start": round(t, 3),
                      "end": round(t + len(clip) / RATE, 3)})  # fmt: skip
        parts.append(clip)
        t += len(clip) / RATE
    parts.append(np.zeros(round(TAIL_S * RATE)))
    return np.concatenate(parts), turns


def _sample(wheel: Path | None) -> tuple[bytes, str]:
    if wheel is not None:
        with zipfile.ZipFile(wheel) as z:
            return z.read(SAMPLE + "sample.wav"), z.read(SAMPLE + "sample.rttm").decode()
    from importlib.metadata import distribution

    dist = distribution("pyannote.audio")
    return (Path(str(dist.locate_file(SAMPLE + "sample.wav"))).read_bytes(),
            Path(str(dist.locate_file(SAMPLE + "sample.rttm"))).read_text())  # fmt: skip


def build(out: Path, wheel: Path | None) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sources = {v: _decode(DATA / f) for v, f in SOURCES.items()}
        # Each source brought to 0 LUFS first, so a turn's gain is its level (the readings are single voices).
        unit = {v: x * 10 ** (-_lufs(x, work) / 20) for v, x in sources.items()}
        for voice, (a, b) in ENROL.items():
            _write(_cut(unit[voice], a, b) * 10 ** (EQUAL_LUFS / 20), out / f"host_{voice}.flac")
        equal, turns = _mix(unit, dict.fromkeys(unit, EQUAL_LUFS))
        _write(equal, out / "three_voices.flac")
        uneven, _ = _mix(unit, UNEVEN_LUFS)
        _write(uneven, out / "uneven_voices.flac")
        wav, rttm = _sample(wheel)
        (work / "sample.wav").write_bytes(wav)
        _write(_decode(work / "sample.wav"), out / "conversation.flac")
    conv = []
    for line in rttm.splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            conv.append({"speaker": f[7], "start": round(float(f[3]), 3), "end": round(float(f[3]) + float(f[4]), 3)})
    truth: dict[str, object] = {
        "about": "real voices in one mixed recording (see scripts/make_speaker_media.py); times in seconds on the mix",
        "rate": RATE,
        "people": {v: {"name": n, "role": r} for v, (n, r) in PEOPLE.items()},
        "enrolment": {PEOPLE[v][0]: f"host_{v}.flac" for v in ENROL},
        "three_voices": {"file": "three_voices.flac", "lufs": EQUAL_LUFS, "turns": turns},
        "uneven_voices": {
            "file": "uneven_voices.flac",
            "lufs": {PEOPLE[v][0]: lv for v, lv in UNEVEN_LUFS.items()},
            "turns": turns,
        },
        "conversation": {
            "file": "conversation.flac",
            "source": "pyannote-audio 4.0.7 wheel, pyannote/audio/sample/sample.wav and sample.rttm (MIT)",
            "speakers": {"speaker90": "Diane", "speaker91": "Sheila"},
            "turns": conv,
        },
    }
    (out / "speakers.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wheel", type=Path, help="pyannote-audio's wheel (else the installed package)")
    p.add_argument("--out", type=Path, default=DATA / "speakers")
    a = p.parse_args()
    build(a.out, a.wheel)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
