"""Hostile networks (docs/reliability.md, "Network"): peers that trickle, bodies that never end or outgrow their
stated length, URLs that are not http(s), hosts on private addresses, media that is not audio, batch inputs that do
not belong in the bucket, an S3 server behind a trickling proxy, and two publishers on one bucket. The HTTP peers
are the fake host on 127.0.0.1, the S3 server is ``rclone serve s3``, each misbehaving on purpose."""

from __future__ import annotations

import html
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from support import tagging as tf
from support.configs import storage_settings
from support.http import FakeHost
from support.media import make_image, make_mp3
from support.s3 import BUCKET, FaultProxy, RcloneS3, raw_client
from typer.testing import CliRunner

from keylime_prod import http, publish
from keylime_prod.catalogue import batch, release_check
from keylime_prod.catalogue.importer import fetch_media, import_feed
from keylime_prod.cli import app
from keylime_prod.config import load_settings
from keylime_prod.errors import ArchiveError, HttpError, KeylimeError, StorageError
from keylime_prod.publish import storage
from keylime_prod.publish.storage import S3Store, open_store


@pytest.fixture
def host() -> Iterator[FakeHost]:
    with FakeHost() as h:
        yield h


@pytest.fixture
def configs(make_configs: Callable[..., Path], jfk: Path) -> Path:
    return make_configs([jfk])


@pytest.fixture
def quick_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The minimum rate measured over 2 s windows instead of 20 s, so a trickle fails within seconds."""
    monkeypatch.setattr(http, "RATE_WINDOW_S", 2.0)


def _one_item_feed(host: FakeHost, enclosure: str, length: int | None) -> str:
    """An old feed of one item whose enclosure is ``enclosure`` (with ``length`` stated, if given)."""
    stated = f' length="{length}"' if length is not None else ""
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Old Show</title><link>https://old.example.org/</link><description>d</description>
<item><title>Episode 1</title><guid isPermaLink="false">tag:old.example.org,2019:1</guid>
<pubDate>Tue, 05 Mar 2019 06:00:00 +0000</pubDate><enclosure url="{html.escape(enclosure)}"{stated} type="audio/mpeg"/>
</item></channel></rss>"""
    return host.put("feed.xml", xml.encode(), "application/rss+xml")


def _date() -> Any:
    import datetime as dt

    return dt.datetime(2019, 3, 5, 6, 0, tzinfo=dt.timezone.utc)


def _import(*args: str) -> Any:
    return CliRunner().invoke(app, ["import", *args])


# ------------------------------------------------------------------------------------------- deadline and rate


def test_a_trickling_feed_fails_in_bounded_time_with_one_line_naming_the_host(
    host: FakeHost, configs: Path, tmp_path: Path, quick_rate: None
) -> None:
    url = host.put("feed.xml", b"<rss>" + b" " * 100_000 + b"</rss>", "application/rss+xml")
    host.fault("feed.xml", trickle=(1, 0.5))  # one byte every half second: every read "succeeds"
    t0 = time.monotonic()
    res = _import(url, "--allow-private", "--configs", str(configs), "--media", str(tmp_path / "m"))
    took = time.monotonic() - t0
    assert took < 10, took
    assert res.exit_code == ArchiveError.exit_code
    line = res.output.strip()
    assert "\n" not in line and "127.0.0.1:" in line and "under the minimum 1 KiB/s" in line, line


def test_trickling_media_is_a_problem_of_its_item_and_the_part_file_is_kept(
    host: FakeHost, configs: Path, tmp_path: Path, quick_rate: None
) -> None:
    mp3 = make_mp3(tmp_path / "a.mp3", seconds=3).read_bytes()
    media = host.put("m/a.mp3", mp3, "audio/mpeg")
    host.fault("m/a.mp3", trickle=(2, 0.4))
    feed = _one_item_feed(host, media, len(mp3))
    t0 = time.monotonic()
    res = import_feed(feed, configs, media_dir=tmp_path / "media", allow_private=True)
    assert time.monotonic() - t0 < 10
    (problem,) = res.problems
    assert "media not fetched" in str(problem) and "under the minimum" in str(problem)
    assert [e.media for e in res.episodes] == ["failed"]
    assert not (tmp_path / "media" / "episode-1.mp3").exists()


