"""The archive batch on a 2-worker Dask LocalCluster against the same episodes one after another in one process.

Makes (once per run, in a temp folder) an archive show of 8 short episodes cut from tests/data/jfk.wav (real speech;
half ``--short`` seconds long, half ``--long``), each kept as published (``remaster = false``: measured, not
re-encoded; Whisper, chapters, notes, tags and publishing run), and one ``rclone serve s3`` with two buckets. Then,
in the same invocation:

* **sequential**: the batch's own task function (:func:`keylime_prod.catalogue.batch.run_task`) for each episode in this
  process, Whisper on every physical core, then the feed rebuilt once: what ``produce EPISODE`` does per episode;
* **cluster**: ``LocalCluster(2 workers, 1 thread each)`` started here (its start-up is counted), then
  :func:`keylime_prod.catalogue.batch.run_batch` on it: one core per task.

It prints the ratio, the per-task overhead of the cluster (a scheduling + transfer round trip of a task's payload,
measured on the same cluster, plus the task's input fetch from the store), peak RSS, and a projection of a
300-episode archive of 30-minute episodes on 1, 4 and 16 one-core workers from the measured cost per audio hour
(a line fitted through the short and long episodes' task times: seconds per episode plus seconds per audio second).

    python bench/batch.py                       # 8 episodes: 4 x 20 s + 4 x 60 s, Whisper base int8
    python bench/batch.py --short 10 --long 30 --model tiny.en
    python bench/batch.py --baseline-threads 1  # the sequential run on one core, as each worker has
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import tomli_w  # noqa: E402
from support.s3 import ACCESS_KEY, SECRET_KEY, RcloneS3  # noqa: E402

from keylime_prod import ffmpeg  # noqa: E402
from keylime_prod.catalogue.batch import plan_task, run_batch, run_task  # noqa: E402
from keylime_prod.config import load_episode, load_settings  # noqa: E402
from keylime_prod.machine import physical_cores  # noqa: E402
from keylime_prod.publish import publish  # noqa: E402
from keylime_prod.publish.storage import open_store  # noqa: E402

NOW = dt.datetime(2026, 2, 1, 6, 0, tzinfo=dt.timezone.utc)
SHOW = """\
[show]
title = "Bench Show"
description = "An archive for the batch benchmark."
author = "Bench"
owner_name = "Bench"
owner_email = "bench@example.org"
artwork = "{cover}"
website = "https://example.org/"
feed_url = "https://media.example.org/podcast/feed.xml"
copyright = "2026 Bench"

[[show.hosts]]
name = "Lara Varpio"

