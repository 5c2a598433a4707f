"""Benchmark the mastering stage against its floor: ffmpeg alone decoding the same input and encoding the same MP3.

Usage::

    python bench/master.py [--minutes 60] [--workdir /tmp/keylime-bench]

Generates (once, cached in ``--workdir``; never committed) a ``--minutes`` long 48 kHz 24-bit stereo speech-like
recording: tests/data/jfk.wav looped, each pass at a different level and stereo balance, over pink room noise.
Then, in the same invocation:

1. **floor**: ``ffmpeg -i input.wav -af aresample=44100:soxr -c:a libmp3lame -b:a 128k`` (decode + the same encode);
2. **master**: ``keylime_prod.audio.master`` on the same file with the demo show's settings (intro, disclaimer and
   outro included), in a child process so its peak RSS is its own.

Prints wall times, the ratio to the floor, the peak RSS of the Python process and of its largest ffmpeg child, and
the loudness of the result measured by ffmpeg's ebur128. Target (issue 2): ratio <= 1.2, peak RSS <= 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg  # noqa: E402
from keylime_prod.audio.artefact import MasteredDetails  # noqa: E402
from keylime_prod.config import load_settings  # noqa: E402

JFK = REPO / "tests" / "data" / "jfk.wav"
DEMO = REPO / "configs" / "raw" / "episode-258" / "part-1-lara.flac"


def make_input(path: Path, minutes: float, transients: bool = False, source: Path = JFK, noisy: bool = False) -> None:
    """A long speech-like stereo recording: ``source`` looped with slowly varying level and panning, plus room
    noise; with ``transients``, a 3 ms 2 kHz burst at 0.9 of full scale every 2.5 s (so the limiter has work to do);
    with ``noisy``, pink noise about 12 dB under the speech and 60 Hz mains hum with harmonics (issue 9)."""
    if path.exists():
        return
    seconds = minutes * 60
    speech_out = "[m]" if transients else "[o]"
    noise_amp, hum = (0.03, True) if noisy else (0.001, False)
    chain = (
        f"[0:a]aloop=loop=-1:size=2147483647,atrim=duration={seconds},aresample=48000,"
        "volume='0.35+0.25*sin(2*PI*t/97)':eval=frame,"
        "pan=stereo|c0=0.9*c0|c1=0.7*c0[s];"
        f"anoisesrc=color=pink:amplitude={noise_amp}:seed=11:r=48000:d={seconds},pan=stereo|c0=c0|c1=c0[n0];"
    )
    if hum:
        tones = "+".join(f"{a}*sin(2*PI*{60 * k}*t)" for k, a in ((1, 0.025), (2, 0.008), (3, 0.016), (5, 0.008)))
        chain += f"aevalsrc='{tones}':s=48000:d={seconds},pan=stereo|c0=c0|c1=c0[h];"
        chain += "[n0][h]amix=inputs=2:duration=first:normalize=0[n];"
    else:
        chain += "[n0]anull[n];"
    chain += f"[s][n]amix=inputs=2:duration=first:normalize=0{speech_out}"
    if transients:
        chain += (
            f";aevalsrc='if(lt(mod(t\\,2.5)\\,0.003)\\,0.9*sin(2*PI*2000*t)\\,0)':s=48000:d={seconds},"
            "pan=stereo|c0=c0|c1=c0[c];[m][c]amix=inputs=2:duration=first:normalize=0[o]"
        )
    tmp = path.with_suffix(".part.wav")
    subprocess.run(
        [ffmpeg.binary(), "-hide_banner", "-v", "error", "-y", "-i", str(source), "-filter_complex", chain,
         "-map", "[o]", "-c:a", "pcm_s24le", str(tmp)],
        check=True,
    )  # fmt: skip
    tmp.replace(path)


def timed(argv: list[str]) -> tuple[float, int, int]:
    """Run ``argv``; return (wall seconds, its own peak RSS in KiB, largest descendant's peak RSS in KiB).

    The child reports its own ``RUSAGE_SELF`` and ``RUSAGE_CHILDREN`` maxima as JSON on its last stdout line when
    it is a Python master run; for a plain command, wait4's rusage gives the peak of the command itself.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {argv[:3]}...\n{err.decode()[-2000:]}")
    try:
        rss = json.loads(out.decode().strip().splitlines()[-1])
        return wall, int(rss["self_kib"]), int(rss["children_kib"])
    except (ValueError, IndexError, KeyError):
        return wall, 0, 0


CHILD = """
import json, resource, sys
from pathlib import Path
from keylime_prod import audio
from keylime_prod.config import EpisodeConfig, load_settings
s = load_settings(Path(sys.argv[1]))
a = s.show.audio.model_validate({**s.show.audio.model_dump(), **json.loads(sys.argv[4])})
ep = EpisodeConfig(id="bench", number=1, title="bench", publish_date="2026-01-01", hosts=[{"name": "Host"}],
                   summary="bench", recordings=[Path(sys.argv[2])])
m = audio.master(ep, a, s.show.assets, Path(sys.argv[3]))
sys.stderr.write(json.dumps({"lufs": m.output_loudness.integrated_lufs, "tp": m.output_loudness.true_peak_dbtp,
                             "method": m.method, "duration": m.duration, "renders": m.details.renders,
                             "seconds": m.details.seconds, "leveler": m.summary()["leveler"],
                             "denoise": m.summary()["denoise"]}) + "\\n")
print(json.dumps({"self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

FLOOR = """
import json, resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print(json.dumps({"self_kib": 0, "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def corpus(work: Path) -> None:
    """Master every recording in tests/data with the default settings; print how many renders each took, what the
    plan predicted against what the verifier measured, and the denoise decision (docs/audio.md, "One render")."""
    from keylime_prod import audio
    from keylime_prod.config import Assets, AudioSettings, EpisodeConfig

    data = REPO / "tests" / "data"
    names = sorted(p for p in data.rglob("*") if p.suffix in (".wav", ".flac"))
    second = 0
    for path in names:
        ep = EpisodeConfig(id="corpus", number=1, title="corpus", publish_date="2026-01-01",
                           hosts=[{"name": "Host"}], summary="corpus", recordings=[path])  # fmt: skip
        m = audio.master(ep, AudioSettings(), Assets(), work / "corpus" / path.stem)
        assert isinstance(m.details, MasteredDetails)
        second += m.details.renders > 1
        history = "; ".join(f"{r.planned_lufs:+.2f}->{r.lufs:+.2f} LUFS {r.true_peak_dbtp:+.2f} dBTP"
                            for r in m.details.render_history)  # fmt: skip
        print(f"{path.relative_to(data)}: {m.details.renders} render(s) [{history}] "
              f"denoise: {m.details.parts[0].denoise.get('engine')}")  # fmt: skip
    print(f"{second} of {len(names)} recordings needed a second render")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/keylime-bench"))
    ap.add_argument("--transients", action="store_true", help="add loud bursts so the true-peak limiter must work")
    source_help = (
        "speech to loop: tests/data/jfk.wav (a 1961 recording: hiss 25 dB under the speech and a 60 Hz line, so "
        "`auto` denoises it) or the demo's first raw recording (measured clean)"
    )
    ap.add_argument("--source", choices=["jfk", "demo"], default="jfk", help=source_help)
    ap.add_argument("--noisy", action="store_true", help="pink noise ~12 dB under the speech + 60 Hz hum")
    ap.add_argument("--plain", action="store_true", help="leveler and denoiser off (the mastering of issue 2)")
    ap.add_argument("--corpus", action="store_true", help="only: master every recording in tests/data, count renders")
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    if args.corpus:
        corpus(work)
        return
    kind = ("-transients" if args.transients else "") + ("-noisy" if args.noisy else "")
    kind += "-demo" if args.source == "demo" else ""
    src = work / f"speech-{args.minutes:g}min-48k-24bit-stereo{kind}.wav"
    print(f"input: {src} ({args.minutes:g} min, 48 kHz, 24-bit, stereo{', ' + kind[1:] if kind else ''})")
    source = DEMO if args.source == "demo" else JFK
    make_input(src, args.minutes, args.transients, source, args.noisy)
    updates = {"leveler": {"enabled": False}, "denoise": {"mode": "off"}} if args.plain else {}
    settings = load_settings(REPO / "configs")
    a = settings.show.audio
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    floor_mp3 = work / "floor.mp3"
    floor_cmd = [
        sys.executable, "-c", FLOOR, ffmpeg.binary(), "-hide_banner", "-nostdin", "-v", "error", "-y",
        "-i", str(src), "-af", f"aresample={a.sample_rate}:resampler=soxr", "-ac", str(a.channels),
        "-c:a", "libmp3lame", "-b:a", f"{a.bitrate_kbps}k", "-q:a", "2", str(floor_mp3),
    ]  # fmt: skip
    floor_s, _, floor_rss = timed(floor_cmd)
    print(
        f"floor (ffmpeg decode + libmp3lame {a.bitrate_kbps}k): {floor_s:7.1f} s   peak RSS {floor_rss / 1024:6.0f} MiB"
    )

    build = work / "build"
    proc_argv = [sys.executable, "-c", CHILD, str(REPO / "configs"), str(src), str(build), json.dumps(updates)]
    t0 = time.perf_counter()
    proc = subprocess.run(proc_argv, capture_output=True, env=env)
    ours_s = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(proc.stderr.decode()[-3000:])
    rss = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    result = json.loads(proc.stderr.decode().strip().splitlines()[-1])
    print(
        f"master (measure, calibrate, render, verify):    {ours_s:7.1f} s   peak RSS {rss['self_kib'] / 1024:6.0f} MiB"
        f" (python), {rss['children_kib'] / 1024:.0f} MiB (largest ffmpeg child)"
    )
    print(f"ratio to floor: {ours_s / floor_s:.2f}x   (target <= 1.2x)")
    print(f"peak RSS: {rss['self_kib'] / 1024:.0f} MiB   (target <= 1024 MiB)")
    print(f"steps (s): {result['seconds']}")
    print(f"leveler: {result['leveler']}")
    print(f"denoise: {result['denoise']}")
    mp3 = build / "bench.mp3"
    check = ffmpeg.measure_ebur128(mp3)
    print(
        f"result: {result['duration'] / 60:.1f} min, ours {result['lufs']:.2f} LUFS / {result['tp']:.2f} dBTP "
        f"({result['method']}, {result['renders']} render(s)); ffmpeg ebur128: {check.integrated_lufs:.1f} LUFS / "
        f"{check.true_peak_dbtp:.1f} dBTP"
    )


if __name__ == "__main__":
    main()