def test_every_exchange_has_an_overall_deadline(host: FakeHost) -> None:
    url = host.put("big.bin", b"x" * 2_000_000)
    host.fault("big.bin", trickle=(4096, 0.05))  # 80 KB/s: above any minimum rate, but 25 s in all
    client = http.Client(user_agent="test", allow_private=True)
    t0 = time.monotonic()
    with pytest.raises(HttpError, match="took longer than the 2 s allowed"):
        client.get(url, limits=http.Limits(deadline_s=2.0, min_rate=1024.0, max_bytes=10_000_000))
    assert time.monotonic() - t0 < 4


def test_a_server_that_never_answers_is_ended_by_the_watchdog(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    # The read timeout (30 s) would wait; the watchdog's answer deadline ends it.
    monkeypatch.setattr(http, "ANSWER_S", 1.0)
    url = host.put("slow.xml", b"<rss/>")
    host.fault("slow.xml", delay=8.0)
    t0 = time.monotonic()
    with pytest.raises(HttpError, match="did not answer within 1 s"):
        http.Client(user_agent="test", allow_private=True).get(url)
    assert time.monotonic() - t0 < 4


def test_long_transfers_log_progress_lines(
    host: FakeHost, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(http, "PROGRESS_EVERY_S", 0.5)
    url = host.put("big.bin", b"x" * 400_000)
    host.fault("big.bin", trickle=(40_000, 0.2))
    with caplog.at_level("INFO", logger="keylime_prod.http"):
        body = http.Client(user_agent="test", allow_private=True).get(url).body
    assert len(body) == 400_000
    lines = [r.getMessage() for r in caplog.records if r.name == "keylime_prod.http"]
    assert len(lines) >= 2 and all("MiB" in x and "127.0.0.1:" in x and "of 0.4 MiB" in x for x in lines), lines


# --------------------------------------------------------------------------------------------------- size caps


def test_an_endless_media_body_stops_at_the_enclosure_length(host: FakeHost, tmp_path: Path) -> None:
    mp3 = make_mp3(tmp_path / "a.mp3", seconds=3).read_bytes()
    url = host.put("m/a.mp3", mp3, "audio/mpeg")
    host.fault("m/a.mp3", endless=True)
    dest = tmp_path / "media" / "a.mp3"
    with pytest.raises(ArchiveError, match=f"longer than the {len(mp3):,} bytes allowed"):
        fetch_media(url, dest, length=len(mp3), allow_private=True)
    assert not dest.exists()
    assert dest.with_name("a.mp3.part").stat().st_size <= len(mp3)


def test_an_endless_body_without_a_length_stops_at_the_media_cap(
    host: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "MEDIA", http.Limits(deadline_s=60, min_rate=1024, max_bytes=3_000_000))
    url = host.put("m/a.mp3", make_mp3(tmp_path / "a.mp3", seconds=3).read_bytes(), "audio/mpeg")
    host.fault("m/a.mp3", endless=True)
    dest = tmp_path / "media" / "a.mp3"
    with pytest.raises(ArchiveError, match="longer than the 3,000,000 bytes allowed"):
        fetch_media(url, dest, length=None, allow_private=True)
    assert dest.with_name("a.mp3.part").stat().st_size <= 3_000_000


def test_a_feed_larger_than_the_document_cap_is_refused(
    host: FakeHost, configs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "DOCUMENT", http.Limits(deadline_s=60, min_rate=1024, max_bytes=1_000_000))
    url = host.put("feed.xml", b"x" * 64 * 1024)
    host.fault("feed.xml", endless=True)
    res = _import(url, "--allow-private", "--configs", str(configs), "--media", str(tmp_path / "m"))
    assert res.exit_code == ArchiveError.exit_code
    assert "longer than the 1,000,000 bytes allowed" in res.output


def test_verify_reads_the_audio_to_a_file_and_no_further_than_its_stated_length(host: FakeHost, tmp_path: Path) -> None:
    mp3 = make_mp3(tmp_path / "a.mp3", seconds=3).read_bytes()
    url = host.put("m/a.mp3", mp3, "audio/mpeg")
    host.fault("m/a.mp3", endless=True)
    dest = tmp_path / "got.mp3"
    fetch = release_check.HttpFetcher(allow_private=True)
    with pytest.raises(KeylimeError, match=f"longer than the {len(mp3):,} bytes allowed"):
        fetch.save(url, dest, max_bytes=len(mp3))
    assert dest.stat().st_size <= len(mp3)


# ------------------------------------------------------------------------------------------ what may be fetched


@pytest.mark.parametrize("enclosure", ["file:///etc/passwd", "redirect"])
def test_a_file_url_enclosure_is_never_fetched(host: FakeHost, configs: Path, tmp_path: Path, enclosure: str) -> None:
    if enclosure == "redirect":  # an http URL whose host answers 302 to file:///etc/passwd
        enclosure = host.put("m/a.mp3", b"")
        host.fault("m/a.mp3", redirect="file:///etc/passwd")
    res = import_feed(_one_item_feed(host, enclosure, None), configs, media_dir=tmp_path / "media", allow_private=True)
    (problem,) = res.problems
    if enclosure.startswith("file:"):  # the config refuses it: no config, nothing fetched
        assert "not imported: field archive.url" in str(problem) and res.episodes == ()
    else:  # every hop is checked
        assert "only http(s) URLs are fetched, not file URLs: file:///etc/passwd" in str(problem)
        assert [e.media for e in res.episodes] == ["failed"]
    assert not (tmp_path / "media").exists() or list((tmp_path / "media").iterdir()) == []


def test_loopback_is_refused_without_allow_private(host: FakeHost, configs: Path, tmp_path: Path) -> None:
    url = host.put("feed.xml", b"<rss/>", "application/rss+xml")
    res = _import(url, "--configs", str(configs), "--media", str(tmp_path / "m"))
    assert res.exit_code == ArchiveError.exit_code
    assert "resolves to 127.0.0.1, a loopback address: not fetched without --allow-private" in res.output
    assert host.requests == []  # refused before connecting
    v = release_check.check_live_feed(url, fetch=release_check.HttpFetcher(), audio=0)
    assert not v.ok and "loopback address" in v.problems[0].message


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.1.2.3", "private"),
        ("169.254.169.254", "link-local"),
        ("::1", "loopback"),
        ("::ffff:192.168.0.1", "private"),
    ],
)
def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch, address: str, kind: str) -> None:
    real = socket.getaddrinfo

    def fake(host: str, port: Any, *a: Any, **kw: Any) -> Any:
        if host == "media.example.test":  # one public address and one that is not: the host is refused
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (fam, socket.SOCK_STREAM, 6, "", (address, port)),
            ]
        return real(host, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(HttpError, match=f"resolves to {address}, a {kind} address"):
        http.Client(user_agent="test").get("http://media.example.test/feed.xml")


def test_the_connection_goes_to_the_address_that_was_checked(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    # DNS rebinding: a second lookup would give another address. Only the first (checked) answer is ever used.
    url = host.put("feed.xml", b"<rss/>")
    port = int(url.split(":")[2].split("/")[0])
    real, answers = socket.getaddrinfo, []

    def fake(name: str, p: Any, *a: Any, **kw: Any) -> Any:
        if name == "rebind.example.test":
            answers.append(name)
            ip = "127.0.0.1" if len(answers) == 1 else "192.0.2.1"  # TEST-NET: nothing answers there
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, p))]
        return real(name, p, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    r = http.Client(user_agent="test", allow_private=True).get(f"http://rebind.example.test:{port}/feed.xml")
    assert r.status == 200 and r.body == b"<rss/>" and len(answers) == 1


def test_media_that_is_not_audio_is_not_fetched(host: FakeHost, configs: Path, tmp_path: Path) -> None:
    text = b"root:x:0:0:root:/root:/bin/bash\n" * 100
    media = host.put("m/a.mp3", text, "audio/mpeg")
    res = import_feed(_one_item_feed(host, media, len(text)), configs, media_dir=tmp_path / "media", allow_private=True)
    (problem,) = res.problems
    assert "is not audio" in str(problem)
    assert [e.media for e in res.episodes] == ["failed"]
    assert list((tmp_path / "media").iterdir()) == []


# ----------------------------------------------------------------------------------------------------- batch


def _chapter_episode(configs: Path, img: str) -> None:
    toml = configs / "episodes" / "ep-1.toml"
    toml.write_text(toml.read_text("utf-8") + f'\n[[chapters]]\nstart = "00:00"\ntitle = "One"\nimg = "{img}"\n')


@pytest.mark.parametrize("where", ["outside", "absolute", "text"])
def test_batch_uploads_no_chapter_image_that_is_outside_the_project_or_not_an_image(
    configs: Path, tmp_path: Path, where: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the bucket\n")
    if where == "text":
        (configs / "episodes" / "notes.txt").write_text("a text file\n")
        img = "notes.txt"
    else:
        img = str(secret) if where == "absolute" else "../../secret.txt"
    _chapter_episode(configs, img)
    settings = load_settings(configs)
    store = open_store(settings.show.storage)
    from keylime_prod.config import load_episode

    ep = load_episode(configs, "ep-1")
    with pytest.raises(KeylimeError) as err:
        batch.plan_task(settings, ep, store, stages=None, now=_date(), threads=1)
    assert ("outside the configs folder" if where != "text" else "image") in err.value.message
    uploaded = [p for p in Path(store.root).rglob("*") if p.is_file()]  # type: ignore[attr-defined]
    assert not any("batch" in str(p) for p in uploaded), uploaded


@pytest.mark.parametrize("field", ["artwork", "recordings"])
def test_batch_uploads_no_cover_or_recording_that_a_local_run_would_refuse(
    configs: Path, tmp_path: Path, field: str
) -> None:
    import tomli_w

    from keylime_prod.config import load_episode, tomllib

    secret = tmp_path / "secret.txt"
    secret.write_text("not for the bucket\n")
    toml = configs / "episodes" / "ep-1.toml"
    doc = tomllib.loads(toml.read_text("utf-8"))
    doc[field] = str(secret) if field == "artwork" else [str(secret)]
    toml.write_text(tomli_w.dumps(doc), encoding="utf-8")
    settings = load_settings(configs)
    store = open_store(settings.show.storage)
    with pytest.raises(KeylimeError, match="not readable audio" if field == "recordings" else "image|artwork"):
        batch.plan_task(settings, load_episode(configs, "ep-1"), store, stages=None, now=_date(), threads=1)
    uploaded = [p for p in Path(store.root).rglob("*") if p.is_file()]  # type: ignore[attr-defined]
    assert not any(p.read_bytes() == secret.read_bytes() for p in uploaded), uploaded


def test_batch_uploads_a_chapter_image_beside_the_configs(configs: Path, tmp_path: Path) -> None:
    make_image(configs / "episodes" / "one.png", size=(640, 640))
    _chapter_episode(configs, "one.png")
    settings = load_settings(configs)
    store = open_store(settings.show.storage)
    from keylime_prod.config import load_episode

    task = batch.plan_task(settings, load_episode(configs, "ep-1"), store, stages=None, now=_date(), threads=1)
    assert task.inputs["one.png"].key is not None and task.inputs["one.png"].name == "one.png"


# -------------------------------------------------------------------------------------------------------- S3


@pytest.mark.s3
def test_an_s3_server_whose_answers_trickle_fails_within_the_call_deadline(s3_server: RcloneS3, tmp_path: Path) -> None:
    assert s3_server.port is not None
    proxy = FaultProxy("127.0.0.1", s3_server.port, trickle=(1, 0.3))  # every answer, one byte at a time
    try:
        store = open_store(
            storage_settings(proxy.endpoint_url, connect_timeout_s=1.0, read_timeout_s=2.0, max_attempts=1)
        )
        assert isinstance(store, S3Store) and store.deadline_for(100) < 3.1
        f = tmp_path / "notes.md"
        f.write_text("# Notes\n" * 12, encoding="utf-8")
        t0 = time.monotonic()
        with pytest.raises(StorageError, match=r"did not finish within 3 s") as err:
            store.upload_file(store.key("notes.md"), f, content_type="text/markdown", cache_control="x")
        assert time.monotonic() - t0 < 6
        assert f"127.0.0.1:{proxy.port}" in str(err.value)  # the endpoint, named
    finally:
        proxy.close()


@pytest.mark.s3
def test_an_s3_body_slower_than_the_minimum_rate_is_given_up(
    s3_server: RcloneS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "RATE_WINDOW_S", 1.0)
    assert s3_server.port is not None
    key = "podcast/episodes/ep-1/ep-1.mp3"
    raw_client(s3_server.endpoint_url).put_object(Bucket=BUCKET, Key=key, Body=b"x" * 1_000_000)
    proxy = FaultProxy("127.0.0.1", s3_server.port, trickle=(2000, 0.5))  # 4 KB/s, under the 8 KiB/s minimum
    try:
        store = open_store(storage_settings(proxy.endpoint_url, read_timeout_s=2.0, max_attempts=1))
        t0 = time.monotonic()
        with pytest.raises(StorageError, match=r"127\.0\.0\.1:\d+ moved .* under the minimum 8 KiB/s"):
            store.get_bytes(key)
        assert time.monotonic() - t0 < 6
    finally:
        proxy.close()


@pytest.mark.s3
def test_rclone_serve_s3_ignores_conditional_writes(s3_server: RcloneS3) -> None:
    # Why the feed is checked after it is written instead of written with If-Match (keylime_prod.publish._write_feed):
    # this server accepts a PutObject whatever its If-None-Match / If-Match says.
    raw = raw_client(s3_server.endpoint_url)
    first = raw.put_object(Bucket=BUCKET, Key="podcast/feed.xml", Body=b"1")["ETag"]
    raw.put_object(Bucket=BUCKET, Key="podcast/feed.xml", Body=b"2", IfNoneMatch="*")
    raw.put_object(Bucket=BUCKET, Key="podcast/feed.xml", Body=b"3", IfMatch=first)  # first is no longer current
    assert raw.get_object(Bucket=BUCKET, Key="podcast/feed.xml")["Body"].read() == b"3"


@pytest.mark.s3
def test_two_publishers_on_one_bucket_never_lose_an_episode(
    s3_server: RcloneS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine A publishes ep-7; between A's reading the bucket and A's writing the feed, machine B (another
    process, with its own temp folder, so its own publish lock) publishes ep-8 to the same bucket, and a prune on a
    third machine deletes A's freshly verified MP3. A's feed must hold both episodes and A's MP3 must be back."""
    cfg_a, build_a = tf.tagged_build(tmp_path / "a")
    with monkeypatch.context() as m:
        m.setattr(tf, "EPISODE_ID", "ep-8")
        cfg_b, build_b = tf.tagged_build(tmp_path / "b")
    storage_env = {"KEYLIME_S3_ENDPOINT_URL": s3_server.endpoint_url, "KEYLIME_S3_BUCKET": BUCKET}
    for k, v in {**storage_env, "KEYLIME_S3_PREFIX": "podcast"}.items():
        monkeypatch.setenv(k, v)
    raw = raw_client(s3_server.endpoint_url)
    other_tmp = tmp_path / "machine-b-tmp"
    other_tmp.mkdir()
    real_build_feed = publish.build_feed
    seen: dict[str, Any] = {}

    def build_feed_with_b_in_between(*args: Any, **kw: Any) -> bytes:
        if not seen:
            b = subprocess.run(
                [sys.executable, "-m", "keylime_prod", "publish", "ep-8", "--configs", str(cfg_b),
                 "--build-dir", str(build_b)],
                env={**os.environ, "TMPDIR": str(other_tmp)}, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            seen["b"] = b
            mine = [o["Key"] for o in raw.list_objects_v2(Bucket=BUCKET, Prefix="podcast/episodes/ep-7/")["Contents"]]
            seen["gone"] = next(k for k in mine if k.endswith(".mp3"))
            raw.delete_object(Bucket=BUCKET, Key=seen["gone"])
        return bytes(real_build_feed(*args, **kw))

    monkeypatch.setattr(publish, "build_feed", build_feed_with_b_in_between)
    a = CliRunner().invoke(app, ["publish", "ep-7", "--configs", str(cfg_a), "--build-dir", str(build_a)])
    assert seen["b"].returncode == 0, seen["b"].stderr
    assert "ep-8 (live)" in seen["b"].stdout
    assert a.exit_code == 0, a.output
    feed = feedparser.parse(raw.get_object(Bucket=BUCKET, Key="podcast/feed.xml")["Body"].read())
    manifests = {
        i: raw.get_object(Bucket=BUCKET, Key=f"podcast/episodes/{i}/manifest.json")["Body"].read()
        for i in ("ep-7", "ep-8")
    }
    assert sorted(e.id for e in feed.entries) == sorted(json.loads(m)["guid"] for m in manifests.values())
    assert raw.head_object(Bucket=BUCKET, Key=seen["gone"])["ContentLength"] > 0  # uploaded again
    assert "ep-7 (live)" in a.stdout


def test_verify_of_a_trickling_feed_ends_with_one_problem_naming_the_host(host: FakeHost, quick_rate: None) -> None:
    url = host.put("feed.xml", b"<rss>" + b" " * 100_000 + b"</rss>", "application/rss+xml")
    host.fault("feed.xml", trickle=(1, 0.5))
    t0 = time.monotonic()
    v = release_check.check_live_feed(url, fetch=release_check.HttpFetcher(allow_private=True), audio=0)
    assert time.monotonic() - t0 < 10
    (problem,) = v.problems
    assert (
        not v.ok and f"cannot reach {url.split('/')[2]}" in problem.message and "under the minimum" in problem.message
    )


def test_allow_private_is_also_read_from_the_environment(host: FakeHost, configs: Path, tmp_path: Path) -> None:
    url = host.put("feed.xml", b"<html>not a feed</html>", "text/html")
    res = CliRunner().invoke(
        app,
        ["import", url, "--configs", str(configs), "--media", str(tmp_path / "m")],
        env={"KEYLIME_ALLOW_PRIVATE": "1"},
    )
    assert "not a podcast feed" in res.output and host.requests == [("GET", "/feed.xml", None)]


@pytest.mark.s3
def test_produce_publish_to_a_trickling_bucket_ends_with_one_line_naming_the_endpoint(
    s3_server: RcloneS3, tmp_path: Path
) -> None:
    import tomli_w

    from keylime_prod.config import tomllib

    assert s3_server.port is not None
    cfg, build = tf.tagged_build(tmp_path)
    doc = tomllib.loads((cfg / "show.toml").read_text("utf-8"))
    doc.setdefault("storage", {}).update(connect_timeout_s=1.0, read_timeout_s=2.0, max_attempts=1)
    (cfg / "show.toml").write_text(tomli_w.dumps(doc), encoding="utf-8")
    proxy = FaultProxy("127.0.0.1", s3_server.port, trickle=(1, 0.3))
    try:
        env = {**os.environ, "KEYLIME_S3_ENDPOINT_URL": proxy.endpoint_url, "KEYLIME_S3_BUCKET": BUCKET}
        t0 = time.monotonic()
        p = subprocess.run(
            [sys.executable, "-m", "keylime_prod", "publish", tf.EPISODE_ID, "--configs", str(cfg),
             "--build-dir", str(build)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        took = time.monotonic() - t0
    finally:
        proxy.close()
    assert p.returncode == StorageError.exit_code, p.stderr
    errors = [x for x in p.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and f"127.0.0.1:{proxy.port} did not finish within 3 s" in errors[0], p.stderr
    assert took < 30, took
