#!/usr/bin/env python3
"""Make the committed test material of the speech leveler and the denoiser (issue 9) under ``tests/data/``.

* ``two_voices.flac``: a "remote interview" in one mono file. The host is real speech (phrases of
  ``tests/data/jfk.wav``), the guest an espeak-ng voice 15 LU quieter, alternating, with a room tone (pink noise at
  ``ROOM_DBFS``) under everything as a real room would have. ``two_voices.json`` says where each turn is (in the
  file's own seconds) and what each turn measures (ffmpeg ``ebur128``), so tests can measure the same turns on the
  published MP3.
* ``noisy_speech.flac``: ``jfk.wav`` with pink noise at 12 dB SNR (RMS of the speech over RMS of the noise) and
  60 Hz mains hum with harmonics; ``jfk.wav`` itself is the clean reference (same length, sample-aligned).

Needs espeak-ng (``apt-get install espeak-ng``) and the project's ffmpeg; only to *regenerate* the files: tests and CI
use the committed ones. Deterministic (fixed seeds, bitexact FLAC) up to espeak-ng's version (1.51 made them).

Usage (from the repository root)::

    python scripts/make_audio_test_media.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (REPO, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from make_demo_media import _decode_mono, _encode, _pcm_in, espeak  # noqa: E402

from keylime_prod import ffmpeg  # noqa: E402

RATE = 16000
JFK = REPO / "tests" / "data" / "jfk.wav"
ROOM_DBFS = -60.0  # room tone under both voices (RMS, pink)
GUEST_OFFSET_LU = -15.0  # the quiet remote guest, relative to the host
PAUSE_S = 0.8
SNR_DB = 12.0
HUM_HZ = 60.0
# Mains hum as a transformer or a ground loop makes it: the fundamental and a few harmonics, odd ones stronger.
HUM_HARMONICS_DBFS = {1: -32.0, 2: -40.0, 3: -36.0, 4: -46.0, 5: -42.0}

# Host phrases cut from jfk.wav at its own pauses (seconds).
HOST_CUTS = [(0.0, 4.35), (5.3, 7.6), (8.05, 11.0)]
GUEST_LINES = [
    "Thank you. I think the assessment data tells a different story.",
    "We saw the same pattern in our residents, especially in the first year.",
]


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink (1/f power) noise, shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return (x / np.sqrt(np.mean(x**2))).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-20))


def write_flac(dest: Path, x: np.ndarray) -> Path:
    peak = float(np.abs(x).max())
    if peak >= 1.0:
        raise SystemExit(f"{dest.name}: would clip (peak {peak:.2f})")
    args = [*_pcm_in(RATE, 1), "-c:a", "flac", "-sample_fmt", "s16", "-compression_level", "12"]
    return _encode(dest, args, "flac", input_bytes=x.astype("<f4").tobytes())


def lufs_of(x: np.ndarray, work: Path) -> float:
    wav = work / "probe.flac"
    write_flac(wav, x)
    return ffmpeg.measure_ebur128(wav).integrated_lufs


def two_voices(out: Path, work: Path, rng: np.random.Generator) -> None:
    host = _decode_mono(JFK, RATE)
    host_lufs = lufs_of(host, work)
    guests = []
    for i, line in enumerate(GUEST_LINES):
        g = _decode_mono(espeak(line, "en-us+f3", work / f"g{i}.wav", wpm=165, pitch=55), RATE)
        g = g[np.argmax(np.abs(g) > 1e-3) :]
        g = g[: len(g) - np.argmax(np.abs(g[::-1]) > 1e-3)]
        guests.append(g * np.float32(10 ** ((host_lufs + GUEST_OFFSET_LU - lufs_of(g, work)) / 20)))
    pause = np.zeros(int(PAUSE_S * RATE), np.float32)
    pieces: list[np.ndarray] = [pause]
    turns: list[dict[str, object]] = []
    pos = len(pause)
    order = [("host", host[int(a * RATE) : int(b * RATE)]) for a, b in HOST_CUTS]
    seq = [order[0], ("guest", guests[0]), order[1], ("guest", guests[1]), order[2]]
    for who, x in seq:
        turns.append({"speaker": who, "start": round(pos / RATE, 4), "end": round((pos + len(x)) / RATE, 4)})
        pieces += [x, pause]
        pos += len(x) + len(pause)
    y = np.concatenate(pieces)
    y = y + pink(len(y), rng) * np.float32(10 ** (ROOM_DBFS / 20))
    dest = write_flac(out / "two_voices.flac", y)
    for t in turns:
        seg = y[int(float(t["start"]) * RATE) : int(float(t["end"]) * RATE)]  # type: ignore[arg-type]
        t["lufs"] = round(lufs_of(seg, work), 2)
    meta = {
        "about": "turns of two_voices.flac (made by scripts/make_audio_test_media.py); lufs: ffmpeg ebur128",
        "rate": RATE,
        "room_tone_dbfs": ROOM_DBFS,
        "pauses_s": PAUSE_S,
        "turns": turns,
    }
    (out / "two_voices.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{dest}: {len(y) / RATE:.1f} s, turns {[t['lufs'] for t in turns]}")


def noisy_speech(out: Path, rng: np.random.Generator) -> None:
    clean = _decode_mono(JFK, RATE)
    n = len(clean)
    noise = pink(n, rng) * np.float32(10 ** ((rms_db(clean) - SNR_DB) / 20))
    t = np.arange(n) / RATE
    hum = sum(
        np.sqrt(2) * 10 ** (db / 20) * np.sin(2 * np.pi * HUM_HZ * k * t + k) for k, db in HUM_HARMONICS_DBFS.items()
    )
    y = clean + noise + np.asarray(hum, np.float32)
    dest = write_flac(out / "noisy_speech.flac", y)
    print(f"{dest}: speech {rms_db(clean):.1f} dBFS RMS, noise {rms_db(noise):.1f}, hum {rms_db(hum):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        two_voices(args.out, Path(tmp), np.random.default_rng(9))
        noisy_speech(args.out, np.random.default_rng(12))


if __name__ == "__main__":
    main()
