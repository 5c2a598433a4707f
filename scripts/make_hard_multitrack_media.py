#!/usr/bin/env python3
"""Make ``tests/data/multitrack-hard/``: a two-track session of two real voices recorded the way real sessions are.

The voices are two real people on a telephone call, Diane and Sheila: the ``sample.wav`` and ``sample.stm`` (the
words and their times, per speaker) that pyannote-audio ships inside its wheel (MIT licence; the wheel does not say
where the recording itself comes from). Only utterances that no other voice overlaps are used; they are laid out as a
new conversation, host (Diane) and guest (Sheila) taking turns, one track per speaker, with what makes real tracks
hard:

* **Uneven microphones.** The host's track is quiet (her speech at ``HOST_LUFS``), the guest's hot (``GUEST_LUFS``).
* **Bleed both ways, late.** Each track carries the other voice ``BLEED_DB`` under that voice's level in its own
  track, ``DELAY_MS`` late (the sound travels from one person to the other's microphone), low-passed, with one early
  reflection. In the quiet host track the guest's bleed is then only a few dB under the host's own voice.
* **Room noise**, different in each track, and **a start offset**: the guest's recorder starts ``GUEST_START_S`` after
  the host's.

``session.json`` records the truth the tests measure against: every turn (speaker, start and end on the host track's
timeline, which is the session's, and its words), each track's start, level, bleed and delay.

Usage (from the repository root; needs pyannote-audio's wheel or the package installed, and the project's ffmpeg)::

    pip download --no-deps --only-binary=:all: -d /tmp/w pyannote-audio==4.0.7
    python scripts/make_hard_multitrack_media.py --wheel /tmp/w/pyannote_audio-4.0.7-py3-none-any.whl

Deterministic (fixed noise seeds, bitexact FLAC).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import wave
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg  # noqa: E402

RATE = 16000  # the source's own rate
HOST_LUFS = -34.0  # the quiet microphone
GUEST_LUFS = -21.0  # the hot one
#: Each voice in the other's track, relative to its level in its own track (the host track's is the harder case: the
#: guest's bleed there lands GUEST_LUFS + BLEED_DB["host"] - HOST_LUFS = 5 dB under the host's own voice).
BLEED_DB = {"host": -18.0, "guest": -22.0}
DELAY_MS = 3.0  # one metre between each speaker and the other's microphone, both ways
REFLECTION = (1.9, -10.0)  # one early reflection of the bleed: ms after the direct sound, dB
NOISE_LUFS = {"host": -62.0, "guest": -63.0}  # room noise in each track (the host's is 28 dB under her speech)
GUEST_START_S = 0.37  # the guest's recorder started this long after the host's
LEAD_S = 1.0  # room tone before the first word
TAIL_S = 1.5
PAD_S = 0.08  # kept around each utterance's transcribed times (never into a neighbour's)
FADE_S = 0.01

#: (speaker, [utterances of the source's stm, by start time]) in the order of the new conversation, and the pause
#: before each turn. Diane's "Oh, I'm originally from Chicago also." is left out: Sheila's back-channel overlaps it.
TURNS = (
    ("host", (8.436, 8.916), 0.0),
    ("guest", (9.838,), 0.5),
    ("host", (10.78, 12.542), 0.6),
    ("guest", (14.444,), 0.5),
    ("host", (20.173,), 0.7),
    ("guest", (21.935, 24.058), 0.5),
    ("host", (28.445,), 0.6),
)
NAMES = {"host": "Diane", "guest": "Sheila"}
FILES = {"host": "host.flac", "guest": "guest.flac"}
SAMPLE = "pyannote/audio/sample/"


def _read_sample(wheel: Path | None) -> tuple[np.ndarray, list[tuple[str, float, float, str]]]:
    """The sample's audio (float64 at RATE) and its stm lines ``(speaker, start, end, text)``."""
    if wheel is not None:
        with zipfile.ZipFile(wheel) as z:
            wav, stm = z.read(SAMPLE + "sample.wav"), z.read(SAMPLE + "sample.stm").decode()
    else:
        from importlib.metadata import distribution

        dist = distribution("pyannote.audio")
        wav = Path(str(dist.locate_file(SAMPLE + "sample.wav"))).read_bytes()
        stm = Path(str(dist.locate_file(SAMPLE + "sample.stm"))).read_text()
    with wave.open(io.BytesIO(wav)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
    lines = []
    for line in stm.splitlines():
        _sid, _ch, spk, a, b, *words = line.split()
        lines.append((spk, float(a), float(b), " ".join(words)))
    return x, lines


def _write(x: np.ndarray, dest: Path, *codec: str) -> None:
    """``x`` (float, mono, RATE) into ``dest`` by the project's ffmpeg."""
    args = [ffmpeg.binary(), "-v", "error", "-y", "-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", "-", *codec]
    subprocess.run([*args, str(dest)], input=x.astype("<f4").tobytes(), check=True)


def _lufs(x: np.ndarray, work: Path) -> float:
    """Integrated loudness of ``x`` by ffmpeg's ``ebur128`` filter (not our meter: the truth is measured apart)."""
    _write(x, work / "m.wav")
    return ffmpeg.measure_ebur128(work / "m.wav").integrated_lufs


def _pink(n: int, seed: int) -> np.ndarray:
    """Unit-RMS pink noise (1/f power) from 50 Hz up: a room's air and electronics."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec *= np.where(f > 50, 1 / np.sqrt(np.maximum(f, 1.0)), 0.0)
    y = np.fft.irfft(spec, n)
    return y / np.sqrt(np.mean(y**2))


def _bleed(x: np.ndarray) -> np.ndarray:
    """``x`` as the other microphone hears it: DELAY_MS late, duller (a one-pole low-pass at about 4 kHz), with one
    early reflection (a fractional delay by linear interpolation keeps the delays exact at any rate)."""

    def delayed(y: np.ndarray, ms: float) -> np.ndarray:
        d = ms / 1000 * RATE
        k, frac = int(d), d - int(d)
        z = np.zeros_like(y)
        z[k:] = y[: len(y) - k]
        z[k + 1 :] = (1 - frac) * z[k + 1 :] + frac * y[: len(y) - k - 1]
        return z

    a = np.exp(-2 * np.pi * 4000 / RATE)
    dull = np.empty_like(x)
    acc = 0.0
    for i, v in enumerate(x):  # 30 s at 16 kHz: a plain loop is fast enough for a script run once
        acc = (1 - a) * v + a * acc
        dull[i] = acc
    ms, db = REFLECTION
    return delayed(dull, DELAY_MS) + 10 ** (db / 20) * delayed(dull, DELAY_MS + ms)


def _cut(x: np.ndarray, a: float, b: float) -> np.ndarray:
    y = x[round(a * RATE) : round(b * RATE)].copy()
    n = round(FADE_S * RATE)
    ramp = np.linspace(0.0, 1.0, n)
    y[:n] *= ramp
    y[-n:] *= ramp[::-1]
    return y


def _track_truth(role: str, file_lufs: float) -> dict[str, object]:
    return {
        "file": FILES[role],
        "speaker": NAMES[role],
        "role": role,
        "start_s": 0.0 if role == "host" else GUEST_START_S,
        "speech_lufs": HOST_LUFS if role == "host" else GUEST_LUFS,
        "file_lufs": file_lufs,
        "bleed_db": BLEED_DB[role],
        "bleed_delay_ms": DELAY_MS,
        "noise_lufs": NOISE_LUFS[role],
    }


def build(out: Path, wheel: Path | None) -> dict[str, object]:
    src, stm = _read_sample(wheel)
    by_start = {round(a, 3): (spk, a, b, text) for spk, a, b, text in stm}
    starts = sorted(by_start)
    voices = {"host": np.zeros(0), "guest": np.zeros(0)}
    turns: list[dict[str, object]] = []
    t = LEAD_S
    pieces: list[tuple[str, float, np.ndarray]] = []
    for role, utterances, gap in TURNS:
        t += gap
        a = by_start[utterances[0]][1]
        b = by_start[utterances[-1]][2]
        # Pad into the silence around the utterances, never past the midpoint to a neighbouring utterance.
        i, j = starts.index(round(a, 3)), starts.index(round(utterances[-1], 3))
        before = by_start[starts[i - 1]][2] if i > 0 else 0.0
        after = by_start[starts[j + 1]][1] if j + 1 < len(starts) else len(src) / RATE
        lo, hi = max(a - PAD_S, (a + before) / 2), min(b + PAD_S, (b + after) / 2)
        clip = _cut(src, lo, hi)
        text = " ".join(by_start[u][3] for u in utterances)
        assert all(by_start[u][0] == NAMES[role] for u in utterances), (role, utterances)
        turns.append({"speaker": NAMES[role], "start": round(t + (a - lo), 4), "end": round(t + (b - lo), 4),
                      "text": text})  # fmt: skip
        pieces.append((role, t, clip))
        t += len(clip) / RATE
    n = round((t + TAIL_S + GUEST_START_S) * RATE)
    for role in voices:
        voices[role] = np.zeros(n)
    for role, start, clip in pieces:
        k = round(start * RATE)
        voices[role][k : k + len(clip)] += clip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for role, target in (("host", HOST_LUFS), ("guest", GUEST_LUFS)):
            voices[role] *= 10 ** ((target - _lufs(voices[role], work)) / 20)
        tracks = {}
        for seed, (role, other) in enumerate((("host", "guest"), ("guest", "host")), 1):
            noise = _pink(n, seed)
            noise *= 10 ** ((NOISE_LUFS[role] - _lufs(noise, work)) / 20)
            tracks[role] = voices[role] + 10 ** (BLEED_DB[role] / 20) * _bleed(voices[other]) + noise
        # The guest's recorder started GUEST_START_S later: its file begins there on the session timeline.
        host = tracks["host"][: n - round(GUEST_START_S * RATE)]
        guest = tracks["guest"][round(GUEST_START_S * RATE) :]
        out.mkdir(parents=True, exist_ok=True)
        measured = {}
        for role, x in (("host", host), ("guest", guest)):
            dest = out / FILES[role]
            _write(x, dest, "-sample_fmt", "s16", "-c:a", "flac", "-fflags", "+bitexact", "-flags:a", "+bitexact")
            measured[role] = round(ffmpeg.measure_ebur128(dest).integrated_lufs, 1)
    return {
        "about": "two real voices on two tracks (see scripts/make_hard_multitrack_media.py); times in seconds on "
        "the host track's timeline; lufs by ffmpeg ebur128",
        "source": "pyannote-audio 4.0.7 wheel, pyannote/audio/sample/sample.wav and sample.stm (MIT)",
        "rate": RATE,
        "tracks": [_track_truth(role, measured[role]) for role in ("host", "guest")],
        "turns": turns,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "multitrack-hard")
    p.add_argument("--wheel", type=Path, help="pyannote-audio's wheel (else the installed package is read)")
    args = p.parse_args()
    truth = build(args.out, args.wheel)
    (args.out / "session.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(json.dumps(truth["tracks"], indent=2))


if __name__ == "__main__":
    main()
