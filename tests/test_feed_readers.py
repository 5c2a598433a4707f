"""The feed as real podcast apps read it (issue 11): gPodder's podcastparser, the Podcast Index's podcast-partytime
(Node.js) and feedparser, each reading what it is known to be picky about."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
from support.configs import make_show, storage_settings
from support.feeds import feed_of, gpodder, manifest, partytime, show_manifest, url

from keylime_prod import publish
from keylime_prod.guids import item_guid
from keylime_prod.publish.feed import MAX_DESCRIPTION, build_feed, description_html

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, tzinfo=UTC)
# Quote entities as the notes page writes them (Jinja: &#39; &#34;) and as html.escape does (&#x27;, which gPodder
# does not decode).
NOTES = '<p>I&#x27;m a loser, baby! That&#39;s why &#34;Creep&quot; &amp; co.</p><p><a href="x.vtt">T</a></p>'
CHAPTERS = [
    {"start": 1.5, "title": "Welcome"},
    {"start": 95.0, "title": "What the paper of Lingard and colleagues says about teams"},
    {"start": 1234.5, "title": "Key points"},
    {"start": 1800.25, "title": "Disclaimer"},
]
STAMP = re.compile(r"^\((\d\d):(\d\d):(\d\d)\) (.+)$", re.M)


def _feed() -> bytes:
    return feed_of(manifest(summary="I'm here. It's \"fine\".", notes_html=NOTES, chapters=CHAPTERS))


def test_gpodder_keeps_apostrophes_and_quotes() -> None:
    xml = _feed()
    assert b"&#x27;" not in xml and b"&#39;" not in xml
    ep = gpodder(xml)["episodes"][0]
    # gPodder reads content:encoded as the description (issue 11: it showed "Im a loser, baby! Thats why").
    assert ep["description"].startswith("I'm a loser, baby! That's why \"Creep\" & co.")
    assert 'href="x.vtt"' in ep["description_html"]  # tags and attributes untouched


def test_description_timestamps_for_spotify_and_apple(tmp_path: Path) -> None:
    xml = _feed()
    # What the Podcast Index stores as the item description (the <description> element, HTML decoded once).
    text = partytime(xml, tmp_path)["items"][0]["description"]
    text = re.sub(r"<[^>]+>", "\n", text)
    stamps = STAMP.findall(text)
    assert len(stamps) >= 3  # Spotify: at least three
    assert stamps[0][:3] == ("00", "00", "00")  # Spotify: the first at 00:00:00 (the chapter was marked at 1.5 s)
    assert [s[3] for s in stamps][2:] == ["Key points", "Disclaimer"]
    assert all(len(s[3]) < 40 for s in stamps)  # Spotify: titles under 40 characters
    assert stamps[1][3].endswith("…") and stamps[1][3].startswith("What the paper of Lingard")
    assert [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s, _ in stamps] == [0, 95, 1234, 1800]


def test_podlove_simple_chapters_read_by_gpodder() -> None:
    ep = gpodder(_feed())["episodes"][0]
    assert [(c["start"], c["title"]) for c in ep["chapters"]] == [
        (1, "Welcome"),  # podcastparser keeps whole seconds
        (95, CHAPTERS[1]["title"]),  # full titles here: psc has no length rule
        (1234, "Key points"),
        (1800, "Disclaimer"),
    ]


def test_partytime_reads_locked_owner_explicit_and_title(tmp_path: Path) -> None:
    xml = feed_of(
        manifest(title="Teams & 'trust'"), manifest("ep-2", explicit=True, date=dt.datetime(2026, 2, 1, tzinfo=UTC))
    )
    feed = partytime(xml, tmp_path)
    assert feed["locked"] is True and feed["podcastOwner"] == "owner@example.org"
    assert "locked" in feed["pc20support"]["1"]
    items = {i["guid"]: i for i in feed["items"]}
    one = items[item_guid("c6da6de0-a986-5d32-88a3-b033f83e4403", "ep-1")]
    two = items[item_guid("c6da6de0-a986-5d32-88a3-b033f83e4403", "ep-2")]
    assert one["title"] == "Teams & 'trust'"
    # Item itunes:explicit on every item: the channel's (false) where the episode says nothing.
    assert one["explicit"] is False and two["explicit"] is True


def test_item_itunes_title_read_by_feedparser() -> None:
    # feedparser reads only yes/clean for itunes:explicit (Apple now writes true/false): partytime checks that one.
    d = feedparser.parse(feed_of(manifest(title="Teams & 'trust'"), manifest("ep-2", title="Two")))
    assert not d.bozo
    assert sorted(e["itunes_title"] for e in d.entries) == ["Teams & 'trust'", "Two"]


def test_unlocked_feed_says_nothing() -> None:
    show = make_show(storage_settings(None))
    settings = show.feed.model_copy(update={"locked": False})
    xml = build_feed(show.show, [manifest()], show_manifest=show_manifest(), url=url, settings=settings, now=NOW)
    assert b"podcast:locked" not in xml
    assert b"podcast:locked" in feed_of(manifest())


def test_episode_config_guid_is_the_item_guid_forever(
    tmp_path: Path, make_release: Callable[..., publish.Release]
) -> None:
    old_host_guid = "https://old-host.example.com/?p=258"
    show = make_show(storage_settings(None, local_dir=tmp_path / "public"))
    res = publish.publish([make_release(guid=old_host_guid)], show, now=NOW)
    assert res.episodes[0].guid == old_host_guid
    xml = (tmp_path / "public" / "podcast" / "feed.xml").read_bytes()
    assert [e["guid"] for e in gpodder(xml)["episodes"]] == [old_host_guid]
    # A re-publish (new title, new build) keeps it.
    res = publish.publish([make_release(guid=old_host_guid, title="Renamed")], show, now=NOW)
    xml = (tmp_path / "public" / "podcast" / "feed.xml").read_bytes()
    assert [(e["guid"], e["title"]) for e in gpodder(xml)["episodes"]] == [(old_host_guid, "Renamed")]


@pytest.mark.parametrize("summary", ["é" * 3000, "a & b < c " * 600, "x" * 5000])
def test_description_fits_4000_bytes_with_every_timestamp(summary: str, tmp_path: Path) -> None:
    # Apple counts bytes; escapes and non-ASCII make the HTML longer than the summary's characters.
    html = description_html(manifest(summary=summary, chapters=CHAPTERS).item)
    assert 3900 <= len(html.encode("utf-8")) <= MAX_DESCRIPTION
    text = partytime(feed_of(manifest(summary=summary, chapters=CHAPTERS)), tmp_path)["items"][0]["description"]
    assert len(STAMP.findall(re.sub(r"<[^>]+>", "\n", text))) == len(CHAPTERS)


def test_podlove_chapters_carry_the_psc_prefix_the_docs_promise() -> None:
    from lxml import etree

    xml = _feed()
    # lxml named the namespace ns16 on every item when only the item extension declared it.
    assert b'xmlns:psc="http://podlove.org/simple-chapters"' in xml and b"ns16" not in xml
    root = etree.fromstring(xml)
    assert root.nsmap["psc"] == "http://podlove.org/simple-chapters"
    (chapters,) = root.iterfind("channel/item/psc:chapters", {"psc": "http://podlove.org/simple-chapters"})
    assert etree.QName(chapters).localname == "chapters" and chapters.prefix == "psc"
    assert [c.get("title") for c in chapters] == [c["title"] for c in CHAPTERS]


def test_content_encoded_does_not_repeat_the_title(
    tmp_path: Path, make_release: Callable[..., publish.Release]
) -> None:
    # The show notes page opens with <h1>title</h1>; apps show the item <title> above content:encoded already.
    show = make_show(storage_settings(None, local_dir=tmp_path / "public"))
    publish.publish([make_release(title="Feedback that residents remember")], show, now=NOW)
    xml = (tmp_path / "public" / "podcast" / "feed.xml").read_bytes()
    (ep,) = gpodder(xml)["episodes"]
    assert ep["title"] == "Feedback that residents remember"
    assert ep["description_html"].startswith("<p>Notes &amp; more</p>"), ep["description_html"][:80]
    assert "Feedback that residents remember" not in ep["description_html"]
    (entry,) = feedparser.parse(xml).entries
    assert "<h1" not in entry.content[0].value and entry.content[0].value.startswith("<p>Notes")
