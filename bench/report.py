"""What the production report adds to a 60-minute episode: ``report.write_report`` in a fresh process.

Makes the inputs a 60-minute episode has (master.json with two recordings, or ``--tracks N`` tracks of a multitrack
session, ``loudness.json`` at a 100 ms hop: 4 x 36 000 blocks, ``words.json`` with 9 000 words, 12 chapters, a
20-term glossary, ``cuts.json`` with 200 candidates), then alternates rounds of

* report:   a fresh interpreter that imports keylime_prod.report (numpy, matplotlib) and writes report.html;
* baseline: a fresh interpreter that imports keylime_prod.audio.artefact (numpy) and loads master.json, the part of a
            ``produce`` run that exists anyway;

and prints the median wall and CPU seconds of each, the difference (what the report adds), and each side's peak
RSS. On a loaded machine the CPU seconds are the steadier figure.

    python bench/report.py                # 60 minutes, 5 rounds
    python bench/report.py --minutes 120 --rounds 3
    python bench/report.py --tracks 3      # a three-track session
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from upload import run_child  # noqa: E402

from keylime_prod.edit.artefact import Candidate, Cuts, write_cuts  # noqa: E402

REPORT = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from keylime_prod import report
from keylime_prod.audio.artefact import Master
from keylime_prod.chapters.artefact import ChapterMark
from keylime_prod.edit.artefact import read_cuts
d = Path(sys.argv[1])
m = Master.load(d / "master.json")
marks = [ChapterMark(f"Chapter {i}", i * m.duration / 12, (i + 1) * m.duration / 12) for i in range(12)]
r = report.write_report(
    m, d / "report.html", title="Bench", target_lufs=-16.0, ceiling_dbtp=-1.0,
    curves=report.load_curves(d / "loudness.json"), words=report.load_words(d / "words.json"),
    chapters=marks, glossary=[f"Term{i}" for i in range(20)], cuts=read_cuts(d / "cuts.json"),
)
print(time.perf_counter() - t0, r.seconds, time.process_time())
"""
BASELINE = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from keylime_prod.audio.artefact import Master
Master.load(Path(sys.argv[1]) / "master.json")
print(time.perf_counter() - t0, 0.0, time.process_time())
"""


def make_inputs(folder: Path, minutes: float, tracks: int = 0) -> None:
    """master.json, loudness.json, words.json and cuts.json of an episode ``minutes`` long (speech-like levels,
    seeded); with ``tracks``, a multitrack session whose speakers take turns of 5-20 s."""
    rnd = random.Random(258)
    dur = minutes * 60
    half = dur / 2
    master = {
        "schema": "keylime-prod/master/1", "episode_id": "bench", "mp3": "bench.mp3", "report": "master.json",
        "duration": dur, "sample_rate": 44100, "channels": 2, "bitrate_kbps": 128, "audio_sha256": "0" * 64,
        "segments": [
            {"name": "intro", "start": 0.0, "end": 15.0},
            {"name": "body", "start": 13.5, "end": dur - 30},
            {"name": "disclaimer", "start": dur - 29.5, "end": dur - 15},
            {"name": "outro", "start": dur - 16, "end": dur},
        ],
        "input_loudness": {"integrated_lufs": -20.1, "lra_lu": 8.0, "true_peak_dbtp": -1.2, "sample_peak_dbfs": -1.3},
        "output_loudness": {"integrated_lufs": -16.0, "lra_lu": 3.1, "true_peak_dbtp": -1.2, "sample_peak_dbfs": -1.3},
        "method": "limiter", "gain_db": 4.1,
        "pieces": [
            {"name": "part-1", "start": 13.5, "end": half, "source_start": 1.0, "sources": ["a.flac"]},
            {"name": "part-2", "start": half, "end": dur - 30, "source_start": half, "sources": ["b.m4a"]},
        ],
        "details": {
            "parts": [
                {"file": f, "input_lufs": lufs, "input_true_peak_dbtp": -3.0, "input_sample_peak_dbfs": -3.2,
                 "input_lra_lu": 6.0, "gain_db": gain, "trimmed_start_s": 0.5, "trimmed_end_s": 0.5,
                 "leveler": {"note": "off"}, "denoise": {"decision": "off"}, "dc": {}}
                for f, lufs, gain in (("a.flac", -24.0, 8.0), ("b.m4a", -17.0, 1.0))
            ],
            "assets": {},
            "body_output": {"integrated_lufs": -16.0, "lra_lu": 3.0},
            "codec_calibration": {"loudness_lu": 0.01, "true_peak_db": 0.2},
            "leveler": {"stretches": 120, "stretches_levelled": 30, "gain_min_db": -3.0, "gain_max_db": 4.0,
                        "turn_spread_before_lu": 2.5, "turn_spread_after_lu": 0.9},
            "denoise": {"engine": "none", "recordings_denoised": 0, "noise_under_speech_db_before": 40.0,
                        "noise_under_speech_db_after": None, "hum_line_db_before": None, "hum_line_db_after": None,
                        "dc_offsets_removed": 0},
            "limiter": {"ceiling_dbtp": -1.3, "max_reduction_db": -1.4, "limited_seconds": 0.5},
            "renders": 1,
            "render_history": [{"planned_lufs": -16.0, "lufs": -16.0, "true_peak_dbtp": -1.2}],
            "seconds": {"render+verify": 30.0},
            "mp3": {"codec": "mp3", "sample_rate": 44100, "channels": 2},
        },
    }  # fmt: skip
    if tracks:
        turns: list[list[list[float]]] = [[] for _ in range(tracks)]
        t = 0.0
        while t < dur - 60:
            n = rnd.uniform(5, 20)
            turns[rnd.randrange(tracks)].append([round(t, 2), round(t + n, 2)])
            t += n
        master["tracks"] = [
            {"file": f"track-{i}.flac", "speaker": f"Speaker {i}", "start_s": 0.1 * i, "offset_s": 0.1 * i,
             "offset_source": "auto" if i else "reference", "confidence": 40.0 if i else 0.0,
             "speech_lufs": -20.0 - 3 * i, "gain_db": 4.0 + 3 * i, "own_speech_s": sum(b - a for a, b in turns[i]),
             "bleed_reduction_db": 28.0, "regions": turns[i],
             "processing": {"noise_floor_lufs": -65.0, "noise_under_speech_db": 40.0, "hum_hz": None,
                            "hum_line_db": 6.0, "denoise": "clean", "engine": None,
                            "leveler": {"note": "", "stretches": 40, "stretches_levelled": 12,
                                        "gain_range_db": [-2.0, 3.0], "turn_spread_before_lu": 2.0,
                                        "turn_spread_after_lu": 0.8}}}
            for i in range(tracks)
        ]  # fmt: skip
    (folder / "master.json").write_text(json.dumps(master))
    n = int(dur / 0.1)
    after = [round(-16 + 4 * math.sin(i / 50) + rnd.gauss(0, 2), 2) if i % 97 else None for i in range(n)]
    before = [None if v is None else round(v - 4, 2) for v in after]
    curves = {
        "hop_s": 0.1,
        "before": {"momentary": before, "short_term": before},
        "after": {"momentary": after, "short_term": after},
    }
    (folder / "loudness.json").write_text(json.dumps(curves))
    # An hour of conversation uses a couple of thousand distinct words, the common ones far more often (Zipf).
    vocabulary = [f"w{i}" for i in range(2000)]
    weights = [1 / (i + 1) for i in range(2000)]
    words, t = [], 14.0
    while t < dur - 31:
        word = rnd.choices(vocabulary, weights)[0]
        words.append({"start": round(t, 2), "end": round(t + 0.3, 2), "word": f" {word}",
                      "probability": round(rnd.random(), 3), "speaker": "A" if t < half else "B"})  # fmt: skip
        t += 0.4
    (folder / "words.json").write_text(json.dumps({"words": words}))
    kinds = ("pause", "hesitation", "retake")
    cands = tuple(
        Candidate(f"{kinds[i % 3]}-{i:07d}", kinds[i % 3], 20.0 + i * (dur - 60) / 200, 21.0 + i * (dur - 60) / 200,
                  ("cut", "propose", "mute")[i % 3], round(rnd.random(), 2), "w1 w2 w3", "w4 w5 w6", "uh")
        for i in range(200)
    )  # fmt: skip
    write_cuts(folder / "cuts.json", Cuts("a.flac", dur, cands, 0.8, 0.7))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tracks", type=int, default=0, help="a multitrack session of this many tracks")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    with tempfile.TemporaryDirectory(prefix="keylime-bench-report-") as tmp:
        folder = Path(tmp)
        make_inputs(folder, args.minutes, args.tracks)
        words = len(json.loads((folder / "words.json").read_text())["words"])
        run_child([sys.executable, "-c", REPORT, str(folder)], env)  # warm the page cache and matplotlib's fonts
        sides: dict[str, list[tuple[float, float, float, float]]] = {"report": [], "baseline": []}
        for _ in range(args.rounds):
            for name, code in (("report", REPORT), ("baseline", BASELINE)):
                wall, rss, out = run_child([sys.executable, "-c", code, str(folder)], env)
                _, inner, cpu = (float(x) for x in out.split())
                sides[name].append((wall, rss, inner, cpu))
        size = (folder / "report.html").stat().st_size
    med = {k: statistics.median(x[0] for x in v) for k, v in sides.items()}
    rss = {k: max(x[1] for x in v) for k, v in sides.items()}
    cpu = {k: statistics.median(x[3] for x in v) for k, v in sides.items()}
    stage = statistics.median(x[2] for x in sides["report"])
    what = f"{args.tracks} tracks" if args.tracks else "2 recordings"
    print(f"episode: {args.minutes:g} min, {what}, {words} words, 200 cut candidates, loudness.json 4 x "
          f"{int(args.minutes * 600)} blocks")  # fmt: skip
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    print(f"report process:   {med['report']:.2f} s median of {args.rounds} (CPU {cpu['report']:.2f} s), "
          f"peak RSS {rss['report']:.0f} MiB")  # fmt: skip
    print(
        f"baseline process: {med['baseline']:.2f} s (CPU {cpu['baseline']:.2f} s), peak RSS {rss['baseline']:.0f} MiB"
    )
    added_wall, added_cpu = med["report"] - med["baseline"], cpu["report"] - cpu["baseline"]
    print(f"the report adds:  {added_wall:.2f} s wall, {added_cpu:.2f} s CPU (write_report itself {stage:.2f} s wall)")
    print(f"report.html: {size / 1024:.0f} KiB, self-contained")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"bench took {time.perf_counter() - t0:.0f} s")
