"""Benchmark a whole episode, raw recordings to local publish, against its floor and the old transcription mode.

Usage::

    python bench/episode.py [--minutes 60] [--source real|demo] [--noisy] [--modes batched,sequential]
                            [--workdir /tmp/keylime-bench-episode] [--no-limit]

Generates (once, cached in ``--workdir``; never committed) an episode of ``--minutes`` of speech in two recordings
and a copy of the demo show's configs around it (intro, disclaimer, outro, cover; publishing into a local folder).
``--source demo`` loops the demo's two speakers (``configs/raw/episode-258``: part 1 for the first half, part 2 for
the second; espeak-ng speech, 48 kHz mono); ``--source real`` loops the real read speech of tests/data (LibriVox:
``sonnet1_librivox.flac`` for the first half, ``sense_librivox.flac`` for the second) into 24-bit 48 kHz stereo, as a
home recording arrives; ``--noisy`` adds pink room noise about 29 dB under the speech to it (mildly noisy, like most
home recordings). Then, in the same invocation:

1. **floor**: ffmpeg alone decoding the two recordings and encoding the same-length MP3 (the least any master costs);
2. **bare Whisper**: faster-whisper alone, the bundled base (int8), batched (``BatchedInferencePipeline``, its own
   Silero VAD, batch 8) with word timestamps, on the same two recordings (decoded to 16 kHz by faster-whisper);
   floor + bare Whisper is the **limit**, what the parts of ``produce`` cost alone on this machine;
3. one ``produce``-equivalent run per mode (``run_episode`` to ``publish``, a fresh build each time, in a child
   process so its peak RSS is its own): ``batched`` is the default settings (batched faster-whisper with word
   timings, issue 14); ``sequential`` is the mode before issue 14 (``whisper.batch_size = 0``, no word timings).

Prints each stage's time, the total, the ratio to the floor and to the limit (goal: <= 1.1x), the master's renders
and denoise decision, and the peak RSS (the Python process and its largest child). Report ``uptime`` next to the
figures: on a shared machine only the ratios measured in one invocation compare.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg  # noqa: E402

RAW = REPO / "configs" / "raw" / "episode-258"
PARTS = (("part-1-lara.flac", "Lara Varpio"), ("part-2-jason.m4a", "Jason Frank"))
REAL = (REPO / "tests" / "data" / "sonnet1_librivox.flac", REPO / "tests" / "data" / "sense_librivox.flac")
#: Pink noise amplitude of ``--noisy``: its K-weighted level sits about 29 dB under the LibriVox readers' speech
#: (master.json's ``noise_under_speech_db_before``), the "mildly noisy home recording" of the issue.
MILD_NOISE_AMPLITUDE = 0.003
MODES = {
    "batched": {},  # the defaults: whisper.batch_size, word timestamps on
    "sequential": {"whisper.batch_size": 0, "whisper.word_timestamps": False},  # the mode before issue 14
    "batched-1": {"whisper.decoders": 1},  # batched, one decoder with both threads (issue 14's first version)
}


def make_recordings(work: Path, minutes: float, source: str = "demo", noisy: bool = False) -> list[Path]:
    """Two recordings of half of ``minutes`` each (cached in ``work``): the demo parts looped with 1.5 s pauses
    (48 kHz mono FLAC), or the real LibriVox readings looped with 1.5 s pauses into 48 kHz 24-bit stereo FLAC, the
    right channel 2 dB under the left, with ``noisy`` over pink room noise (:data:`MILD_NOISE_AMPLITUDE`)."""
    out = []
    half = minutes * 30
    loop = f"apad=pad_dur=1.5,aloop=loop=-1:size=2147483647,atrim=duration={half},aresample=48000"
    sources = [RAW / name for name, _ in PARTS] if source == "demo" else list(REAL)
    for k, src in enumerate(sources):
        kind = "" if source == "demo" else f"-real{'-noisy' if noisy else ''}"
        dest = work / f"{src.stem}-{minutes:g}min{kind}.flac"
        if not dest.exists():
            if source == "demo":
                chain, fmt = f"[0:a]{loop}[o]", ["-ac", "1"]
            else:
                chain = f"[0:a]{loop},pan=stereo|c0=c0|c1=0.79*c0[s];"
                amp = MILD_NOISE_AMPLITUDE if noisy else 0.0
                # A different noise per recording (seed), the same in both channels' room.
                chain += f"anoisesrc=color=pink:amplitude={amp}:seed={11 + k}:r=48000:d={half},"
                chain += "pan=stereo|c0=c0|c1=c0[n];"
                chain += "[s][n]amix=inputs=2:duration=first:normalize=0[o]"
                fmt = ["-sample_fmt", "s32", "-bits_per_raw_sample", "24"]
            tmp = dest.with_suffix(".part.flac")
            ffmpeg.run(["-v", "error", "-y", "-i", str(src), "-filter_complex", chain, "-map", "[o]", *fmt,
                        "-c:a", "flac", str(tmp)])  # fmt: skip
            tmp.replace(dest)
        out.append(dest)
    return out


def make_configs(work: Path, recordings: list[Path]) -> Path:
    """The demo show's configs, with one episode ``bench`` made of ``recordings``; published into ``work/public``."""
    configs = work / "configs"
    if configs.exists():
        shutil.rmtree(configs)
    shutil.copytree(REPO / "configs", configs, ignore=shutil.ignore_patterns("raw", "episodes"))
    show = (configs / "show.toml").read_text("utf-8")
    (configs / "show.toml").write_text(show.replace('local_dir = "public"', f'local_dir = "{work / "public"}"'))
    demo = (REPO / "configs" / "episodes" / "episode-258.toml").read_text("utf-8")
    head = demo.split("[[chapters]]")[0]  # the demo's chapters are times in its own 3-minute recordings
    rec = ", ".join(f'"{p}"' for p in recordings)
    body = re.sub(r"(?ms)^recordings = \[.*?^\]$", f"recordings = [{rec}]", head, count=1)
    (configs / "episodes").mkdir()
    (configs / "episodes" / "bench.toml").write_text(body + "\n", "utf-8")
    return configs


