"""``produce import FEED`` (issue 12, item 1) against a real HTTP server on 127.0.0.1 serving an old feed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from support.archive import OldEpisode, feed_xml, make_old_episodes
from support.http import FakeHost
from support.media import make_mp3
from typer.testing import CliRunner

from keylime_prod.catalogue.importer import fetch_media, import_feed
from keylime_prod.cli import app
from keylime_prod.config import list_episodes, load_episode
from keylime_prod.errors import ArchiveError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def configs(make_configs: Callable[..., Path], jfk: Path) -> Path:
    """A show with one hand-written episode (ep-1, no guid)."""
    return make_configs([jfk])


def test_import_writes_configs_and_fetches_media(
    configs: Path, tmp_path: Path, old_feed: tuple[str, list[OldEpisode]]
) -> None:
    url, old = old_feed
    res = import_feed(url, configs, media_dir=tmp_path / "media", allow_private=True)
    assert not res.problems
    ids = [e.episode_id for e in res.episodes]
    # Oldest first; numbered items by number, the unnumbered one by its title.
    assert ids == ["episode-100", "episode-101", "a-talk-about-courage-the-jfk-clip", "episode-103"]
    assert sorted(list_episodes(configs)) == sorted(["ep-1", *ids])
    for e, o in zip(res.episodes, old, strict=True):
        ep = load_episode(configs, e.episode_id)  # the config validates as any episode does
        assert ep.guid == o.guid
        assert ep.title == o.title
        assert ep.publish_date == o.date
        assert ep.number == (o.number if o.number is not None else 0)
        assert ep.summary == f"About {o.title} & more."  # the HTML description as plain text
        assert ep.explicit is o.explicit
        assert ep.archive is not None and ep.archive.url.endswith(o.path) and ep.archive.length == len(o.mp3)
        assert ep.archive.remaster is False
        assert ep.archive.duration == float(o.duration[-1]) if o.duration else True
        assert ep.hosts[0].name == "Lara Varpio"  # the show's hosts
        # The media is where the config says, byte for byte what the host serves.
        assert ep.recordings[0] == (tmp_path / "media" / f"{e.episode_id}.mp3").resolve()
        assert sha(ep.recordings[0].read_bytes()) == sha(o.mp3)
        assert e.media == "fetched" and e.config == "added"


def test_reimport_adds_new_items_and_changes_nothing_else(
    configs: Path, tmp_path: Path, old_host: FakeHost, old_feed: tuple[str, list[OldEpisode]]
) -> None:
    url, old = old_feed
    media = tmp_path / "media"
    first = import_feed(url, configs, media_dir=media, allow_private=True)
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (configs / "episodes").glob("*.toml")}
    # The host adds two items and edits an old title: the new ones are added, nothing imported changes.
    more = make_old_episodes(old_host, 6)[4:]
    edited = [OldEpisode(old[0].guid, "Renamed on the old host", *[getattr(old[0], f) for f in ("number", "date")],
                         old[0].path, old[0].mp3), *old[1:]]  # fmt: skip
    old_host.put("feed.xml", feed_xml(old_host, [*edited, *more]).encode(), "application/rss+xml")
    fetched = len([r for r in old_host.requests if r[1].startswith("/media/")])
    second = import_feed(url, configs, media_dir=media, allow_private=True)
    assert not second.problems
    for name, (data, mtime) in files.items():
        p = configs / "episodes" / name
        assert p.read_bytes() == data and p.stat().st_mtime_ns == mtime
    assert [e.episode_id for e in second.episodes[:4]] == [e.episode_id for e in first.episodes]
    assert [e.config for e in second.episodes] == ["kept"] * 4 + ["added"] * 2
    assert [e.media for e in second.episodes] == ["present"] * 4 + ["fetched"] * 2
    # Present media is not downloaded again.
    assert len([r for r in old_host.requests if r[1].startswith("/media/")]) == fetched + 2
    assert load_episode(configs, "episode-100").title == old[0].title


def test_fetch_resumes_with_range_and_checks_the_length(tmp_path: Path, old_host: FakeHost) -> None:
    data = make_mp3(tmp_path / "src.mp3", seconds=40).read_bytes()  # real audio: only audio is kept
    assert len(data) > 300_000
    url = old_host.put("big.mp3", data, "audio/mpeg")
    dest = tmp_path / "m" / "big.mp3"
    old_host.fault("/big.mp3", close_after=300_000, times=1)
    with pytest.raises(ArchiveError):
        fetch_media(url, dest, length=len(data), allow_private=True)
    part = dest.with_name("big.mp3.part")
    assert not dest.exists() and part.stat().st_size == 300_000  # kept for the next run, not under the final name
    assert fetch_media(url, dest, length=len(data), allow_private=True) == "resumed"
    assert old_host.requests[-1] == ("GET", "/big.mp3", "bytes=300000-")
    assert sha(dest.read_bytes()) == sha(data) and not part.exists()
    assert fetch_media(url, dest, length=len(data), allow_private=True) == "present"
    # A host that ignores Range sends everything again (200): the download restarts instead of appending.
    dest.unlink()
    part.write_bytes(data[:1000])
    old_host.ranges = False
    assert fetch_media(url, dest, length=len(data), allow_private=True) == "fetched"
    assert sha(dest.read_bytes()) == sha(data)
    # The enclosure length is checked: a feed that lies about it is an error, and nothing gets the final name.
    dest.unlink()
    with pytest.raises(ArchiveError, match=f"server has {len(data)} bytes but the feed's enclosure length is 5"):
        fetch_media(url, dest, length=5, allow_private=True)
    assert not dest.exists()


def test_bad_feed_items_are_one_line_each_and_the_rest_import(
    configs: Path, tmp_path: Path, old_host: FakeHost
) -> None:
    old = make_old_episodes(old_host, 2)
    extra = f"""<item><title>No audio</title><guid>no-audio</guid><pubDate>Tue, 05 Mar 2019 06:00:00 +0000</pubDate>
