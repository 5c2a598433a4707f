"""Going live without surprises: demo episodes stay out of a bucket's feed, `produce check` catches twins,
`produce verify` works on the quick start's local folder, and publish locks belong to their target."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from mutagen.id3 import ID3, TGID, TIT2
from support.configs import make_show, storage_settings
from support.feeds import gpodder
from support.s3 import BUCKET, RcloneS3

from keylime_prod import fsutil, publish
from keylime_prod.catalogue import release_check
from keylime_prod.catalogue.batch import select_episodes
from keylime_prod.catalogue.check import check_all, duplicates
from keylime_prod.config import Settings, list_episodes, load_episode, load_show
from keylime_prod.errors import KeylimeError, PublishError
from keylime_prod.publish.storage import open_store

REPO = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, tzinfo=UTC)


def _demo(release: publish.Release) -> publish.Release:
    return dataclasses.replace(release, episode=release.episode.model_copy(update={"demo": True}))


# ------------------------------------------------------------------------------------------- demo episodes


def test_the_shipped_demo_is_marked_and_numbers_are_unique() -> None:
    configs = REPO / "configs"
    episodes = [load_episode(configs, e) for e in list_episodes(configs)]
    assert {e.id: e.demo for e in episodes} == {"episode-258": False, "multitrack-demo": True}
    assert duplicates(episodes, load_show(configs / "show.toml"), configs) == []
    # `produce batch --all` (and --since) leaves the demo out; named, it still runs.
    assert select_episodes(configs, all_=True) == ["episode-258"]
    assert select_episodes(configs, ["multitrack-demo"]) == ["multitrack-demo"]


def test_check_errors_on_two_episodes_with_one_number_or_one_guid(
    make_configs: Callable[..., Path], make_tone: Callable[..., Path]
) -> None:
    rec = make_tone("rec.wav", seconds=1.0)
    cfg = make_configs([rec])
    one = (cfg / "episodes" / "ep-1.toml").read_text("utf-8")
    (cfg / "episodes" / "ep-2.toml").write_text(one.replace("2026-01-01", "2026-01-08"), "utf-8")
    (cfg / "episodes" / "ep-3.toml").write_text(
        'guid = "urn:x:1"\n' + one.replace("number = 1", "number = 3").replace("2026-01-01", "2026-01-15"), "utf-8"
    )
    (cfg / "episodes" / "ep-4.toml").write_text(
        'guid = "urn:x:1"\n' + one.replace("number = 1", "number = 4").replace("2026-01-01", "2026-01-22"), "utf-8"
    )
    # A demo may share a number: it never reaches a bucket's feed.
    (cfg / "episodes" / "demo.toml").write_text("demo = true\n" + one, "utf-8")
    errors = [str(e) for e in check_all(cfg).errors]
    assert errors == [
        f"{cfg}/episodes/ep-2.toml: field number: number 1 is also ep-1's (give each episode its own number "
        "(`produce new` picks the next one))",
        f"{cfg}/episodes/ep-4.toml: field guid: 'urn:x:1' is also ep-3's item guid: apps would keep only one of them "
        "(remove the guid line of the episode it does not belong to)",
    ]


def test_a_demo_is_never_due_for_a_bucket_and_never_published_to_one(
    s3_server: RcloneS3, make_release: Callable[..., publish.Release], tmp_path: Path
) -> None:
    real, demo = make_release("ep-1"), _demo(make_release("demo", number=2))
    show = make_show(storage_settings(s3_server.endpoint_url))
    due = publish.due([real.episode, demo.episode], show, now=NOW)
    assert [d.episode_id for d in due] == ["ep-1"]
    with pytest.raises(PublishError, match=r"demo: a demo episode \(demo = true\) is never published to a bucket"):
        publish.publish([real, demo], show, now=NOW)
    assert not [p for p in (s3_server.root / BUCKET).rglob("*") if p.is_file()]  # refused before any write
    # Into the local folder (the quick start's) it goes, as before.
    local = make_show(storage_settings(None, local_dir=tmp_path / "public"))
    assert [d.episode_id for d in publish.due([real.episode, demo.episode], local, now=NOW)] == ["demo", "ep-1"]
    res = publish.publish([real, demo], local, now=NOW)
    assert sorted(e.episode_id for e in res.episodes if e.live) == ["demo", "ep-1"]


# ---------------------------------------------------------------------------------------------------- verify


def _settings(show_storage_dir: Path, tmp_path: Path, **storage: str) -> Settings:
    st = storage_settings(None, local_dir=show_storage_dir, **storage)
    return Settings(show=make_show(st), configs_dir=REPO / "configs", build_root=tmp_path / "build")


def test_verify_serves_the_local_folder_right_after_the_quick_start(
    make_release: Callable[..., publish.Release], make_tone: Callable[..., Path], tmp_path: Path
) -> None:
    # The quick start publishes into public/ with the show's public URL, a host that does not exist yet (.invalid).
    settings = _settings(tmp_path / "public", tmp_path, public_base_url="https://media.keylime.invalid/podcast")
    mp3 = make_tone("loud.mp3", freq=1000, seconds=4.0, db=5.5)  # about -16 LUFS, as test_verify's host test
    tags = ID3()
    tags.add(TIT2(encoding=3, text=["Test episode"]))
    tags.add(TGID(encoding=3, text=["urn:keylime-test:ep-1"]))
    tags.save(mp3, v2_version=3)
    publish.publish([make_release(audio=mp3, seconds=4.0, guid="urn:keylime-test:ep-1")], settings.show, now=NOW)
    v = release_check.check_live_show(settings, audio="all")
    assert v.source is not None and "on http://127.0.0.1:" in v.source, v.source
    assert v.source in v.describe()
    assert v.ok, "\n".join(p.line() for p in v.problems)
    # Every check went over HTTP: HEAD + ranged GET of the MP3 (206), 4 transcripts, chapters, artwork, the feed,
    # the MP3 for the audio check; the fake release's two chapters are the one warning (Spotify wants three).
    assert v.requests == 10 and [p.check for p in v.problems] == ["chapters"]
    offline = release_check.check_live_show(settings, offline=True, audio=0)
    assert offline.ok and offline.source is not None and "directly" in offline.source


def test_verify_serves_ranges_and_reports_a_missing_file(
    make_release: Callable[..., publish.Release], tmp_path: Path
) -> None:
    settings = _settings(tmp_path / "public", tmp_path, public_base_url="https://media.keylime.invalid/podcast")
    publish.publish([make_release()], settings.show, now=NOW)
    next((tmp_path / "public").rglob("*.vtt")).unlink()
    v = release_check.check_live_show(settings, audio=0)
    (line,) = [p.line() for p in v.errors]
    assert line.startswith(f"error: {v.checked[0]}: transcript: answered 404, not 200 (https://media.keylime.invalid/")


def test_verify_without_a_published_folder_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(KeylimeError, match=r"nothing is published in the local folder yet \(run `produce EPISODE`"):
        release_check.check_live_show(_settings(tmp_path / "public", tmp_path))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://media.keylime.invalid/podcast/feed.xml", "its name does not resolve (DNS)"),
        ("http://127.0.0.1:9/podcast/feed.xml", "the connection was refused"),
    ],
)
def test_an_unreachable_host_is_one_short_line_with_a_hint(url: str, reason: str) -> None:
    v = release_check.check_live_feed(url, fetch=release_check.HttpFetcher(allow_private=True), audio=0)
    (line,) = [p.line() for p in v.problems]
    host = url.split("/")[2]
    assert line == (
        f"error: feed: feed: cannot reach {host}: {reason} (check that the host is online and show.feed_url / "
        f"storage.public_base_url (KEYLIME_PUBLIC_BASE_URL) are right) ({url})"
    )


# ----------------------------------------------------------------------------------------------------- locks


def test_publish_locks_belong_to_their_target(
    s3_server: RcloneS3, make_release: Callable[..., publish.Release], tmp_path: Path
) -> None:
    public = "https://media.example.org/podcast"  # staging and live share it
    live = make_show(storage_settings(s3_server.endpoint_url, public_base_url=public))
    staging = make_show(storage_settings(s3_server.endpoint_url, public_base_url=public, prefix="staging"))
    live_lock, staging_lock = (open_store(s.storage).lock_path("feed") for s in (live, staging))
    assert live_lock != staging_lock
    with fsutil.hold_lock(live_lock, "a publish run elsewhere"):
        # The staging prefix publishes while the live one is held...
        assert publish.publish([make_release()], staging, now=NOW).feed_updated
        # ... and the held target refuses at once, naming the lock.
        with pytest.raises(
            KeylimeError, match=r"the publish target s3://podcasts/podcast at http://127.0.0.1:\d+ is in use by pid \d+"
        ):
            publish.publish([make_release()], live, now=NOW)
    assert publish.publish([make_release()], live, now=NOW).feed_updated
    # A local folder holds its own lock, out of every key's reach.
    local = open_store(storage_settings(None, local_dir=tmp_path / "public"))
    assert local.lock_path("feed").parent == tmp_path / "public" / ".keylime"
    publish.publish([make_release()], make_show(storage_settings(None, local_dir=tmp_path / "public")), now=NOW)
    assert local.lock_path("feed").is_file()
    assert not [k for k in local.list_keys("") if ".keylime" in k]
    xml = (tmp_path / "public" / "podcast" / "feed.xml").read_bytes()
    assert len(gpodder(xml)["episodes"]) == 1


def test_the_suite_has_a_temporary_folder_of_its_own() -> None:
    import os
    import tempfile

    # tests/conftest.py points TMPDIR at the session's own folder: bucket locks of other runs are never seen.
    assert os.environ["TMPDIR"] == tempfile.gettempdir()
    assert "pytest-" in tempfile.gettempdir() and Path(tempfile.gettempdir()).is_dir()
    assert shutil.disk_usage(tempfile.gettempdir()).free > 0


# -------------------------------------------------------------------------------------------------- new episode


def _repo_configs(tmp_path: Path) -> Path:
    cfg = tmp_path / "configs"
    (cfg / "episodes").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "show.toml", cfg / "show.toml")
    for name in ("episode-258.toml", "multitrack-demo.toml"):
        shutil.copy(REPO / "configs" / "episodes" / name, cfg / "episodes" / name)
    shutil.copytree(REPO / "configs" / "assets", cfg / "assets")
    return cfg


def test_new_writes_the_next_episode_from_the_show(tmp_path: Path) -> None:
    from keylime_prod.catalogue.new import new_episode
    from keylime_prod.errors import ConfigError

    cfg = _repo_configs(tmp_path)
    made = new_episode(cfg)
    # After 258 (the demo's 259 is not counted), a week later, same season; the show's hosts.
    assert (made.episode_id, made.number, made.season, made.after) == ("episode-259", 259, 1, "episode-258")
    assert made.publish_date == dt.datetime(2019, 12, 3, 6, 0, tzinfo=UTC)
    assert made.path == cfg / "episodes" / "episode-259.toml"
    text = made.path.read_text("utf-8")
    assert "recordings = []" in text and "produce upload-raw episode-259" in text
    # It does not load until it names its audio: it can never be built or published unfinished.
    with pytest.raises(ConfigError, match="no audio: give recordings"):
        load_episode(cfg, "episode-259")
    made.path.write_text(text.replace("recordings = []", 'recordings = ["../raw/x.flac"]'), "utf-8")
    ep = load_episode(cfg, "episode-259")
    assert [h.name for h in ep.hosts] == [h.name for h in load_show(cfg / "show.toml").show.hosts]
    assert ep.number == 259 and not ep.demo
    # The next one follows it; a given id is used as is; nothing is ever overwritten.
    assert new_episode(cfg).episode_id == "episode-260"
    assert new_episode(cfg, "special").number == 261
    with pytest.raises(ConfigError, match="already exists: produce new never overwrites a config"):
        new_episode(cfg, "episode-259")
    # A cadence setting instead of a week.
    show = (cfg / "show.toml").read_text("utf-8").replace('language = "en"', 'language = "en"\ncadence_days = 14', 1)
    (cfg / "show.toml").write_text(show, "utf-8")
    (cfg / "episodes" / "special.toml").unlink()
    assert new_episode(cfg, "episode-261").publish_date == dt.datetime(2019, 12, 10, 6, tzinfo=UTC) + dt.timedelta(
        days=14
    )


def test_outside_the_repository_root_the_error_names_configs_and_the_variable(tmp_path: Path) -> None:
    from keylime_prod.config import load_settings
    from keylime_prod.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path / "configs")
    assert "show.toml not found" in str(e.value) and "--configs" in str(e.value) and "KEYLIME_CONFIGS" in str(e.value)


# ------------------------------------------------------------------------------------------------------- prune


def test_prune_deletes_only_what_nothing_refers_to(
    s3_server: RcloneS3, make_release: Callable[..., publish.Release]
) -> None:
    from keylime_prod.publish.prune import prune

    show = make_show(storage_settings(s3_server.endpoint_url))
    store = open_store(show.storage)
    first = publish.publish([make_release(title="Old title", freq=440)], show, now=NOW)
    publish.publish([make_release("ep-2", number=2)], show, now=NOW)
    # Re-titled and re-tagged: new notes and a new MP3; the old objects stay behind.
    second = publish.publish([make_release(title="New title", freq=550)], show, now=NOW)
    old = {f.key for f in first.episodes[0].files} - {f.key for f in second.episodes[0].files}
    assert len(old) == 3  # the MP3 and both show notes
    store.put_bytes("inbox/ep-1/part-1.wav", b"raw", content_type="audio/wav", cache_control="no-store")
    before = set(store.list_keys(""))

    plan = prune(show, store=store)
    assert plan.dry_run and {k for k, _ in plan.unreferenced} == old
    assert plan.bytes == sum(f.size for f in first.episodes[0].files if f.key in old)
    assert set(store.list_keys("")) == before  # a dry run deletes nothing
    assert "run with --yes to delete them" in plan.describe()

    done = prune(show, store=store, dry_run=False)
    assert {k for k, _ in done.unreferenced} == old
    assert set(store.list_keys("")) == before - old
    assert "inbox/ep-1/part-1.wav" in store.list_keys("inbox/")  # the raw recordings' inbox is never touched
    # Everything the live feed names is still there.
    xml = store.get_bytes(store.key("feed.xml"))
    assert xml is not None
    for ep in gpodder(xml)["episodes"]:
        for enc in ep["enclosures"]:
            key = enc["url"].removeprefix(store.base_url + "/")
            assert store.head(store.key(key)) is not None, key
    assert prune(show, store=store, dry_run=False).unreferenced == ()


# --------------------------------------------------------------------------------------------------------- CLI


def test_cli_new_upload_raw_and_prune(
    s3_server: RcloneS3, make_tone: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from keylime_prod.cli import app

    runner = CliRunner()
    cfg = _repo_configs(tmp_path)
    r = runner.invoke(app, ["new", "--configs", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["episode"] == "episode-259"
    # Outside the repository root, with nothing said: the error names --configs and KEYLIME_CONFIGS.
    monkeypatch.chdir(tmp_path / "configs" / "episodes")
    r = runner.invoke(app, ["new"])
    assert r.exit_code == 2 and "--configs" in r.output and "KEYLIME_CONFIGS" in r.output
    monkeypatch.setenv("KEYLIME_CONFIGS", str(cfg))
    for var, value in (("KEYLIME_S3_ENDPOINT_URL", s3_server.endpoint_url), ("KEYLIME_S3_BUCKET", BUCKET)):
        monkeypatch.setenv(var, value)
    take = make_tone("take-1.wav", seconds=1.0)
    r = runner.invoke(app, ["upload-raw", "episode-259", str(take), "--media", str(tmp_path / "media")])
    assert r.exit_code == 0, r.output
    assert "inbox:inbox/episode-259/take-1.wav" in r.output
    assert load_episode(cfg, "episode-259").recordings == (tmp_path / "media" / "raw" / "episode-259" / "take-1.wav",)
    r = runner.invoke(app, ["prune", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["dry_run"] is True and json.loads(r.stdout)["unreferenced"] == []


def test_an_unfinished_new_episode_fails_no_scheduled_run_before_its_date(tmp_path: Path) -> None:
    from keylime_prod.catalogue.new import new_episode
    from keylime_prod.config import load_settings
    from keylime_prod.pipeline.release import publish_due

    cfg = _repo_configs(tmp_path)
    new_episode(cfg)  # episode-259, 2019-12-03, no recordings yet
    settings = load_settings(cfg, tmp_path / "build")
    before = publish_due(settings, dry_run=True, now=dt.datetime(2019, 11, 30, tzinfo=UTC))
    assert [d.episode_id for d in before.due] == ["episode-258"] and before.failures == ()
    # On its date it is due and cannot load: a failure that names the file and what is missing.
    after = publish_due(settings, dry_run=True, now=dt.datetime(2019, 12, 4, tzinfo=UTC))
    assert [f.episode_id for f in after.failures] == ["episode-259"]
    assert "no audio: give recordings" in str(after.failures[0].error)
