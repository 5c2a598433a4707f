"""The ID3 tag as other players read it (issue 11): eyeD3 and TagLib (pytaglib) for WFED and TGID, and TGID equal to
the item <guid> of the published feed, read with gPodder's podcastparser."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import eyed3
import pytest
import tag_fixtures as tf
import taglib
from conftest_s3 import make_show, storage_settings
from feed_readers import gpodder

from keylime_prod import publish
from keylime_prod.tags import write_tags

FEED_URL = "https://media.example.org/podcast/feed.xml"


def _tagged(tmp_path: Path, *, version: int = 3, guid: str | None = None):  # type: ignore[no-untyped-def]
    cfg = tf.write_configs(tmp_path, id3_version=version)
    if guid:
        toml = cfg / "episodes" / f"{tf.EPISODE_ID}.toml"
        toml.write_text(f'guid = "{guid}"\n' + toml.read_text("utf-8"), encoding="utf-8")
    settings, episode = tf.load(cfg, tmp_path / "build")
    master = tf.make_master(tmp_path / "build" / tf.EPISODE_ID)
    return settings, episode, write_tags(master, episode, settings.show.show, settings.show.tags)


def _eyed3(mp3: Path) -> dict[bytes, str]:
    tag = eyed3.load(str(mp3)).tag
    return {fid: tag.frame_set[fid][0].text for fid in (b"WFED", b"TGID", b"TIT2")}


def _taglib(mp3: Path) -> dict[str, list[str]]:
    f = taglib.File(str(mp3))
    try:
        return dict(f.tags)
    finally:
        f.close()


@pytest.mark.parametrize("version", [3, 4])
def test_eyed3_and_taglib_read_the_feed_url_and_episode_id(tmp_path: Path, version: int) -> None:
    _, _, tagged = _tagged(tmp_path, version=version)
    seen = _eyed3(tagged.mp3)
    # issue 11: eyeD3 read WFED as "ttps://..." (the URL frame had no encoding byte).
    assert seen[b"WFED"] == FEED_URL
    assert seen[b"TIT2"] == tf.EMOJI_TITLE
    tags = _taglib(tagged.mp3)
    assert tags["PODCASTURL"] == [FEED_URL]  # TagLib's name for WFED
    assert tags["PODCASTID"] == [seen[b"TGID"]]  # TGID
    assert tags["TITLE"] == [tf.EMOJI_TITLE]


def test_tagged_json_records_no_local_path(tmp_path: Path) -> None:
    _, _, tagged = _tagged(tmp_path)
    assert tagged.report is not None
    doc = json.loads(tagged.report.read_text("utf-8"))
    strings = [v for v in doc.values() if isinstance(v, str)]
    assert doc["artwork"] == "cover.jpg" and doc["mp3"] == f"tagged/{tf.EPISODE_ID}.mp3"
    assert not [v for v in strings if os.path.isabs(v) or str(tmp_path) in v]


@pytest.mark.parametrize("guid", [None, "https://old-host.example.com/?p=7"])
def test_tgid_is_the_item_guid_of_the_published_feed(tmp_path: Path, guid: str | None) -> None:
    _, episode, tagged = _tagged(tmp_path, guid=guid)
    show = make_show(storage_settings(None, local_dir=tmp_path / "public"), feed_url=FEED_URL)
    release = publish.Release(
        episode=episode.model_copy(update={"publish_date": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)}),
        files=(publish.EpisodeFile("audio", tagged.mp3, "mp3"), publish.EpisodeFile("cover", show.show.artwork, "jpg")),
        duration=tf.DURATION,
    )
    publish.publish([release], show, now=dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    (item,) = gpodder((tmp_path / "public" / "podcast" / "feed.xml").read_bytes())["episodes"]
    assert _eyed3(tagged.mp3)[b"TGID"] == item["guid"]
    if guid:
        assert item["guid"] == guid
