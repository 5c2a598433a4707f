"""The edit stage on a long episode, against the least any re-encode of its master costs, in one invocation.

    python bench/edit_hour.py BUILD [--episode bench]

``BUILD`` is a build folder in which an episode got at least as far as the edit stage: ``BUILD/<episode>/`` with
``master.json``, the master MP3 and ``heard.json`` (``python bench/episode.py --minutes 60 --source real`` leaves
one in ``--workdir``/``build-batched``). Its files (and ``master.flac``, if there) are copied to a fresh folder, then:

1. **floor**: ffmpeg alone decoding the master (its lossless copy, ``master.flac``, when the build has one: what the
   edit reads then) and encoding it again with LAME at its bitrate (what applying any cut costs at least: the cut
   master is a new MP3);
2. **edit**: ``edit.edit_master`` with the default ``[edit]`` settings and no decisions (long pauses cut), in a
   child process, so its peak RSS is its own.

Prints both times, the edit's split into detection and applying, the ratio, the candidates and cuts, and the peak
RSS of each. Report ``uptime`` beside the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg  # noqa: E402

CHILD = """
import json, resource, sys
from dataclasses import replace
from pathlib import Path
from keylime_prod import edit, transcript
from keylime_prod.audio.artefact import Master
from keylime_prod.config import CutDecisions, EditSettings
from keylime_prod.layout import BuildLayout

lay = BuildLayout.of(Path(sys.argv[1]), sys.argv[2])
m = Master.load(lay.master_json)
m = replace(m, mp3=lay.master_mp3, report=lay.master_json)
heard = transcript.Heard.load(lay.heard_json)
e = edit.edit_master(m, heard.words, EditSettings(), CutDecisions(), lay, decisions_file="(none)")
print(json.dumps({"detect": e.detect_seconds, "apply": e.apply_seconds, "candidates": e.candidates,
                  "applied": len(e.applied), "removed": round(e.map.removed, 2),
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", type=Path)
    ap.add_argument("--episode", default="bench")
    args = ap.parse_args()
    src = args.build / args.episode
    master = json.loads((src / "master.json").read_text("utf-8"))
    with tempfile.TemporaryDirectory(prefix="keylime-edit-hour-") as tmp:
        work = Path(tmp) / args.episode
        work.mkdir()
        mp3 = Path(master["mp3"]).name
        lossless = master.get("lossless")  # the PCM the MP3 was encoded from, which the edit cuts when it is there
        for name in (mp3, "master.json", "loudness.json", "heard.json", lossless):
            if name and (src / name).exists():
                shutil.copy(src / name, work / name)
        t = time.perf_counter()
        ffmpeg.run(["-v", "error", "-i", str(work / (lossless or mp3)), "-c:a", "libmp3lame", "-b:a",
                    f"{master['bitrate_kbps']}k", "-f", "mp3", "-y", str(Path(tmp) / "floor.mp3")])  # fmt: skip
        floor = time.perf_counter() - t
        floor_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, tmp, args.episode], cwd=REPO, capture_output=True,
                             text=True, check=True)  # fmt: skip
        total = time.perf_counter() - t
        got = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"master: {master['duration'] / 60:.1f} min, {master['sample_rate']} Hz x {master['channels']}")
    print(f"floor (ffmpeg decode of {lossless or mp3} + LAME encode): {floor:.1f} s, peak RSS {floor_rss:.0f} MiB")
    print(f"edit stage: {total:.1f} s in all (detect {got['detect']:.1f} s, apply {got['apply']:.1f} s), "
          f"{total / floor:.2f}x the floor, peak RSS {got['rss_mib']:.0f} MiB")  # fmt: skip
    print(f"candidates {got['candidates']}, applied {got['applied']}, {got['removed']} s taken out")


if __name__ == "__main__":
    main()
