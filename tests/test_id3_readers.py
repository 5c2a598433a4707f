"""The ID3 tag as other players read it (issue 11): eyeD3 and TagLib (pytaglib) for WFED and TGID, and TGID equal to
the item <guid> of the published feed, read with gPodder's podcastparser; URLs without a NUL and the full date, with
no warning, in mutagen, eyeD3 and TagLib."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

import eyed3
import mutagen
import pytest
import taglib
from support import tagging as tf
from support.configs import make_show, storage_settings
from support.feeds import gpodder

from keylime_prod import publish
from keylime_prod.tags import write_tags
from keylime_prod.tags.id3 import KNOWN_FRAMES, ascii_url

FEED_URL = "https://media.example.org/podcast/feed.xml"


def _tagged(tmp_path: Path, *, version: int = 3, guid: str | None = None):  # type: ignore[no-untyped-def]
    cfg = tf.write_configs(tmp_path, id3_version=version, guid=guid)
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


EPISODE_PAGE = "https://show.example.org/episodes/7"
SHOW_PAGE = "https://show.example.org/"


@pytest.mark.parametrize("version", [3, 4])
def test_urls_carry_no_nul_in_any_reader(tmp_path: Path, version: int) -> None:
    _, _, tagged = _tagged(tmp_path, version=version)
    # eyeD3 handed WOAR/WOAF/WXXX back with the NUL mutagen wrote after each URL.
    tag = eyed3.load(str(tagged.mp3)).tag
    urls = {fid: tag.frame_set[fid][0].url for fid in (b"WOAR", b"WOAF", b"WXXX")}
    assert urls == {b"WOAR": SHOW_PAGE, b"WOAF": EPISODE_PAGE, b"WXXX": EPISODE_PAGE}
    # mutagen's own URL frame classes (no help from ours).
    m = mutagen.File(tagged.mp3)
    assert (m["WOAR:" + SHOW_PAGE].url, m["WOAF"].url, m["WXXX:"].url) == (SHOW_PAGE, EPISODE_PAGE, EPISODE_PAGE)
    tags = _taglib(tagged.mp3)
    assert (tags["ARTISTWEBPAGE"], tags["FILEWEBPAGE"], tags["URL"]) == ([SHOW_PAGE], [EPISODE_PAGE], [EPISODE_PAGE])


@pytest.mark.parametrize("version", [3, 4])
def test_every_reader_gets_the_full_date_without_a_warning(
    tmp_path: Path, version: int, caplog: pytest.LogCaptureFixture
) -> None:
    _, episode, tagged = _tagged(tmp_path, version=version)
    assert episode.publish_date == dt.datetime(2019, 11, 26, 6, 0, tzinfo=dt.timezone.utc)  # 0600: eyeD3's trap
    with caplog.at_level(logging.WARNING, logger="eyed3"):
        tag = eyed3.load(str(tagged.mp3)).tag
        best = tag.getBestDate()
    assert not [r.getMessage() for r in caplog.records], "eyeD3 warned reading the tag"
    assert (best.year, best.month, best.day, best.hour, best.minute) == (2019, 11, 26, 6, 0)
    assert str(mutagen.File(tagged.mp3)["TDRC"]) == "2019-11-26 06:00:00"
    assert _taglib(tagged.mp3)["DATE"] == ["2019-11-26 06:00:00"]


@pytest.mark.parametrize("version", [3, 4])
def test_wfed_in_mutagen(tmp_path: Path, version: int) -> None:
    _, _, tagged = _tagged(tmp_path, version=version)
    # mutagen declares WFED a URL frame (no encoding byte), iTunes, TagLib and eyeD3 a text frame: no byte layout
    # reads right in both. We write iTunes' text frame in Latin-1: mutagen's own class stops at its 0 encoding byte
    # and reads an empty URL (in UTF-16 it read the garbage '\x01ÿþh'), and with the text-frame class the URL.
    assert mutagen.File(tagged.mp3)["WFED"].url == ""
    assert mutagen.id3.ID3(tagged.mp3, known_frames=KNOWN_FRAMES)["WFED"].text == [FEED_URL]


def test_urls_are_ascii_in_frames() -> None:
    assert ascii_url("https://例え.example.org/épisode 7?q=ü") == (
        "https://%E4%BE%8B%E3%81%88.example.org/%C3%A9pisode%207?q=%C3%BC"
    )
    assert ascii_url(FEED_URL) == FEED_URL
