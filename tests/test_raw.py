"""Raw recordings kept out of git: `produce upload-raw` into the bucket's private inbox of a real `rclone serve s3`,
then fetched once by the build, checked by size and SHA-256."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support.s3 import BUCKET, RcloneS3

from keylime_prod.catalogue.raw import fetch_raw, upload_raw
from keylime_prod.config import Settings, load_episode, load_settings
from keylime_prod.errors import AudioError, ConfigError, KeylimeError, StorageError
from keylime_prod.publish.storage import open_store


def _settings(cfg: Path, s3: RcloneS3, tmp_path: Path, prefix: str = "podcast") -> Settings:
    return load_settings(
        cfg, tmp_path / "build",
        **{"storage.endpoint_url": s3.endpoint_url, "storage.bucket": BUCKET, "storage.prefix": prefix},
    )  # fmt: skip


@pytest.fixture
def uploaded(
    s3_server: RcloneS3, make_configs: Callable[..., Path], make_tone: Callable[..., Path], tmp_path: Path
) -> tuple[Settings, list[Path]]:
    """ep-1 with its two recordings uploaded by upload_raw; the producer's own files are in tmp_path/desk."""
    desk = tmp_path / "desk"
    desk.mkdir()
    parts = [
        make_tone(f"part-{i}.wav", freq=300 + 100 * i, seconds=2.0).replace(desk / f"part-{i}.wav") for i in (1, 2)
    ]
    cfg = make_configs([tmp_path / "placeholder.wav"])
    settings = _settings(cfg, s3_server, tmp_path)
    upload_raw(settings, "ep-1", parts)
    return settings, parts


def test_upload_raw_puts_the_files_in_the_private_inbox_and_writes_the_config(
    uploaded: tuple[Settings, list[Path]], s3_server: RcloneS3, tmp_path: Path
) -> None:
    settings, parts = uploaded
    bucket = s3_server.root / BUCKET
    for p in parts:  # in the inbox, outside the public prefix, byte for byte; the producer's file untouched
        assert (bucket / "inbox" / "ep-1" / p.name).read_bytes() == p.read_bytes()
    assert not (bucket / "podcast").exists()
    ep = load_episode(settings.configs_dir, "ep-1")
    media = tmp_path / "media" / "raw" / "ep-1"
    assert ep.recordings == (media / "part-1.wav", media / "part-2.wav")
    assert [(r.file, r.key, r.size, r.sha256) for r in ep.raw] == [
        (media / p.name, f"inbox/ep-1/{p.name}", p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in parts
    ]
    text = (settings.configs_dir / "episodes" / "ep-1.toml").read_text("utf-8")
    assert 'recordings = [\n    "../../media/raw/ep-1/part-1.wav",\n    "../../media/raw/ep-1/part-2.wav",\n]' in text
    assert "placeholder" not in text and text.count("[[raw]]") == 2
    # Again (a re-take of part 2 only): the tables are replaced, not added to.
    upload_raw(settings, "ep-1", parts[1:])
    again = load_episode(settings.configs_dir, "ep-1")
    assert [r.key for r in again.raw] == ["inbox/ep-1/part-2.wav"] and len(again.recordings) == 1


def test_the_build_fetches_a_missing_recording_once_and_checks_it(
    uploaded: tuple[Settings, list[Path]], s3_server: RcloneS3, tmp_path: Path
) -> None:
    settings, parts = uploaded
    # A fresh runner: the repository's configs, no media folder.
    shutil.rmtree(tmp_path / "media")
    ep = load_episode(settings.configs_dir, "ep-1")
    got = fetch_raw(ep, settings.show.storage)
    assert [(f.action, f.source) for f in got] == [("fetched", "inbox:inbox/ep-1/part-1.wav"),
                                                   ("fetched", "inbox:inbox/ep-1/part-2.wav")]  # fmt: skip
    assert [r.read_bytes() for r in ep.recordings] == [p.read_bytes() for p in parts]
    assert [f.action for f in fetch_raw(ep, settings.show.storage)] == ["present", "present"]
    # The object changed behind the record: refused, nothing left under the recording's name.
    store = open_store(settings.show.storage)
    store.put_bytes("inbox/ep-1/part-2.wav", b"RIFF" + b"\0" * 100, content_type="audio/wav", cache_control="no-store")
    ep.recordings[1].unlink()
    with pytest.raises(AudioError, match=r"the inbox object inbox/ep-1/part-2.wav has 104 bytes and SHA-256"):
        fetch_raw(ep, settings.show.storage)
    assert not ep.recordings[1].exists() and not list(ep.recordings[1].parent.glob(".*"))
    # A local file that differs from its record is never replaced: an error says what to do.
    ep.recordings[1].write_bytes(b"edited by hand")
    with pytest.raises(AudioError, match="upload it again with produce upload-raw, or move the wrong file away"):
        fetch_raw(ep, settings.show.storage)
    assert ep.recordings[1].read_bytes() == b"edited by hand"


def test_the_pipeline_fetches_before_mastering(uploaded: tuple[Settings, list[Path]], tmp_path: Path) -> None:
    from keylime_prod.pipeline import run_episode

    settings, parts = uploaded
    shutil.rmtree(tmp_path / "media")
    result = run_episode(settings, "ep-1", upto="master")
    master = result.artefacts["master"]
    assert master.mp3.is_file() and master.duration > 3.0  # both 2 s parts, trimmed and joined
    assert (tmp_path / "media" / "raw" / "ep-1" / "part-1.wav").read_bytes() == parts[0].read_bytes()


def test_upload_raw_refuses_what_would_go_wrong(
    s3_server: RcloneS3, make_configs: Callable[..., Path], make_tone: Callable[..., Path], tmp_path: Path
) -> None:
    rec = make_tone("take one.wav", seconds=1.0)
    cfg = make_configs([rec])
    with pytest.raises(AudioError, match=r"'take one.wav' cannot be a key \(rename it"):
        upload_raw(_settings(cfg, s3_server, tmp_path), "ep-1", [rec])
    with pytest.raises(StorageError, match="the inbox would be public"):
        upload_raw(_settings(cfg, s3_server, tmp_path, prefix=""), "ep-1", [rec])
    with pytest.raises(ConfigError, match=r"no such episode config \(run `produce new ep-9` first\)"):
        upload_raw(_settings(cfg, s3_server, tmp_path), "ep-9", [rec])
    # Raw sources are https or inbox keys, with both checks recorded.
    toml = cfg / "episodes" / "ep-1.toml"
    toml.write_text(
        toml.read_text("utf-8") + f'\n[[raw]]\nfile = "{rec}"\nurl = "http://x.example.org/a.wav"\nsize = 1\n'
        f'sha256 = "{"0" * 64}"\n',
        "utf-8",
    )
    with pytest.raises(KeylimeError, match="raw audio is fetched over https only"):
        load_episode(cfg, "ep-1")
