"""The publish stage against a real ``rclone serve s3`` and the local-folder default.

Outcomes are checked independently of keylime_prod: objects are read back with a plain boto3 client (GET +
SHA-256) or from the files rclone wrote, the feed is parsed with feedparser and lxml.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree
from support.configs import episode_config, make_show, storage_settings, write_episode
from support.feeds import text_of
from support.media import write_fake_master
from support.s3 import BUCKET, SECRET_KEY, RcloneS3, get_sha256, random_file, raw_client

from keylime_prod import publish
from keylime_prod.config import load_episode, load_settings
from keylime_prod.errors import PublishError, StorageError
from keylime_prod.guids import podcast_guid
from keylime_prod.pipeline import release
from keylime_prod.publish import storage
from keylime_prod.publish.feed import PODCAST_NS, Manifest

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, tzinfo=UTC)
FUTURE = dt.datetime(2099, 1, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent
TRICKY = 'Fish & Chips <live> "quoted" 🎧'


def _feed(raw: Any) -> bytes:
    return bytes(raw.get_object(Bucket=BUCKET, Key="podcast/feed.xml")["Body"].read())


def sha256(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime (to prove nothing was written)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_full_publish_read_back(s3_server: RcloneS3, make_release: Callable[..., publish.Release]) -> None:
    show = make_show(storage_settings(s3_server.endpoint_url))
    release = make_release(title=TRICKY, summary=f"About {TRICKY}.")
    res = publish.publish([release], show, now=NOW)
    raw = raw_client(s3_server.endpoint_url)

    # Every file: GET + SHA-256 equal to the local file, the right Content-Type and Cache-Control.
    ep = res.episodes[0]
    assert [f.action for f in ep.files].count("uploaded") == len(release.files) - 1  # the cover went up with the show
    expected_types = {
        "mp3": "audio/mpeg",
        "vtt": "text/vtt",
        "srt": "application/x-subrip",
        "txt": "text/plain",
        "md": "text/markdown; charset=utf-8",
        "html": "text/html",
        "jpg": "image/jpeg",
    }
    vtt_url = next(f.url for f in ep.files if f.format == "vtt")
    for src, f in zip(release.files, ep.files, strict=True):
        want_bytes = src.path.read_bytes()
        if f.role == "notes":  # relative links to sibling files now point at their published URLs
            want_bytes = want_bytes.replace(b'"ep-1.vtt"', f'"{vtt_url}"'.encode()).replace(
                b"(<ep-1.vtt>)", f"(<{vtt_url}>)".encode()
            )
            assert vtt_url.encode() in want_bytes
        assert get_sha256(raw, f.key) == (len(want_bytes), sha256(want_bytes))
        head = raw.head_object(Bucket=BUCKET, Key=f.key)
        want = "application/json+chapters" if f.role == "chapters" else expected_types.get(f.format, "application/json")
        assert head["ContentType"] == want
        assert head["CacheControl"] == "public, max-age=31536000, immutable"
        assert f.verified_by in ("etag-md5", "sha256-checksum", "read-back")

    # The manifest in the bucket lists each file with key, size, SHA-256 and type.
    manifest = json.loads(raw.get_object(Bucket=BUCKET, Key="podcast/episodes/ep-1/manifest.json")["Body"].read())
    by_key = {f["key"]: f for f in manifest["files"]}
    for f in ep.files:
        entry = by_key[f.key]
        assert (entry["size"], entry["sha256"], entry["content_type"]) == (f.size, f.sha256, f.content_type)
    assert manifest["guid"] == ep.guid

    # The feed: parsed by feedparser, enclosure length = the object's byte size by HEAD, guid from the manifest.
    xml = _feed(raw)
    d = feedparser.parse(xml)
    assert not d.bozo
    assert d.feed.title == "Test Show"
    item = d.entries[0]
    assert item.title == TRICKY
    assert f"About {TRICKY}." in text_of(item.summary)
    audio = next(f for f in ep.files if f.role == "audio")
    enc = item.enclosures[0]
    assert int(enc.length) == raw.head_object(Bucket=BUCKET, Key=audio.key)["ContentLength"]
    assert enc.href == f"{s3_server.endpoint_url}/{BUCKET}/{audio.key}"
    assert item.id == ep.guid
    assert f'<a href="{vtt_url}">Captions</a>' in item.content[0].value
    root = etree.fromstring(xml)
    assert root.findtext("channel/podcast:guid", namespaces={"podcast": PODCAST_NS}) == podcast_guid(show.show.feed_url)
    # Every URL the feed references is an object that exists with the size the feed claims.
    for el in root.iter():
        link = el.get("url") or el.get("href")
        if link and link.startswith(s3_server.endpoint_url):
            key = link.split(f"/{BUCKET}/", 1)[1]
            size = raw.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
            if el.tag == "enclosure":
                assert int(el.get("length")) == size
    assert res.feed_updated and res.feed_items == 1 and ep.live


def test_rerun_uploads_nothing(s3_server: RcloneS3, make_release: Callable[..., publish.Release]) -> None:
    show = make_show(storage_settings(s3_server.endpoint_url))
    release = make_release()
    publish.publish([release], show, now=NOW)
    before = _tree(s3_server.root)
    again = publish.publish([release], show, now=NOW + dt.timedelta(hours=1))
    assert again.bytes_uploaded == 0
    assert not again.feed_updated and not again.episodes[0].manifest_written
    assert {f.action for f in again.episodes[0].files} == {"present"}
    assert _tree(s3_server.root) == before  # not a byte written on the server


def test_guid_never_changes_and_old_objects_stay(
    s3_server: RcloneS3, make_release: Callable[..., publish.Release]
) -> None:
    show = make_show(storage_settings(s3_server.endpoint_url))
    first = publish.publish([make_release(freq=440)], show, now=NOW)
    remastered = make_release(freq=660, title="Better title")
    second = publish.publish([remastered], show, now=NOW)
    a1 = next(f for f in first.episodes[0].files if f.role == "audio")
    a2 = next(f for f in second.episodes[0].files if f.role == "audio")
    assert a1.key != a2.key  # content-addressed: the old URL keeps its old bytes
    assert second.episodes[0].guid == first.episodes[0].guid
    raw = raw_client(s3_server.endpoint_url)
    assert raw.head_object(Bucket=BUCKET, Key=a1.key)["ContentLength"] == a1.size
    item = feedparser.parse(_feed(raw)).entries[0]
    assert (item.id, item.title, item.enclosures[0].href.rsplit("/", 1)[1]) == (
        first.episodes[0].guid,
        "Better title",
        a2.key.rsplit("/", 1)[1],
    )
    manifest = Manifest.model_validate_json(
        raw.get_object(Bucket=BUCKET, Key="podcast/episodes/ep-1/manifest.json")["Body"].read()
    )
    assert manifest.first_published == NOW and manifest.guid == first.episodes[0].guid


def test_scheduled_episode_joins_the_feed_when_due(
    s3_server: RcloneS3, make_release: Callable[..., publish.Release]
) -> None:
    show = make_show(storage_settings(s3_server.endpoint_url))
    store = storage.open_store(show.storage)
    live_one = make_release("ep-1")
    later = make_release("ep-2", number=2, title="Next week", publish_date="2026-03-08T06:00:00Z", freq=550)
    res = publish.publish([live_one, later], show, now=NOW)
    assert [(e.episode_id, e.live, e.scheduled) for e in res.episodes] == [("ep-1", True, False), ("ep-2", False, True)]
    raw = raw_client(s3_server.endpoint_url)
    assert [e.title for e in feedparser.parse(_feed(raw)).entries] == ["Test episode"]
    episodes = [live_one.episode, later.episode]
    assert publish.due(episodes, show, store=store, now=NOW) == ()
    week = NOW + dt.timedelta(days=8)
    due = publish.due(episodes, show, store=store, now=week)
    assert [(d.episode_id, d.reason) for d in due] == [("ep-2", "uploaded but not in the live feed")]
    res2 = publish.publish([later], show, store=store, now=week)
    assert res2.feed_updated and res2.episodes[0].live and res2.bytes_uploaded < 20_000  # feed only, no media
    assert [e.title for e in feedparser.parse(_feed(raw)).entries] == ["Next week", "Test episode"]
    assert publish.due(episodes, show, store=store, now=week) == ()


def test_server_killed_mid_upload_then_rerun(
    s3_server: RcloneS3, make_release: Callable[..., publish.Release], tmp_path: Path
) -> None:
    settings = storage_settings(s3_server.endpoint_url, max_attempts=2, concurrency=2)
    show = make_show(settings)
    publish.publish([make_release()], show, now=NOW)
    feed_file = s3_server.root / BUCKET / "podcast" / "feed.xml"
    live_feed = feed_file.read_bytes()

    big = random_file(tmp_path / "remaster.mp3", 24 * (1 << 20) + 3)
    release = make_release(audio=big, seconds=1500.0)
    killed = threading.Event()

    def kill_midway(label: str, done: float, total: float) -> None:
        if total > 10 * (1 << 20) and done > 0 and not killed.is_set():
            killed.set()
            s3_server.kill()

    t0 = time.monotonic()
    with pytest.raises(StorageError, match="cannot upload|cannot check|cannot connect"):
        publish.publish([release], show, now=NOW, progress=kill_midway)
    assert killed.is_set() and time.monotonic() - t0 < 30
    assert feed_file.read_bytes() == live_feed  # the live feed is as it was

    # Restart over the same folder (new port), re-run: completes, objects byte-identical to the build.
    restarted = RcloneS3(s3_server.root)
    with restarted:
        show2 = make_show(settings.model_copy(update={"endpoint_url": restarted.endpoint_url}))
        res = publish.publish([release], show2, now=NOW)
        raw = raw_client(restarted.endpoint_url)
        for src, f in zip(release.files, res.episodes[0].files, strict=True):
            if f.role != "notes":  # (rewritten links: compared in test_full_publish_read_back)
                assert get_sha256(raw, f.key) == (src.path.stat().st_size, sha256(src.path.read_bytes()))
        item = feedparser.parse(_feed(raw)).entries[0]
        audio = next(f for f in res.episodes[0].files if f.role == "audio")
        assert item.enclosures[0].href.endswith(audio.key) and int(item.enclosures[0].length) == big.stat().st_size
        assert feed_file.read_bytes() != live_feed


def test_dry_run_touches_nothing(s3_server: RcloneS3, make_release: Callable[..., publish.Release]) -> None:
    show = make_show(storage_settings(s3_server.endpoint_url))
    release = make_release()
    before = _tree(s3_server.root)
    plan = publish.publish([release], show, now=NOW, dry_run=True)
    assert _tree(s3_server.root) == before
    assert {f.action for f in plan.episodes[0].files} <= {"upload", "keep"}
    assert "upload" in {f.action for f in plan.episodes[0].files}
    assert plan.dry_run and plan.feed_updated and not plan.episodes[0].live  # would change; nothing written
    publish.publish([release], show, now=NOW)
    plan2 = publish.publish([release], show, now=NOW, dry_run=True)
    assert {f.action for f in plan2.episodes[0].files} == {"keep"}
    assert not plan2.feed_updated


def test_local_default_is_laid_out_like_the_bucket(
    tmp_path: Path, make_release: Callable[..., publish.Release]
) -> None:
    st = storage_settings(None, local_dir=tmp_path / "public", public_base_url="https://media.example.org/podcast")
    show = make_show(st)
    release = make_release()
    res = publish.publish([release], show, now=NOW)
    root = tmp_path / "public" / "podcast"
    assert res.target == str(root)
    assert (root / "feed.xml").is_file() and (root / "show.json").is_file()
    manifest = Manifest.model_validate_json((root / "episodes/ep-1/manifest.json").read_bytes())
    for src, f in zip(release.files, manifest.files, strict=True):
        assert sha256((tmp_path / "public" / f.key).read_bytes()) == f.sha256
        if f.role != "notes":  # notes get their relative links rewritten (see test_full_publish_read_back)
            assert f.sha256 == sha256(src.path.read_bytes())
    notes = next(f for f in release.files if f.role == "notes" and f.format == "html")
    assert 'href="ep-1.vtt"' in notes.path.read_text()  # the build's notes are left as they were
    d = feedparser.parse((root / "feed.xml").read_bytes())
    assert d.entries[0].enclosures[0].href.startswith("https://media.example.org/podcast/episodes/ep-1/ep-1.")
    assert res.feed_url == show.show.feed_url
    assert not list(tmp_path.joinpath("public").rglob("*.part"))


def test_incomplete_release_is_refused(tmp_path: Path, make_release: Callable[..., publish.Release]) -> None:
    release = make_release()
    gone = next(f for f in release.files if f.format == "vtt")
    gone.path.unlink()
    show = make_show(storage_settings(None, local_dir=tmp_path / "public"))
    with pytest.raises(PublishError, match="incomplete: transcript file missing"):
        publish.publish([release], show, now=NOW)
    assert not (tmp_path / "public").exists()


def test_bad_cover_art_is_refused(tmp_path: Path, make_release: Callable[..., publish.Release]) -> None:
    fake = tmp_path / "cover.jpg"
    fake.write_bytes(b"GIF89a not really")
    show = make_show(storage_settings(None, local_dir=tmp_path / "public"), artwork=fake)
    with pytest.raises(PublishError, match="neither JPEG nor PNG"):
        publish.publish([make_release()], show, now=NOW)


# ---------------------------------------------------------------------------------------------- pipeline + CLI


@pytest.fixture
def fake_build(tmp_path: Path, make_configs: Callable[..., Path], make_tone: Callable[..., Path]) -> Path:
    """configs/ with ep-1 (built: a lavfi MP3 + master.json) and ep-2 (never built); returns the configs folder."""
    cfg = make_configs([tmp_path / "raw.wav"], episode_id="ep-1")
    write_episode(cfg, episode_config([tmp_path / "raw.wav"], "ep-2", number=2, publish_date="2026-01-08"))
    build = tmp_path / "build" / "ep-1"
    build.mkdir(parents=True)
    mp3 = make_tone("ep-1.mp3", seconds=2.0).replace(build / "ep-1.mp3")
    write_fake_master(build, mp3, 2.0, "ep-1")
    return cfg


def test_pipeline_publishes_a_build_and_refuses_a_missing_one(fake_build: Path, tmp_path: Path) -> None:
    settings = load_settings(fake_build, tmp_path / "build")
    local = settings.show.storage.model_copy(update={"local_dir": tmp_path / "public"})
    settings = settings.model_copy(update={"show": settings.show.model_copy(update={"storage": local})})
    res = release.publish_episodes(settings, ["ep-1"], now=NOW)
    assert [f.role for f in res.episodes[0].files] == ["audio", "cover"]
    assert res.episodes[0].live
    with pytest.raises(PublishError, match="ep-2 has not been built.*produce ep-2"):
        release.publish_episodes(settings, ["ep-2"], now=NOW)


def _produce(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keylime_prod", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def _cli_env(server: RcloneS3 | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYLIME_", "AWS_PROFILE"))}
    env["COLUMNS"] = "200"
    if server is not None:
        env.update(KEYLIME_S3_ENDPOINT_URL=server.endpoint_url, KEYLIME_S3_BUCKET=BUCKET, KEYLIME_S3_PREFIX="show")
    env.update(extra)
    return env


def test_cli_publish_json_verbose_never_prints_the_secret(
    s3_server: RcloneS3, fake_build: Path, tmp_path: Path
) -> None:
    env = _cli_env(s3_server)
    args = ["publish", "ep-1", "--configs", str(fake_build), "--build-dir", str(tmp_path / "build")]
    p = _produce([*args, "--json", "--verbose"], env, tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["target"].startswith(f"s3://{BUCKET}/show at ")
    assert out["feed"]["key"] == "show/feed.xml" and out["feed"]["updated"] is True
    assert [f["role"] for f in out["episodes"][0]["files"]] == ["audio", "cover"]
    assert SECRET_KEY not in p.stdout + p.stderr
    # The bucket really holds it (the env overrides reached the stage): the feed parses and lists ep-1.
    raw = raw_client(s3_server.endpoint_url)
    feed = feedparser.parse(raw.get_object(Bucket=BUCKET, Key="show/feed.xml")["Body"].read())
    assert feed.entries[0].id == out["episodes"][0]["guid"]
    # Human output, verbose, a second time: everything already there; still no secret.
    p2 = _produce([*args, "--verbose"], env, tmp_path)
    assert p2.returncode == 0, p2.stderr
    assert "feed unchanged" in p2.stdout and SECRET_KEY not in p2.stdout + p2.stderr


def test_cli_due_dry_run_and_a_bad_date(s3_server: RcloneS3, fake_build: Path, tmp_path: Path) -> None:
    ep3 = load_episode(fake_build, "ep-1").model_copy(update={"id": "ep-3"})
    write_episode(fake_build, ep3, publish_date="26/11/2019")  # a date the config refuses
    before = _tree(s3_server.root)
    args = [
        "publish",
        "--due",
        "--dry-run",
        "--json",
        "--configs",
        str(fake_build),
        "--build-dir",
        str(tmp_path / "build"),
    ]
    p = _produce(args, _cli_env(s3_server), tmp_path)
    assert p.returncode == 2, p.stderr  # the bad date is a config error; the others are still planned
    out = json.loads(p.stdout)
    assert [d["episode"] for d in out["due"]] == ["ep-1", "ep-2"]
    assert out["unbuilt"] == ["ep-2"]
    assert [f["episode"] for f in out["failures"]] == ["ep-3"]
    assert "publish_date" in out["failures"][0]["error"] and "ISO 8601" in out["failures"][0]["error"]
    assert out["published"]["dry_run"] is True
    assert _tree(s3_server.root) == before


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        ({"KEYLIME_S3_BUCKET": "missing-bucket"}, 7, "bucket 'missing-bucket' does not exist"),
        ({"AWS_SECRET_ACCESS_KEY": "wrong-secret-value-123"}, 7, "access denied"),
        ({"KEYLIME_S3_ENDPOINT_URL": "localhost:9000"}, 2, "KEYLIME_S3_ENDPOINT_URL"),
    ],
)
def test_cli_storage_errors_are_one_line(
    s3_server: RcloneS3, fake_build: Path, tmp_path: Path, extra: dict[str, str], code: int, message: str
) -> None:
    env = _cli_env(s3_server, **extra)
    p = _produce(
        ["publish", "ep-1", "--configs", str(fake_build), "--build-dir", str(tmp_path / "build")], env, tmp_path
    )
    assert p.returncode == code, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and message in errors[0]  # one line: where, what, what to do
    assert "Traceback" not in p.stderr and "wrong-secret-value-123" not in p.stderr


def test_cli_unreachable_endpoint_fails_fast(fake_build: Path, tmp_path: Path, aws_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _cli_env(None, KEYLIME_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", KEYLIME_S3_BUCKET=BUCKET)
    storage = load_settings(fake_build, tmp_path / "build").show.storage
    # The same CLI failing before any network use: what start-up costs on this machine right now (under load it
    # alone can take 10 s and more, so a fixed bound fails for the wrong reason).
    t0 = time.monotonic()
    _produce(["publish", "--configs", str(fake_build)], env, tmp_path)
    startup = time.monotonic() - t0
    t0 = time.monotonic()
    p = _produce(
        ["publish", "ep-1", "--configs", str(fake_build), "--build-dir", str(tmp_path / "build")], env, tmp_path
    )
    elapsed = time.monotonic() - t0
    assert p.returncode == 7
    assert f"cannot connect to http://127.0.0.1:{port}" in p.stderr
    # Fails fast: one probe attempt within the connect timeout, not max_attempts retries with back-off (standard
    # retry mode sleeps up to 20 s between attempts). Slack: start-up twice over and one more connect timeout.
    assert storage.max_attempts > 1
    assert elapsed < 2 * startup + 2 * storage.connect_timeout_s, (elapsed, startup)


def test_cli_needs_an_episode_or_due(fake_build: Path, tmp_path: Path) -> None:
    p = _produce(["publish", "--configs", str(fake_build)], _cli_env(None), tmp_path)
    assert p.returncode == 2 and "give an EPISODE or --due" in p.stderr


# ------------------------------------------------------------------------------------------------- end to end


@pytest.mark.whisper
def test_due_builds_publishes_then_has_nothing_to_do(
    s3_server: RcloneS3, make_speech: Callable[..., Path], make_configs: Callable[..., Path], tmp_path: Path
) -> None:
    """What the scheduled workflow does on a fresh runner: nothing built, nothing live -> every stage, upload, feed."""
    cfg = make_configs([make_speech("part-1.wav", -20.0, repeat=2)], episode_id="ep-1")
    write_episode(cfg, load_episode(cfg, "ep-1").model_copy(update={"id": "ep-9", "number": 9, "publish_date": FUTURE}))
    build = tmp_path / "build"
    args = ["publish", "--due", "--json", "--configs", str(cfg), "--build-dir", str(build)]
    p = _produce(args, _cli_env(s3_server), tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [d["episode"] for d in out["due"]] == ["ep-1"]  # ep-9 is dated 2099
    files = out["published"]["episodes"][0]["files"]
    assert {f["role"] for f in files} == {"audio", "transcript", "chapters", "notes", "cover"}  # not the report
    assert {f["format"] for f in files if f["role"] == "transcript"} == {"txt", "srt", "vtt", "json", "html"}
    # The published MP3 is the tagged one, byte for byte.
    tagged = json.loads((build / "ep-1" / "tagged.json").read_text())
    audio = next(f for f in files if f["role"] == "audio")
    raw = raw_client(s3_server.endpoint_url)
    assert get_sha256(raw, audio["key"]) == (tagged["size_bytes"], tagged["sha256"])
    # The published transcript page plays the published MP3 (the build's page plays the MP3 beside it).
    page_key = next(f["key"] for f in files if f["role"] == "transcript" and f["format"] == "html")
    page = raw.get_object(Bucket=BUCKET, Key=page_key)["Body"].read().decode()
    assert f'<audio id="player" controls preload="metadata" src="{audio["url"]}">' in page
    assert 'src="ep-1.mp3"' in (build / "ep-1" / "transcript.html").read_text()
    notes_key = next(f["key"] for f in files if f["role"] == "notes" and f["format"] == "html")
    notes_html = raw.get_object(Bucket=BUCKET, Key=notes_key)["Body"].read().decode()
    assert next(f["url"] for f in files if f["key"] == page_key) in notes_html  # the notes link that page
    feed = feedparser.parse(raw.get_object(Bucket=BUCKET, Key="show/feed.xml")["Body"].read())
    assert [e.id for e in feed.entries] == [out["published"]["episodes"][0]["guid"]]
    assert int(feed.entries[0].enclosures[0].length) == tagged["size_bytes"]
    # The next scheduled run: nothing is due, nothing is written.
    before = _tree(s3_server.root)
    p2 = _produce(args, _cli_env(s3_server), tmp_path)
    assert p2.returncode == 0, p2.stderr
    again = json.loads(p2.stdout)
    assert again["due"] == [] and again["published"] is None
    assert _tree(s3_server.root) == before


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two subprocess runs of up to 600 s each (the default per-test limit is 600 s)
@pytest.mark.whisper
def test_demo_episode_258_end_to_end(s3_server: RcloneS3, tmp_path: Path) -> None:
    """`produce episode-258` (every stage, publish last) into the S3 server; a second run uploads nothing."""
    build = tmp_path / "build"
    args = ["episode-258", "--configs", str(REPO / "configs"), "--build-dir", str(build), "--json"]
    env = _cli_env(s3_server, KEYLIME_S3_PREFIX="podcast")
    # Every stage (voice detection, denoising, Whisper, the report) on a loaded runner: 120 s was not enough.
    p = _produce(args, env, tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert [s["name"] for s in summary["stages"]][-1] == "publish"
    pub = summary["publish"]
    ep = pub["episodes"][0]
    assert ep["live"] and pub["feed"]["updated"]
    raw = raw_client(s3_server.endpoint_url)
    audio = next(f for f in ep["files"] if f["role"] == "audio")
    mp3 = build / "episode-258" / "tagged" / "episode-258.mp3"  # the tagged copy is what goes out
    assert get_sha256(raw, audio["key"]) == (mp3.stat().st_size, sha256(mp3.read_bytes()))
    for f in ep["files"]:
        if f["role"] in ("transcript", "chapters") and f["format"] != "html":  # the page's player: published URL
            local = build / "episode-258" / f["key"].rsplit("/", 1)[1].split(".")[0]
            matches = [p for p in (build / "episode-258").glob(local.name + ".*") if p.suffix == "." + f["format"]]
            assert any(get_sha256(raw, f["key"])[1] == sha256(m.read_bytes()) for m in matches), f["key"]
    xml = raw.get_object(Bucket=BUCKET, Key="podcast/feed.xml")["Body"].read()
    d = feedparser.parse(xml)
    assert not d.bozo
    item = d.entries[0]
    assert item.title == "I'm a loser, baby! That's why I'm outperforming you"
    assert int(item.enclosures[0].length) == raw.head_object(Bucket=BUCKET, Key=audio["key"])["ContentLength"]
    root = etree.fromstring(xml)
    ns = {"podcast": PODCAST_NS}
    assert root.findtext("channel/podcast:guid", namespaces=ns) == podcast_guid(
        "https://media.keylime.example.org/podcast/feed.xml"
    )
    assert len(root.findall("channel/item/podcast:transcript", ns)) == 5
    assert root.find("channel/item/podcast:chapters", ns) is not None
    # Everything cached, everything already in the bucket: the second run writes nothing.
    before = _tree(s3_server.root)
    p2 = _produce(args, env, tmp_path, timeout=600)
    assert p2.returncode == 0, p2.stderr
    again = json.loads(p2.stdout)
    assert all(s["cached"] for s in again["stages"] if s["name"] != "publish")
    assert again["publish"]["bytes_uploaded"] == 0 and not again["publish"]["feed"]["updated"]
    assert _tree(s3_server.root) == before
