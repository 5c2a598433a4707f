"""Benchmark a two-track session (issue 10, item 7) against its floors, in one invocation.

Usage::

    python bench/multitrack.py [--minutes 60] [--workdir /tmp/keylime-bench-mt] [--no-transcribe]

Generates (once, cached in ``--workdir``; never committed) a ``--minutes`` long two-track session at 48 kHz, 24-bit,
mono per track, from the committed episode-258 speech: "Lara" (part 1, 93.6 s) then "Jason" (part 2, 59.1 s) taking
turns, over and over. Each track carries its speaker, the other's bleed 20 dB down and its own room noise; the second
track starts 0.4 s late. ``mixed.wav`` is the same session summed into one file (what a producer mixing by hand, or
a single recording of the room, would hand us). Then, each step in a child process (peak RSS its own):

1. **floor**: ffmpeg alone decoding ``mixed.wav`` and encoding the same MP3 (``aresample=44100:soxr``, libmp3lame);
2. **multitrack master**: ``audio.master_tracks`` on the two tracks (align, measure, gate, level, mix, then the
   whole master path with the demo show's intro, disclaimer and outro). Target: <= 2x the floor;
3. **single-file master**: ``audio.master`` on ``mixed.wav`` (what the same episode costs as one recording);
4. unless ``--no-transcribe``: **transcribe the mixed file once** (``transcript.transcribe`` on the single-file
   master) against **per-track transcription** (the multitrack master, each track's own speech regions). Target:
   <= 1.2x.

Prints wall times, ratios and peak RSS; run ``uptime`` next to it (the figures in docs/performance.md say the load).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg  # noqa: E402
from keylime_prod.config import load_settings  # noqa: E402

RAW = REPO / "configs" / "raw" / "episode-258"
RATE = 48000
LATE_S = 0.4  # the second track starts this much after the first


def _decode(path: Path) -> np.ndarray:
    raw = ffmpeg.run(ffmpeg.decode_args(path, sample_rate=RATE, channels=1), where=path).stdout
    return np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4").astype(np.float64)


def _write(dest: Path, minutes: float, cycle: np.ndarray, skip_s: float = 0.0) -> None:
    """``cycle`` looped to ``minutes`` (after skipping ``skip_s``), as 48 kHz 24-bit mono WAV."""
    if dest.exists():
        return
    tmp_cycle = dest.with_suffix(".cycle.wav")
    ffmpeg.run(
        ["-v", "error", "-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", "-", "-c:a", "pcm_f32le", "-y",
         str(tmp_cycle)],
        input_bytes=cycle.astype("<f4").tobytes(),
    )  # fmt: skip
    tmp = dest.with_suffix(".part.wav")
    ffmpeg.run(
        ["-v", "error", "-stream_loop", "-1", "-i", str(tmp_cycle), "-ss", f"{skip_s:.3f}", "-t", f"{minutes * 60:.3f}",
         "-c:a", "pcm_s24le", "-y", str(tmp)],
    )  # fmt: skip
    tmp.replace(dest)
    tmp_cycle.unlink()


def make_session(work: Path, minutes: float) -> tuple[Path, Path, Path]:
    """The two tracks and the mixed file (cached)."""
    a_path = work / f"track-a-{minutes:g}min.wav"
    b_path = work / f"track-b-{minutes:g}min.wav"
    m_path = work / f"mixed-{minutes:g}min.wav"
    if a_path.exists() and b_path.exists() and m_path.exists():
        return a_path, b_path, m_path
    lara, jason = _decode(RAW / "part-1-lara.flac"), _decode(RAW / "part-2-jason.m4a")
    n = len(lara) + len(jason)
    a = np.zeros(n)
    b = np.zeros(n)
    a[: len(lara)] = lara
    b[len(lara) :] = jason
    a /= np.sqrt(np.mean(lara**2))
    b /= np.sqrt(np.mean(jason**2))
    rng = np.random.default_rng(10)
    noise = [np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same") * 10 ** (-50 / 20) for _ in range(2)]
    track_a = (a + 0.1 * b + noise[0]) * 0.08
    track_b = (b + 0.1 * a + noise[1]) * 0.05  # recorded quieter
    _write(a_path, minutes, track_a)
    _write(b_path, minutes, track_b, skip_s=LATE_S)  # its recorder started LATE_S into the session
    _write(m_path, minutes, (a + b) * 0.06)
    return a_path, b_path, m_path


CHILD = """
import json, resource, sys, time
from pathlib import Path
from keylime_prod import audio, models, transcript
from keylime_prod.audio.artefact import Master
from keylime_prod.config import EpisodeConfig, load_settings
s = load_settings(Path(sys.argv[1]))
what, build = sys.argv[2], Path(sys.argv[3])
files = [Path(p) for p in sys.argv[4:]]
people = [{"name": "Lara"}, {"name": "Jason"}]
t0 = time.perf_counter()
out = {}
if what == "master-tracks":
    ep = EpisodeConfig(id="bench", number=1, title="bench", publish_date="2026-01-01", hosts=people, summary="b",
                       tracks=[{"file": files[0], "speaker": "Lara"}, {"file": files[1], "speaker": "Jason"}])
    m = audio.master_tracks(ep, s.show.audio, s.show.assets, build)
    out = {"lufs": m.output_loudness.integrated_lufs, "tp": m.output_loudness.true_peak_dbtp,
           "offset": m.tracks[1].offset_s, "confidence": m.tracks[1].confidence, "seconds": m.details.seconds}