</item>
<item><title>Twin</title><guid>{old[0].guid}</guid><pubDate>Tue, 05 Mar 2019 06:00:00 +0000</pubDate>
<enclosure url="{old_host.url("media/ep0.mp3")}" length="{len(old[0].mp3)}" type="audio/mpeg"/></item>
<item><title>Gone</title><guid>gone</guid><pubDate>Tue, 12 Mar 2019 06:00:00 +0000</pubDate>
<enclosure url="{old_host.url("media/missing.mp3")}" length="1234" type="audio/mpeg"/></item>"""
    url = old_host.put("feed.xml", feed_xml(old_host, old, extra_items=extra).encode(), "application/rss+xml")
    result = CliRunner().invoke(
        app, ["import", url, "--allow-private", "--configs", str(configs), "--media", str(tmp_path / "media"), "--json"]
    )
    assert result.exit_code == ArchiveError.exit_code, result.output
    summary = json.loads(result.stdout)
    problems = summary["problems"]
    assert len(problems) == 3, problems
    assert any("'No audio'" in p and "no audio enclosure" in p for p in problems)
    assert any("'Twin'" in p and "guid" in p and "unique" in p for p in problems)
    assert any(p.startswith("gone: media not fetched") and "HTTP 404" in p for p in problems)
    err_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 3
    # The good items and the 404 one have configs (its media can be fetched by a later run); the others none.
    assert sorted(e["episode"] for e in summary["episodes"]) == ["episode-100", "episode-101", "gone"]
    assert all((tmp_path / "media" / f"episode-10{i}.mp3").is_file() for i in (0, 1))
    assert load_episode(configs, "gone").guid == "gone"


def test_a_document_that_is_not_a_feed_is_one_error(configs: Path, tmp_path: Path, old_host: FakeHost) -> None:
    url = old_host.put("feed.xml", b"<html><body>Moved</body></html", "text/html")
    result = CliRunner().invoke(
        app, ["import", url, "--allow-private", "--configs", str(configs), "--media", str(tmp_path / "m")]
    )
    assert result.exit_code == ArchiveError.exit_code
    assert result.stderr.count("error:") == 1 and "not a podcast feed" in result.stderr
    assert list_episodes(configs) == ["ep-1"]
    missing = CliRunner().invoke(
        app, ["import", old_host.url("nope.xml"), "--allow-private", "--configs", str(configs)]
    )
    assert missing.exit_code == ArchiveError.exit_code and "HTTP 404" in missing.stderr
