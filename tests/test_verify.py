"""``produce verify`` against real servers on 127.0.0.1: a static host that answers byte ranges with 206
(tests/support/http.py) and ``rclone serve s3``, which answers them with 200 and must be reported."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mutagen.id3 import ID3, TGID, TIT2
from support.configs import make_show, storage_settings
from support.http import FakeHost
from support.s3 import RcloneS3

from keylime_prod import publish
from keylime_prod.catalogue import release_check

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, tzinfo=UTC)
GUID = "urn:keylime-test:ep-1"


def _live() -> release_check.HttpFetcher:
    """The HTTP fetcher, allowed to reach the hosts on 127.0.0.1 these tests start."""
    return release_check.HttpFetcher(allow_private=True)


def _lines(v: release_check.Verified) -> str:
    return "\n".join(p.line() for p in v.problems)


@pytest.fixture
def published(
    tmp_path: Path, make_release: Callable[..., publish.Release], make_tone: Callable[..., Path]
) -> Callable[..., Path]:
    """Publish ep-1 into ``<root>/podcast`` with public URLs under ``base``: a 1 kHz tone at about -16 LUFS, tagged
    with a title and ``TGID`` (``tgid``), and the config guid :data:`GUID`. Returns the publish root."""

    def make(root: Path, base: str, *, tgid: str = GUID, db: float = 5.5, guid: str = GUID) -> Path:
        mp3 = make_tone(f"loud-{db:g}.mp3", freq=1000, seconds=4.0, db=db)
        tags = ID3()
        tags.add(TIT2(encoding=3, text=["Test episode"]))
        tags.add(TGID(encoding=3, text=[tgid]))
        tags.save(mp3, v2_version=3)
        st = storage_settings(None, local_dir=root, public_base_url=f"{base}/podcast")
        publish.publish([make_release(audio=mp3, seconds=4.0, guid=guid)], make_show(st), now=NOW)
        return root

    return make


@pytest.fixture
def host(tmp_path: Path) -> Iterator[str]:
    with FakeHost(tmp_path / "public") as web:
        yield web.base_url


def test_a_good_host_passes_every_check(published: Callable[..., Path], host: str, tmp_path: Path) -> None:
    published(tmp_path / "public", host)
    v = release_check.check_live_feed(
        f"{host}/podcast/feed.xml",
        fetch=_live(),
        audio="all",
        state=tmp_path / "state.json",
    )
    assert v.ok, _lines(v)
    assert v.checked == (GUID,) and v.audio_checked == (GUID,)
    # One warning: the fake release has two chapters, Spotify wants three (locked, itunes:title, CORS are there).
    assert [(p.severity, p.check) for p in v.problems] == [("warning", "chapters")], _lines(v)
    # HEAD + range GET of the MP3, 4 transcripts, chapters, artwork, the feed, the full MP3 download.
    assert v.requests == 10
    assert release_check.Verified(**{**vars(v)}).to_json()["ok"] is True


def test_hosting_faults_are_each_one_line(published: Callable[..., Path], tmp_path: Path) -> None:
    root = published(tmp_path / "public", "http://127.0.0.1:1")  # URLs fixed below by serving at any port
    vtt = next(root.rglob("*.vtt")).relative_to(root).as_posix()
    next(root.rglob("*.txt")).unlink()
    with FakeHost(root, ranges=False, types={vtt: "text/plain"}) as web:
        base = web.base_url
        feed = (root / "podcast" / "feed.xml").read_text().replace("http://127.0.0.1:1", base)
        (root / "podcast" / "feed.xml").write_text(feed)
        v = release_check.check_live_feed(f"{base}/podcast/feed.xml", fetch=_live(), audio=0)
    lines = _lines(v)
    assert not v.ok
    assert f"error: {GUID}: byte range: a GET for bytes=0-1023 answered 200, not 206" in lines
    assert f"error: {GUID}: transcript: served as text/plain, the feed says text/vtt" in lines
    assert f"error: {GUID}: transcript: answered 404, not 200" in lines
    assert len(v.errors) == 3, lines


def test_quiet_audio_and_a_foreign_tgid_are_errors(published: Callable[..., Path], host: str, tmp_path: Path) -> None:
    published(tmp_path / "public", host, tgid="https://example.org/ep-1", db=-20.0)
    v = release_check.check_live_feed(f"{host}/podcast/feed.xml", fetch=_live(), episodes=["ep-1"])
    lines = _lines(v)
    assert f"error: {GUID}: loudness: " in lines and "want -16 +-1 LU" in lines
    assert f"error: {GUID}: ID3: TGID 'https://example.org/ep-1' is not the feed's <guid>" in lines
    assert {p.check for p in v.errors} == {"loudness", "ID3"}, lines


def test_guids_must_stay_unique_and_unchanged(published: Callable[..., Path], host: str, tmp_path: Path) -> None:
    root = published(tmp_path / "public", host)
    state = tmp_path / "state.json"
    url = f"{host}/podcast/feed.xml"
    assert release_check.check_live_feed(url, fetch=_live(), audio=0, state=state).ok
    published(root, host, guid="urn:keylime-test:moved", tgid="urn:keylime-test:moved")  # the config guid changed
    v = release_check.check_live_feed(url, fetch=_live(), audio=0, state=state)
    assert [p.line() for p in v.errors] == [
        f"error: urn:keylime-test:moved: guid: was '{GUID}' on the last run (episode:ep-1): every subscriber gets "
        f"the episode again ({state.as_posix()})"
    ]
    # Still an error on the next run: the state keeps the first guid.
    assert not release_check.check_live_feed(url, fetch=_live(), audio=0, state=state).ok
    feed = root / "podcast" / "feed.xml"
    item = feed.read_text().split("<item>")[1].split("</item>")[0]
    feed.write_text(feed.read_text().replace("</channel>", f"<item>{item}</item></channel>"))
    v = release_check.check_live_feed(url, fetch=_live(), audio=0)
    assert any("guid: the same guid as" in p.line() for p in v.errors), _lines(v)


@pytest.mark.s3
def test_rclone_serve_s3_ranged_get_answers_200_and_is_reported(published: Callable[..., Path], tmp_path: Path) -> None:
    # A public (anonymous) rclone serve s3 over the folder the episode was published into, bucket "site".
    server = RcloneS3(tmp_path / "s3", auth=False)
    server.make_bucket("site")
    server.start()
    try:
        published(tmp_path / "s3" / "site", f"{server.endpoint_url}/site")
        v = release_check.check_live_feed(f"{server.endpoint_url}/site/podcast/feed.xml", fetch=_live(), audio=0)
    finally:
        server.stop()
    assert f"error: {GUID}: byte range: a GET for bytes=0-1023 answered 200, not 206" in _lines(v)
    assert not v.ok


def test_offline_checks_the_public_folder(published: Callable[..., Path], tmp_path: Path) -> None:
    root = published(tmp_path / "public", "https://media.example.org")
    fetch = release_check.LocalFetcher(root, "https://media.example.org")
    v = release_check.check_live_feed("https://media.example.org/podcast/feed.xml", fetch=fetch, audio="all")
    assert v.ok and v.offline and v.audio_checked == (GUID,), _lines(v)
    assert [p.check for p in v.problems] == ["chapters"], _lines(v)
    next(root.rglob("*.srt")).unlink()
    v = release_check.check_live_feed("https://media.example.org/podcast/feed.xml", fetch=fetch, audio=0)
    assert [p.check for p in v.errors] == ["transcript"]


# ------------------------------------------------------------------------------------------------------------ CLI


def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    from typer.testing import CliRunner

    from keylime_prod.cli import app

    return CliRunner().invoke(app, list(args), env=env)


def test_cli_verify_json_for_ci_and_one_line_per_problem(
    published: Callable[..., Path], tmp_path: Path, make_configs: Callable[..., Path]
) -> None:
    cfg = make_configs([tmp_path / "raw.wav"])  # the show's audio target; nothing is built
    root = published(tmp_path / "public", "http://127.0.0.1:1")
    env = {"KEYLIME_PUBLIC_BASE_URL": "https://media.example.org/podcast"}
    for ranges, code in ((True, 0), (False, 1)):
        with FakeHost(root, ranges=ranges) as web:
            base = web.base_url
            feed = root / "podcast" / "feed.xml"
            feed.write_text(re.sub(r"http://127\.0\.0\.1:\d+", base, feed.read_text()))
            args = ["verify", "--allow-private", "--feed-url", f"{base}/podcast/feed.xml", "--configs", str(cfg)]
            args += ["--state", str(tmp_path / "state.json")]
            res = _cli(*args, "--all", "--json", env=env)
            assert res.exit_code == code, res.output
            doc = json.loads(res.stdout)
            assert doc["ok"] is (code == 0) and doc["checked"] == [GUID] and doc["audio_checked"] == [GUID]
            if not ranges:
                plain = _cli(*args, "ep-1", env=env)  # by episode id: the episodes/ep-1/ folder of the enclosure
                assert plain.exit_code == 1
                assert f"error: {GUID}: byte range: a GET for bytes=0-1023 answered 200, not 206" in plain.stderr
    assert _cli("verify", "--configs", str(cfg)).exit_code == 2  # neither EPISODE nor --all: a usage error