CHILD = """
import json, resource, sys, time
from pathlib import Path
from keylime_prod.config import load_settings
from keylime_prod.pipeline import run_episode
overrides = json.loads(sys.argv[3])
s = load_settings(Path(sys.argv[1]), Path(sys.argv[2]), **overrides)
t0 = time.perf_counter()
r = run_episode(s, "bench")
total = time.perf_counter() - t0
t = r.artefacts.get("transcribe")
m = r.artefacts.get("master")
den = m.summary()["denoise"] if m else None
master = {"renders": m.details.renders, "steps": m.details.seconds, "denoise": den,
          "parts": [p.denoise.get("decision") for p in m.details.parts],
          "lufs": m.output_loudness.integrated_lufs, "tp": m.output_loudness.true_peak_dbtp} if m else None
print(json.dumps({"stages": {x.name: x.seconds for x in r.stages}, "total": total, "master": master,
                  "audio": t.audio_seconds if t else 0,
                  "cpu": sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                             for f in ("ru_utime", "ru_stime")),
                  "self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

BARE_WHISPER = """
import json, resource, sys, time
from pathlib import Path
from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio
from keylime_prod.transcript import weights
ref = weights.resolve("base", cache_dir=weights.default_cache_dir())
t0 = time.perf_counter()
model = WhisperModel(str(ref.ct2_dir), device="cpu", compute_type="int8", cpu_threads=2)
pipe = BatchedInferencePipeline(model)
words = 0
for path in sys.argv[1:]:
    segments, _ = pipe.transcribe(decode_audio(path), language="en", batch_size=8, word_timestamps=True)
    words += sum(len(s.words or ()) for s in segments)