elif what == "master":
    ep = EpisodeConfig(id="bench", number=1, title="bench", publish_date="2026-01-01", hosts=people, summary="b",
                       recordings=files)
    m = audio.master(ep, s.show.audio, s.show.assets, build)
    out = {"lufs": m.output_loudness.integrated_lufs, "tp": m.output_loudness.true_peak_dbtp}
else:  # transcribe: the master in ``build``; per track when it has tracks
    m = Master.load(build / "master.json")
    kw = {"tracks": files} if files else {}
    t = transcript.transcribe(m, s.show.whisper, build / "t", cache_dir=models.default_cache_dir(), **kw)
    out = {"speech_s": t.speech_seconds, "segments": len(t.segments)}
out["wall"] = time.perf_counter() - t0
sys.stderr.write(json.dumps(out) + "\\n")
print(json.dumps({"self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def child(what: str, build: Path, files: list[Path]) -> tuple[float, dict[str, object], int]:
    """Run one step in a child; return (wall seconds, its result, peak RSS KiB of the Python process)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", CHILD, str(REPO / "configs"), what, str(build), *map(str, files)]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(proc.stderr.decode()[-3000:])
    rss = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return wall, json.loads(proc.stderr.decode().strip().splitlines()[-1]), int(rss["self_kib"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/keylime-bench-mt"))
    ap.add_argument("--no-transcribe", action="store_true")
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    a_path, b_path, mixed = make_session(work, args.minutes)
    print(f"session: {args.minutes:g} min, two tracks (48 kHz 24-bit mono), second {LATE_S} s late; {mixed.name}")
    s = load_settings(REPO / "configs").show.audio

    floor_mp3 = work / "floor.mp3"
    t0 = time.perf_counter()
    ffmpeg.run(
        ["-v", "error", "-y", "-i", str(mixed), "-af", f"aresample={s.sample_rate}:resampler=soxr",
         "-ac", str(s.channels), "-c:a", "libmp3lame", "-b:a", f"{s.bitrate_kbps}k", "-q:a", "2", str(floor_mp3)],
    )  # fmt: skip
    floor = time.perf_counter() - t0
    print(f"floor (ffmpeg decode mixed.wav + libmp3lame):  {floor:7.1f} s")

    mt_build, one_build = work / "build-tracks", work / "build-mixed"
    mt_s, mt, mt_rss = child("master-tracks", mt_build, [a_path, b_path])
    print(
        f"multitrack master (2 tracks):                 {mt_s:7.1f} s   {mt_s / floor:.2f}x floor (target <= 2x)   "
        f"peak RSS {mt_rss / 1024:.0f} MiB; {mt['lufs']:.2f} LUFS / {mt['tp']:.2f} dBTP; offset found "
        f"{mt['offset']:+.4f} s (true {LATE_S:+.4f}), confidence {mt['confidence']:.0f}"
    )
    steps = mt["seconds"]
    assert isinstance(steps, dict)
    print(f"  of which the mix (align, gate, level, sum): {steps['mix']:.1f} s = {steps['mix'] / floor:.2f}x floor")
    print(f"  steps: {steps}")
    one_s, one, one_rss = child("master", one_build, [mixed])
    print(
        f"single-file master (mixed.wav):               {one_s:7.1f} s   {one_s / floor:.2f}x floor   "
        f"peak RSS {one_rss / 1024:.0f} MiB; {one['lufs']:.2f} LUFS / {one['tp']:.2f} dBTP"
    )
    if args.no_transcribe:
        return
    t1, r1, rss1 = child("transcribe", one_build, [])
    print(f"transcribe the mixed file once:               {t1:7.1f} s   speech {r1['speech_s']} s   {rss1 >> 10} MiB")
    t2, r2, rss2 = child("transcribe", mt_build, [a_path, b_path])
    print(
        f"transcribe per track (own speech regions):    {t2:7.1f} s   speech {r2['speech_s']} s   {rss2 >> 10} MiB"
        f"   {t2 / t1:.2f}x (target <= 1.2x)"
    )


if __name__ == "__main__":
    main()
