"""The RSS feed: built from manifests with feedgen, read back with feedparser (and lxml for the podcast: tags)."""

from __future__ import annotations

import datetime as dt

import feedparser
import pytest
from lxml import etree
from support.feeds import NOW, feed_of, manifest, show_manifest, text_of, url

from keylime_prod.errors import FeedError
from keylime_prod.guids import item_guid, podcast_guid
from keylime_prod.publish.feed import (
    PODCAST_NS,
    Manifest,
    description_html,
    live_guids,
    screen,
)

UTC = dt.timezone.utc
NS = {"podcast": PODCAST_NS, "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd"}


def test_podcast_guid_matches_the_spec_example() -> None:
    # Podcasting 2.0 namespace docs: mp3s.nashownotes.com/pc20rss.xml -> 917393e3-1b1e-5cef-ace4-edaa54e1f810.
    assert podcast_guid("https://mp3s.nashownotes.com/pc20rss.xml") == "917393e3-1b1e-5cef-ace4-edaa54e1f810"
    assert podcast_guid("http://mp3s.nashownotes.com/pc20rss.xml/") == "917393e3-1b1e-5cef-ace4-edaa54e1f810"


def test_required_apple_tags_read_back_with_feedparser() -> None:
    xml = feed_of(manifest(), manifest("ep-2", title="Episode two", date=dt.datetime(2026, 2, 1, tzinfo=UTC)))
    d = feedparser.parse(xml)
    assert not d.bozo, d.get("bozo_exception")
    ch = d.feed
    assert ch.title == "Test Show"
    assert ch.description == "A show for tests & checks <with markup>."
    assert ch.language == "en"
    assert ch.link == "https://example.org/"
    assert ch.image.href == url("podcast/art/cover.0123456789.jpg")
    assert [t.term for t in ch.tags] == ["Health & Fitness", "Medicine"]
    # Apple now spells it true/false (feedparser 6 still only maps "yes"), so read the element itself.
    assert etree.fromstring(xml).findtext("channel/itunes:explicit", namespaces=NS) == "false"
    root = etree.fromstring(xml)
    assert root.findtext("channel/itunes:author", namespaces=NS) == "Test Author"
    assert root.findtext("channel/itunes:owner/itunes:email", namespaces=NS) == "owner@example.org"
    assert ch.publisher_detail.email == "owner@example.org"
    # Newest first; every required item tag present with the values from the manifest.
    assert [e.title for e in d.entries] == ["Episode two", "Episode one"]
    e = d.entries[1]
    enc = e.enclosures[0]
    assert (enc.href, int(enc.length), enc.type) == (
        url("podcast/episodes/ep-1/ep-1.1111111111.mp3"),
        123_456,
        "audio/mpeg",
    )
    assert e.id == item_guid(show_manifest().podcast_guid, "ep-1")
    assert e.guidislink is False
    assert e.published_parsed[:4] == (2026, 1, 1, 6)
    assert e.itunes_duration == "1835"
    assert (e.itunes_episode, e.itunes_season, e.itunes_episodetype) == ("258", "1", "full")
    assert e.content[0].value == "<p>Notes &amp; <b>links</b></p>"
    # Spotify chapters: timestamps in the description.
    assert "(00:05:30) Findings" in e.summary


def test_podcasting20_tags() -> None:
    root = etree.fromstring(feed_of(manifest(persons=({"name": "Lara Varpio"}, {"name": "Guest", "role": "guest"}))))
    ch = root.find("channel")
    assert ch.findtext("podcast:guid", namespaces=NS) == show_manifest().podcast_guid
    hosts = ch.findall("podcast:person", NS)
    assert [(p.text, p.get("role"), p.get("group")) for p in hosts] == [
        ("Lara Varpio", "host", "cast"),
        ("Jason Frank", "host", "cast"),
    ]
    item = ch.find("item")
    ts = item.findall("podcast:transcript", NS)
    assert [(t.get("type"), t.get("language"), t.get("rel")) for t in ts] == [
        ("text/vtt", "en", "captions"),
        ("application/x-subrip", "en", "captions"),
        ("text/plain", "en", None),
    ]
    assert ts[0].get("url") == url("podcast/episodes/ep-1/ep-1.2222222222.vtt")
    chap = item.find("podcast:chapters", NS)
    assert chap.get("type") == "application/json+chapters"
    assert chap.get("url") == url("podcast/episodes/ep-1/chapters.5555555555.json")
    # The item's person list replaces the channel's, so it names everyone on this episode.
    assert [(p.text, p.get("role")) for p in item.findall("podcast:person", NS)] == [
        ("Lara Varpio", "host"),
        ("Guest", "guest"),
    ]
    assert item.find("itunes:image", NS).get("href") == url("podcast/art/cover.0123456789.jpg")


