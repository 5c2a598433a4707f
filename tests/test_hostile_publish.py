"""Hostile and clumsy states of a publish target and a project folder: one bad episode never blocks the others, and
nothing a killed run leaves behind outlives the next start.

Real parts only: ``rclone serve s3`` (tests/support/s3.py), the local folder, the CLI, feedparser to read feeds back.
docs/reliability.md lists each case with its expected outcome and the test here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest
from support import tagging as tf
from support.configs import make_show, storage_settings
from support.s3 import BUCKET, RcloneS3, raw_client
from typer.testing import CliRunner

from keylime_prod import publish
from keylime_prod.cli import app

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, tzinfo=UTC)


def _cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def _manifest_doc(data: bytes, **changes: Any) -> bytes:
    doc = json.loads(data)
    doc.update(changes)
    return json.dumps(doc).encode()


# ------------------------------------------------------------------------------- one bad episode, the rest publish


def test_bad_manifests_in_the_bucket_are_left_out_and_every_other_episode_publishes(
    s3_server: RcloneS3, make_release: Callable[..., publish.Release]
) -> None:
    show = make_show(storage_settings(s3_server.endpoint_url))
    publish.publish([make_release("ep-1", number=1), make_release("ep-2", number=2)], show, now=NOW)
    raw = raw_client(s3_server.endpoint_url)

    def get(key: str) -> bytes:
        return bytes(raw.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def put(key: str, data: bytes) -> None:
        raw.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType="application/json")

    one = get("podcast/episodes/ep-1/manifest.json")
    # Corrupt JSON (a write cut short by hand or by an old tool).
    put("podcast/episodes/ep-3/manifest.json", one[: len(one) // 2])
    # A title holding U+0001 (XML 1.0 section 2.2 cannot carry it): written by a version before configs refused it.
    doc = json.loads(one)
    doc.update(episode_id="ep-4", guid="c0ffee00-0000-5000-8000-000000000004")
    doc["item"]["title"] = "bad \x01 title"
    put("podcast/episodes/ep-4/manifest.json", json.dumps(doc).encode())
    # ep-1's guid again, on another episode's manifest that claims an earlier first publish (a guid copied into
    # another episode's config): ep-1, the item live under that guid, keeps it.
    twin = json.loads(one)
    twin.update(episode_id="ep-5", first_published="2025-01-01T00:00:00Z")
    for f in twin["files"]:
        f["key"] = f["key"].replace("/ep-1/", "/ep-5/")
    put("podcast/episodes/ep-5/manifest.json", json.dumps(twin).encode())

    res = publish.publish([make_release("ep-6", number=6)], show, now=NOW)

    items = {e.id: e.title for e in feedparser.parse(get("podcast/feed.xml")).entries}
    guids = {e.episode_id: e.guid for e in res.episodes}
    assert set(items) == {guids["ep-6"], *(json.loads(get(f"podcast/episodes/{i}/manifest.json"))["guid"]
                                           for i in ("ep-1", "ep-2"))}  # fmt: skip
    assert res.episodes[0].live and res.feed_items == 3
    left = {x.episode_id: x for x in res.left_out}
    assert sorted(left) == ["ep-3", "ep-4", "ep-5"]
    assert "not a valid publish manifest" in left["ep-3"].reason
    assert left["ep-4"].reason == "item.title holds U+0001, a character XML cannot carry"
    assert (
        left["ep-5"].reason.startswith("its guid ")
        and "is the guid of ep-1, the item live under it" in left["ep-5"].reason
    )
    for i, x in left.items():
        assert x.key == f"s3://{BUCKET}/podcast/episodes/{i}/manifest.json"
        assert f"produce publish {i}" in x.hint and f"delete {x.key}" in x.hint
    assert [d["episode"] for d in res.to_json()["left_out"]] == ["ep-3", "ep-4", "ep-5"]

    # The hint is what works: publishing ep-3 again replaces its unreadable manifest, and it joins the feed.
    again = publish.publish([make_release("ep-3", number=3)], show, now=NOW)
    assert again.episodes[0].live and [x.episode_id for x in again.left_out] == ["ep-4", "ep-5"]


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    """A configs folder and a build of ep-7 (a real short MP3, its master marked up to date, chapters and tag made
    through the CLI), publishing into ``tmp_path/public``."""
    return tf.tagged_build(tmp_path)


def test_produce_publish_fails_only_when_the_requested_episode_is_left_out(built: tuple[Path, Path]) -> None:
    cfg, build = built
    args = ("publish", tf.EPISODE_ID, "--configs", str(cfg), "--build-dir", str(build), "--json")
    public = cfg.parent / "public"
    assert _cli(*args).exit_code == 0
    (mine,) = public.rglob(f"episodes/{tf.EPISODE_ID}/manifest.json")
    episodes = mine.parent.parent
    guid = json.loads(mine.read_bytes())["guid"]

    # Another episode's manifest is unreadable: ep-7 still publishes (exit 0) and the JSON names what was left out.
    (episodes / "ep-3").mkdir()
    (episodes / "ep-3" / "manifest.json").write_text("{not json", encoding="utf-8")
    ok = _cli(*args)
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert [x["episode"] for x in doc["left_out"]] == ["ep-3"] and doc["episodes"][0]["live"]

    # An episode published before ep-7 holds ep-7's guid: ep-7 is the one left out, after the feed went out with
    # the other; one line names it, the manifest key and what can be done; exit 8 (feed).
    older = json.loads(mine.read_bytes())
    older.update(episode_id="ep-1", first_published="2019-01-01T00:00:00Z")
    older["item"]["title"] = "Episode one"
    (episodes / "ep-1").mkdir()
    (episodes / "ep-1" / "manifest.json").write_text(json.dumps(older), encoding="utf-8")
    bad = _cli(*args[:-1], "-q")
    assert bad.exit_code == 8
    (line,) = bad.stderr.strip().splitlines()
    assert f"{tf.EPISODE_ID} is left out of the feed" in line and "is the guid of ep-1" in line
    assert f"episodes/{tf.EPISODE_ID}/manifest.json" in line and f"produce publish {tf.EPISODE_ID}" in line
    (feed,) = public.rglob("feed.xml")
    assert [(e.id, e.title) for e in feedparser.parse(feed.read_bytes()).entries] == [(guid, "Episode one")]


# ------------------------------------------------------------------------------------------- nothing left behind


def test_temporary_folders_of_a_killed_run_are_removed_at_the_next_start(
    tmp_path: Path, make_release: Callable[..., publish.Release]
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "120"])
    try:
        tmp = Path(tempfile.gettempdir())
        left = {kind: tmp / f"keylime-{kind}-{dead.pid}-x1y2" for kind in ("publish", "batch", "verify")}
        for folder in left.values():
            (folder / "sub").mkdir(parents=True)
            (folder / "sub" / "show-notes.html").write_bytes(b"x" * 4096)
        busy = tmp / f"keylime-publish-{alive.pid}-z3w4"
        busy.mkdir()
        show = make_show(storage_settings(None, local_dir=tmp_path / "public"))
        res = publish.publish([make_release()], show, now=NOW)
        assert res.episodes[0].live
        assert not any(f.exists() for f in left.values())
        assert busy.is_dir()  # its owner still runs
        assert not [p for p in tmp.iterdir() if p.name.startswith(f"keylime-publish-{os.getpid()}-")]
    finally:
        alive.kill()
        alive.wait()


def test_a_moved_project_keeps_its_build_up_to_date(tmp_path: Path, built: tuple[Path, Path]) -> None:
    cfg, build = built
    moved = tmp_path / "elsewhere" / "project"
    moved.mkdir(parents=True)
    for part in (cfg, build):
        shutil.move(part, moved / part.name)
    again = _cli(
        "tag", tf.EPISODE_ID, "--configs", str(moved / "configs"), "--build-dir", str(moved / "build"), "--json"
    )
    assert again.exit_code == 0, again.output
    stages = {s["name"]: s["cached"] for s in json.loads(again.stdout)["stages"]}
    assert stages == {"speakers": True, "master": True, "edit": True, "chapters": True, "tag": True}
    state = (moved / "build" / tf.EPISODE_ID / "state.json").read_text("utf-8")
    assert str(tmp_path) not in state