[whisper]
model = "{model}"
"""


def make_episode_mp3(dest: Path, seconds: float, i: int) -> None:
    """jfk.wav looped to ``seconds``, at a level and offset of its own (so every episode's objects differ)."""
    subprocess.run(
        [
            ffmpeg.binary(), "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-i", str(REPO / "tests" / "data" / "jfk.wav"),
            "-af", f"aloop=loop=-1:size=2147483647,atrim=start={(i * 1.7) % 9:.1f},asetpts=N/SR/TB,"
                   f"atrim=duration={seconds},volume={-2 - i % 4}dB",
            "-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "96k", str(dest),
        ],
        check=True,
    )  # fmt: skip


def make_show(root: Path, lengths: list[float], model: str) -> Path:
    cfg = root / "configs"
    (cfg / "episodes").mkdir(parents=True)
    (cfg / "show.toml").write_text(SHOW.format(cover=REPO / "configs" / "assets" / "cover.jpg", model=model))
    for i, secs in enumerate(lengths):
        mp3 = root / "media" / f"old-{i}.mp3"
        mp3.parent.mkdir(exist_ok=True)
        make_episode_mp3(mp3, secs, i)
        doc = {
            "guid": f"tag:old.example.org,2019:{i}",
            "title": f"Archive episode {i + 1}",
            "number": i + 1,
            "publish_date": dt.datetime(2019, 1, 1 + i, 6, tzinfo=dt.timezone.utc),
            "summary": f"Archive episode {i + 1}.",
            "recordings": [str(mp3)],
            "hosts": [{"name": "Lara Varpio"}],
            "archive": {"url": f"https://old.example.org/{i}.mp3", "remaster": False},
        }
        (cfg / "episodes" / f"episode-{i + 1}.toml").write_text(tomli_w.dumps(doc))
    return cfg


def settings_for(cfg: Path, endpoint: str, bucket: str, build: Path) -> Any:
    from keylime_prod.config import StorageSettings

    s = load_settings(cfg, build)
    storage = StorageSettings(
        endpoint_url=endpoint, bucket=bucket, prefix="podcast", public_base_url="https://media.example.org/podcast"
    )
    return s.model_copy(update={"show": s.show.model_copy(update={"storage": storage})})


def _echo(payload: Any) -> int:
    return len(pickle.dumps(payload))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares ``y = a + b x``."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - b * mx, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", type=float, default=20.0, help="seconds of the 4 short episodes")
    ap.add_argument("--long", type=float, default=60.0, help="seconds of the 4 long episodes")
    ap.add_argument("--model", default="base", help="Whisper model (the show's default: base int8)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--baseline-threads", type=int, default=0, help="Whisper threads of the sequential run (default: all cores)"
    )
    args = ap.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_EC2_METADATA_DISABLED="true")
    from distributed import Client, LocalCluster

    lengths = [args.short] * 4 + [args.long] * 4
    base_threads = args.baseline_threads or physical_cores()
    with tempfile.TemporaryDirectory(prefix="keylime-bench-batch-") as tmp:
        root = Path(tmp)
        cfg = make_show(root, lengths, args.model)
        server = RcloneS3(root / "s3")
        for b in ("seq", "dask"):
            server.make_bucket(b)
        server.start()
        try:
            ids = [f"episode-{i + 1}" for i in range(len(lengths))]
            # Sequential: the same task function in this process, Whisper on every core.
            seq = settings_for(cfg, server.endpoint_url, "seq", root / "b0")
            store = open_store(seq.show.storage)
            t0 = time.perf_counter()
            seq_out = []
            for eid in ids:
                task = plan_task(
                    seq, load_episode(cfg, eid), store, stages=None, now=NOW, threads=base_threads, allow_private=True
                )
                seq_out.append(run_task(task))
            publish([], seq.show, store=store, now=NOW)
            t_seq = time.perf_counter() - t0
            assert all(o.status == "published" for o in seq_out), [o.error for o in seq_out]

            # The cluster: started here (counted), then the batch on it.
            dsk = settings_for(cfg, server.endpoint_url, "dask", root / "b1")
            t0 = time.perf_counter()
            cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            t_start = time.perf_counter() - t0
            res = run_batch(dsk, ids, scheduler=cluster.scheduler_address, now=NOW, threads=1, allow_private=True)
            t_dask = time.perf_counter() - t0
            assert all(o.status == "published" for o in res.outcomes), [o.error for o in res.outcomes]

            # Per-task overhead: a task's payload there and a small result back, one at a time, on this cluster.
            task = plan_task(dsk, load_episode(cfg, ids[0]), open_store(dsk.show.storage), stages=None, now=NOW,
                             threads=1, allow_private=True)  # fmt: skip
            rtts = []
            for i in range(20):
                t = time.perf_counter()
                client.submit(_echo, task, pure=False, key=f"echo-{i}").result()
                rtts.append(time.perf_counter() - t)
            worker_rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            client.close()
            cluster.close()
        finally:
            server.stop()

    audio = sum(o.audio_seconds for o in res.outcomes)
    inputs = statistics.fmean(o.timings.get("inputs", 0.0) for o in res.outcomes)
    rtt = statistics.median(rtts)
    a, b = fit([(o.audio_seconds, o.seconds) for o in res.outcomes])
    print(f"machine: {os.cpu_count()} CPUs; load average now: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(
        f"episodes: {len(ids)} ({', '.join(f'{x:g}' for x in lengths)} s; {audio:.0f} s of audio), model {args.model}"
    )
    print(f"sequential, one process, {base_threads} Whisper thread(s): {t_seq:.1f} s")
    print(f"LocalCluster {args.workers} x 1 thread: {t_dask:.1f} s (start-up {t_start:.1f} s)")
    print(f"speedup: {t_seq / t_dask:.2f}x  (without the cluster's start-up: {t_seq / (t_dask - t_start):.2f}x)")
    print(f"per-task overhead: {rtt * 1000:.0f} ms scheduling + payload round trip (median of 20, payload "
          f"{_echo(task) / 1024:.1f} KiB) + {inputs * 1000:.0f} ms input fetch from the store = "
          f"{(rtt + inputs) * 1000:.0f} ms")  # fmt: skip
    print(
        f"peak RSS: driver {_peak_rss_mib():.0f} MiB; workers {', '.join(f'{v:.0f}' for v in worker_rss.values())} MiB"
    )
    for o in res.outcomes:
        steps = ", ".join(f"{k} {v:.1f}" for k, v in o.timings.items())
        print(f"  {o.episode_id}: {o.audio_seconds:.0f} s audio, task {o.seconds:.1f} s on {o.worker} ({steps})")
    per_ep = a + b * 1800
    print(f"cost on one core: {a:.1f} s per episode + {b * 3600:.0f} s per audio hour "
          f"-> {per_ep:.0f} s for a 30-minute episode")  # fmt: skip
    print("| workers (1 core each) | 300 x 30-min episodes (150 h of audio) |")
    print("| --- | --- |")
    for n in (1, 4, 16):
        wall = math.ceil(300 / n) * (per_ep + rtt + inputs)
        print(f"| {n} | {wall / 3600:.1f} h |")


if __name__ == "__main__":
    main()