print(json.dumps({"total": time.perf_counter() - t0, "words": words,
                  "self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

FLOOR = """
import json, resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print(json.dumps({"children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def run_json(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, object]]:
    """Run a child; return its wall time and the JSON on its last stdout line."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {proc.stderr.decode()[-3000:]}")
    return wall, json.loads(proc.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    """Make the episode, run the floor and each mode, print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/keylime-bench-episode"))
    ap.add_argument("--modes", default="batched", help=f"comma-separated, from: {', '.join(MODES)}")
    ap.add_argument("--source", choices=["real", "demo"], default="real", help="speech to loop (see above)")
    ap.add_argument("--noisy", action="store_true", help="--source real over pink room noise ~29 dB under the speech")
    ap.add_argument("--no-limit", action="store_true", help="skip the bare-Whisper run (no limit, no ratio to it)")
    args = ap.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    recordings = make_recordings(work, args.minutes, args.source, args.noisy)
    configs = make_configs(work, recordings)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    print(f"episode: {args.minutes:g} min of speech in 2 recordings ({', '.join(p.name for p in recordings)})")
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min average, {os.cpu_count()} CPUs)")

    graph = "".join(f"[{i}:a]aresample=44100:resampler=soxr[a{i}];" for i in range(len(recordings)))
    graph += "".join(f"[a{i}]" for i in range(len(recordings))) + f"concat=n={len(recordings)}:v=0:a=1[o]"
    inputs = [a for p in recordings for a in ("-i", str(p))]
    floor_cmd = [sys.executable, "-c", FLOOR, ffmpeg.binary(), "-hide_banner", "-nostdin", "-v", "error", "-y",
                 *inputs, "-filter_complex", graph, "-map", "[o]", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k",
                 str(work / "floor.mp3")]  # fmt: skip
    floor_s, _ = run_json(floor_cmd, env)
    print(f"floor (ffmpeg decode + libmp3lame 128k): {floor_s:.1f} s")
    limit = None
    if not args.no_limit:
        bare_s, bare = run_json([sys.executable, "-c", BARE_WHISPER, *map(str, recordings)], env)
        limit = floor_s + bare_s
        print(
            f"bare Whisper (faster-whisper base int8, batched 8, word timestamps): {bare_s:.1f} s "
            f"({bare['words']} words, peak RSS {int(bare['self_kib']) / 1024:.0f} MiB)"  # type: ignore[call-overload]
        )
        print(f"limit (floor + bare Whisper): {limit:.1f} s")

    results: dict[str, dict[str, object]] = {}
    for mode in args.modes.split(","):
        build = work / f"build-{mode}"
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(work / "public", ignore_errors=True)
        wall, r = run_json([sys.executable, "-c", CHILD, str(configs), str(build), json.dumps(MODES[mode])], env)
        r["wall"] = wall
        results[mode] = r
        stages = r["stages"]
        assert isinstance(stages, dict)
        times = "  ".join(f"{k} {v:.1f}" for k, v in stages.items())
        to_limit = f"{float(r['total']) / limit:.2f}x limit, " if limit else ""  # type: ignore[arg-type]
        print(
            f"{mode:10} total {r['total']:6.1f} s ({to_limit}{float(r['total']) / floor_s:.2f}x floor; "
            f"process {wall:.1f} s)  "
            f"{times}  CPU {float(r['cpu']):.0f} s  peak RSS {int(r['self_kib']) / 1024:.0f} MiB (python), "  # type: ignore[call-overload]
            f"{int(r['children_kib']) / 1024:.0f} MiB (largest child)"  # type: ignore[call-overload]
        )
        print(f"{'':10} master: {r['master']}")
    if {"batched", "sequential"} <= results.keys():
        b, s = results["batched"]["stages"], results["sequential"]["stages"]
        assert isinstance(b, dict) and isinstance(s, dict)
        print(
            f"transcription: sequential {s['transcribe']:.1f} s / batched {b['transcribe']:.1f} s = "
            f"{s['transcribe'] / b['transcribe']:.2f}x (goal >= 2x); whole episode: sequential "
            f"{results['sequential']['total']:.1f} s, batched {results['batched']['total']:.1f} s (goal <= 150 s)"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
