"""``produce batch`` on a real Dask cluster (issue 12, items 2 and 3).

The fault test runs a real ``dask scheduler`` and two one-thread ``dask worker`` processes, ``rclone serve s3`` as
the store and an old host (real HTTP) serving a feed of short real-speech episodes; one worker is killed with
SIGKILL while it transcribes. The published objects (MP3s, transcripts, chapters, notes) must be byte-identical to
a sequential run of the same tasks in this process, and the feed's guids must be the imported ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import feedparser
import pytest
from botocore.config import Config
from support.archive import OldEpisode, feed_xml, make_old_episodes
from support.cluster import DaskProcesses
from support.configs import storage_settings
from support.http import FakeHost
from support.s3 import BUCKET, RcloneS3

from keylime_prod import ffmpeg
from keylime_prod.audio import keep_master
from keylime_prod.catalogue.batch import plan_task, run_batch, run_task
from keylime_prod.catalogue.importer import fetch_media, import_feed
from keylime_prod.config import Settings, load_episode, load_settings
from keylime_prod.publish import publish
from keylime_prod.publish.feed import Manifest
from keylime_prod.publish.storage import open_store

NOW = dt.datetime(2026, 2, 1, 6, 0, tzinfo=dt.timezone.utc)
PUBLIC = "https://media.example.org/podcast"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pcm(path: Path) -> bytes:
    """The decoded samples of a file (ffmpeg), to compare audio while ignoring tags."""
    out = subprocess.run(
        [ffmpeg.binary(), "-v", "error", "-i", str(path), "-map", "0:a", "-f", "s16le", "-"],
        check=True,
        capture_output=True,
    )
    return out.stdout


def test_kept_master_is_the_published_mp3_measured(tmp_path: Path, old_host: FakeHost, make_configs: Any) -> None:
    old = make_old_episodes(old_host, 1)[0]
    src = tmp_path / "old.mp3"
    src.write_bytes(old.mp3)
    cfg = make_configs([src])
    ep = load_episode(cfg, "ep-1")
    settings = load_settings(cfg).show.audio
    m = keep_master(ep, settings, tmp_path / "build")
    assert m.method == "kept" and m.details.kept.re_encoded is False
    assert m.mp3.read_bytes() == old.mp3  # byte for byte: not re-encoded
    ref = ffmpeg.measure_ebur128(src)  # an independent meter on the same file
    assert ref.integrated_lufs is not None and abs(m.output_loudness.integrated_lufs - ref.integrated_lufs) < 0.5
    assert m.details.target.off_target_lu == pytest.approx(m.output_loudness.integrated_lufs + 16.0, abs=0.02)
    assert m.body.start == 0.0 and abs(m.duration - 4.0) < 0.1


# --------------------------------------------------------------------------------------------------- the batch


def _old_show(
    old_host: FakeHost, make_configs: Callable[..., Path], jfk: Path, n: int
) -> tuple[str, Path, list[OldEpisode]]:
    """An old feed of ``n`` short episodes plus one whose media the old host has lost (404), and empty configs for
    the show (Whisper tiny.en, so the batch stays cheap): (feed URL, configs folder, the old episodes)."""
    old = make_old_episodes(old_host, n)
    lost = (
        "<item><title>Lost</title><guid>lost-1</guid><pubDate>Tue, 02 Apr 2019 06:00:00 +0000</pubDate>"
        f'<enclosure url="{old_host.url("media/lost.mp3")}" length="999" type="audio/mpeg"/></item>'
    )
    url = old_host.put("feed.xml", feed_xml(old_host, old, extra_items=lost).encode(), "application/rss+xml")
    cfg = make_configs([jfk], whisper={"model": "tiny.en", "beam_size": 2})
    (cfg / "episodes" / "ep-1.toml").unlink()  # only the archive
    return url, cfg, old


def _archive(
    tmp_path: Path, old_host: FakeHost, make_configs: Callable[..., Path], jfk: Path
) -> tuple[Path, list[OldEpisode]]:
    """Configs for an imported show: four old episodes (media left at their URLs, except one fetched here and
    remastered) and one whose media the old host has lost (404)."""
    url, cfg, old = _old_show(old_host, make_configs, jfk, 4)
    res = import_feed(url, cfg, media_dir=tmp_path / "media", fetch=False, allow_private=True)
    assert [e.media for e in res.episodes] == ["url"] * 5
    # episode-100: media on this machine (goes to the workers through the store) and the full audio path.
    ep = load_episode(cfg, "episode-100")
    assert ep.archive is not None
    fetch_media(ep.archive.url, ep.recordings[0], length=ep.archive.length, allow_private=True)
    toml = cfg / "episodes" / "episode-100.toml"
    toml.write_text(toml.read_text().replace("remaster = false", "remaster = true"))
    return cfg, old


def _settings(cfg: Path, build: Path, **storage: Any) -> Settings:
    s = load_settings(cfg, build)
    return s.model_copy(update={"show": s.show.model_copy(update={"storage": storage_settings(**storage)})})


def _objects(store: Any, ids: list[str]) -> dict[str, dict[str, str]]:
    """Per episode: published key -> SHA-256 of the bytes GET returns (not what a manifest claims)."""
    out: dict[str, dict[str, str]] = {}
    for eid in ids:
        m = Manifest.parse(store.get_bytes(store.key("episodes", eid, "manifest.json")), eid)
        out[eid] = {f.key: sha(store.get_bytes(f.key)) for f in m.files}
        assert all(out[eid][f.key] == f.sha256 for f in m.files)
    return out


@pytest.mark.whisper
def test_batch_on_dask_survives_a_killed_worker(
    tmp_path: Path,
    old_host: FakeHost,
    make_configs: Callable[..., Path],
    jfk: Path,
    s3_server: RcloneS3,
    dask_processes: DaskProcesses,
) -> None:
    cfg, old = _archive(tmp_path, old_host, make_configs, jfk)
    ids = ["episode-100", "episode-101", "a-talk-about-courage-the-jfk-clip", "episode-103"]

    # The reference: the same tasks one after another in this process, into a local folder.
    ref_settings = _settings(
        cfg, tmp_path / "b0", endpoint_url=None, local_dir=tmp_path / "ref", public_base_url=PUBLIC
    )
    ref_store = open_store(ref_settings.show.storage)
    ref_out = {}
    for eid in [*ids, "lost"]:
        task = plan_task(
            ref_settings, load_episode(cfg, eid), ref_store, stages=None, now=NOW, threads=1, allow_private=True
        )
        ref_out[eid] = run_task(task)
    publish([], ref_settings.show, store=ref_store, now=NOW)
    assert [ref_out[e].status for e in ids] == ["published"] * 4 and ref_out["lost"].status == "failed"

    # The batch on the cluster, into S3; a worker is killed while it transcribes its first episode.
    settings = _settings(cfg, tmp_path / "b1", endpoint_url=s3_server.endpoint_url, public_base_url=PUBLIC)
    killed: dict[str, str] = {}

    def on_event(msg: dict[str, Any]) -> None:
        if not killed and msg.get("step") == "transcribe" and msg.get("what") == "start":
            killed.update(worker=msg["worker"], episode=msg["episode"])
            dask_processes.kill_worker(msg["worker"])

    result = run_batch(
        settings, [*ids, "lost"], scheduler=dask_processes.address, now=NOW, on_event=on_event, allow_private=True
    )
    by_id = {o.episode_id: o for o in result.outcomes}
    assert killed, "no task reached the transcribe stage"
    assert [by_id[e].status for e in ids] == ["published"] * 4, result.to_json()
    # The killed worker's episode was redone on the other worker; the lost one failed alone, with the reason.
    assert by_id[killed["episode"]].worker != killed["worker"]
    assert by_id["lost"].status == "failed" and "HTTP 404" in (by_id["lost"].error or "")

    # Same published objects, byte for byte (GET + SHA-256), transcripts included.
    store = open_store(settings.show.storage)
    got, want = _objects(store, ids), _objects(ref_store, ids)
    assert got == want
    for eid in ids:
        assert any(k.endswith(".vtt") for k in got[eid]) and any(k.endswith(".json") for k in got[eid])
    # The remastered episode went through the full audio path; the others kept the old MP3's audio.
    s3 = boto3.client(
        "s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip
    for eid, o in zip(ids, old, strict=True):
        m = Manifest.parse(store.get_bytes(store.key("episodes", eid, "manifest.json")), eid)
        audio = m.file("audio")
        assert audio is not None
        mp3 = tmp_path / f"{eid}.mp3"
        mp3.write_bytes(s3.get_object(Bucket=BUCKET, Key=audio.key)["Body"].read())
        src = tmp_path / f"{eid}-old.mp3"
        src.write_bytes(o.mp3)
        assert (pcm(mp3) == pcm(src)) is (eid != "episode-100")

    # The feed (read by feedparser) lists exactly the imported guids, each with its verified enclosure.
    feed = feedparser.parse(store.get_bytes(store.key("feed.xml")))
    assert sorted(e.id for e in feed.entries) == sorted(o.guid for o in old)
    keys = {k for files in got.values() for k in files}
    for e in feed.entries:
        assert store.key(e.enclosures[0].href.removeprefix(PUBLIC + "/")) in keys

    # A re-run finds every episode published from the same inputs and submits nothing.
    again = run_batch(settings, ids, scheduler=dask_processes.address, now=NOW, allow_private=True)
    assert [o.status for o in again.outcomes] == ["skipped"] * 4


@pytest.mark.cluster
@pytest.mark.whisper
def test_produce_batch_on_a_local_cluster_reports_failures_and_skips_on_rerun(
    tmp_path: Path, old_host: FakeHost, make_configs: Callable[..., Path], jfk: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from keylime_prod.cli import app

    url, cfg, old = _old_show(old_host, make_configs, jfk, 1)
    runner = CliRunner()
    imported = runner.invoke(
        app, ["import", url, "--allow-private", "--configs", str(cfg), "--media", str(tmp_path / "m")]
    )
    assert imported.exit_code == 10 and "lost: media not fetched" in imported.stderr  # the 404, one line

    args = ["batch", "--all", "--allow-private", "--workers", "2", "--configs", str(cfg), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 10, first.output  # the lost episode's error code; the other went out
    summary = json.loads(first.stdout)
    assert summary["counts"] == {"published": 1, "built": 0, "skipped": 0, "failed": 1}
    assert summary["scheduler"] == "LocalCluster(2 workers)" and summary["workers"] == 2
    assert [ln for ln in first.stderr.splitlines() if ln.startswith("error:")] == [
        next(f"error: lost: {e['error']}" for e in summary["episodes"] if e["episode"] == "lost")
    ]
    feed = feedparser.parse((tmp_path / "public" / "feed.xml").read_bytes())
    assert [e.id for e in feed.entries] == [old[0].guid]

    second = runner.invoke(app, args)
    assert json.loads(second.stdout)["counts"] == {"published": 0, "built": 0, "skipped": 1, "failed": 1}
    nothing = runner.invoke(app, ["batch", "--configs", str(cfg)])
    assert nothing.exit_code == 10 and "no episodes chosen" in nothing.stderr


def test_a_task_carries_every_input_and_the_worker_rebuilds_it_elsewhere(
    tmp_path: Path, make_configs: Callable[..., Path], make_tone: Callable[..., Path], jfk: Path
) -> None:
    from keylime_prod.catalogue.batch import _fetch_inputs, _local
    from keylime_prod.config import EpisodeConfig, Person, Track

    cfg = make_configs([jfk], assets={"intro": make_tone("intro.mp3", seconds=1.0)})
    settings = _settings(cfg, tmp_path / "build", endpoint_url=None, local_dir=tmp_path / "pub")
    a, b = make_tone("a.wav", freq=300, seconds=1.0), make_tone("b.wav", freq=500, seconds=1.0)
    ep = EpisodeConfig(
        id="mt", number=1, title="Multitrack", publish_date="2026-01-01", summary="s",
        hosts=(Person(name="A"), Person(name="B")), tracks=(Track(file=a, speaker="A"), Track(file=b, speaker="B")),
    )  # fmt: skip
    store = open_store(settings.show.storage)
    task = plan_task(settings, ep, store, stages=None, now=NOW, threads=1)
    sources = {str(a), str(b), str(settings.show.show.artwork), str(settings.show.assets.intro)}
    assert set(task.inputs) == sources
    assert all(r.key and r.sha256 for r in task.inputs.values())  # each through the store, content-addressed
    worker = tmp_path / "worker"
    files = _fetch_inputs(task, store, worker / "inputs")
    got, show = _local(task, files, worker / "configs")
    paths = [t.file for t in got.tracks] + [show.show.artwork, show.assets.intro]
    assert all(worker in Path(p).parents for p in paths)  # nothing read from the driver's paths
    for p, src in zip(paths, [a, b, settings.show.show.artwork, settings.show.assets.intro], strict=True):
        assert sha(Path(p).read_bytes()) == sha(Path(src).read_bytes())
    assert show.whisper.threads == 1
    # The digest that decides re-runs changes with an input's bytes.
    b.write_bytes(make_tone("b2.wav", freq=700, seconds=1.0).read_bytes())
    assert plan_task(settings, ep, store, stages=None, now=NOW, threads=1).inputs_digest != task.inputs_digest