def test_item_persons_omitted_when_same_as_channel() -> None:
    same = ({"name": "Lara Varpio"}, {"name": "Jason Frank"})
    root = etree.fromstring(feed_of(manifest(persons=same)))
    assert root.find("channel/item").findall("podcast:person", NS) == []


@pytest.mark.parametrize(
    "title",
    ["Fish & Chips <b>bold</b> \"quoted\" 'single' 🎧🩺", "A]]>B & C", "&amp; already-escaped &lt;"],
)
def test_special_characters_escaped(title: str) -> None:
    summary = f"Summary of {title}"
    xml = feed_of(manifest(title=title, summary=summary), title=f"Show {title}")
    etree.fromstring(xml)  # well-formed
    d = feedparser.parse(xml)
    assert not d.bozo
    assert d.feed.title == f"Show {title}"
    assert d.entries[0].title == title
    assert summary in text_of(d.entries[0].summary)


def test_notes_with_cdata_terminator_still_parse() -> None:
    html = "<p>a ]]> b &amp; c</p>"
    d = feedparser.parse(feed_of(manifest(notes_html=html)))
    assert not d.bozo
    assert d.entries[0].content[0].value == html


def test_a_manifest_with_control_characters_is_left_out_and_the_others_stay() -> None:
    bad = manifest("ep-2", title="bad \x0b title")
    fit, left = screen([manifest(), bad])
    assert fit == [manifest()]
    (x,) = left
    assert (x.episode_id, x.reason) == ("ep-2", "item.title holds U+000B, a character XML cannot carry")
    assert [e.title for e in feedparser.parse(feed_of(manifest(), bad)).entries] == ["Episode one"]


def test_future_episodes_stay_out_and_feed_is_deterministic() -> None:
    later = manifest("ep-9", title="Later", date=dt.datetime(2026, 6, 1, tzinfo=UTC))
    a = feed_of(manifest(), later)
    assert feedparser.parse(a).entries[0].title == "Episode one"
    assert len(feedparser.parse(a).entries) == 1
    # Same manifests, another moment: identical bytes (lastBuildDate comes from the items, not the clock).
    assert feed_of(manifest(), later, now=NOW + dt.timedelta(days=3)) == a
    b = feed_of(manifest(), later, now=dt.datetime(2026, 6, 2, tzinfo=UTC))
    assert [e.title for e in feedparser.parse(b).entries] == ["Later", "Episode one"]
    assert live_guids(b) == {manifest().guid, later.guid}


def test_a_duplicate_guid_is_left_to_the_manifest_published_first() -> None:
    twin = manifest("ep-2").model_copy(update={"guid": manifest().guid})
    fit, left = screen([twin, manifest()])
    assert fit == [manifest()]
    assert [x.episode_id for x in left] == ["ep-2"] and "is the guid of ep-1" in left[0].reason
    assert [e.id for e in feedparser.parse(feed_of(manifest(), twin)).entries] == [manifest().guid]


def test_description_keeps_timestamps_within_4000_chars() -> None:
    m = manifest(summary="x" * 5000)
    text = text_of(description_html(m.item))
    assert len(text) <= 4000
    assert text.endswith("(00:00:00) Welcome(00:05:30) Findings")
    assert description_html(manifest(summary="a <b> & c").item).startswith("<p>a &lt;b&gt; &amp; c</p>")


def test_malformed_manifest_names_the_key() -> None:
    with pytest.raises(FeedError, match=r"s3://b/k/manifest.json: not a valid publish manifest: field item"):
        Manifest.parse(b'{"episode_id": "x", "guid": "g", "first_published": "2026-01-01T00:00:00Z", '
                       b'"updated": "2026-01-01T00:00:00Z", "files": []}', "s3://b/k/manifest.json")  # fmt: skip
