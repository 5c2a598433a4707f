"""The test support package itself: the fake HTTP host does what each fault promises (read with http.client, not
with our code), config writers round-trip through the loaders, and tests share code only through tests/support."""

from __future__ import annotations

import ast
import http.client
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import configs
from support.http import FakeHost, Fault, Request
from support.media import COVER

from keylime_prod.config import ShowConfig, load_episode, load_show

TESTS = Path(__file__).resolve().parent
BODY = bytes(range(256)) * 40  # 10 240 bytes


def _get(host: FakeHost, path: str, method: str = "GET", **headers: str) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", int(host.base_url.rsplit(":", 1)[1]), timeout=10)
    conn.request(method, path, headers=headers)
    resp = conn.getresponse()
    try:
        return resp, resp.read()
    finally:
        conn.close()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[FakeHost]:
    (tmp_path / "ep").mkdir()
    (tmp_path / "ep" / "a.vtt").write_text("WEBVTT\n", encoding="utf-8")
    (tmp_path / "ep" / "chapters.1.json").write_text("{}", encoding="utf-8")
    with FakeHost(tmp_path) as h:
        h.put("big.mp3", BODY, "audio/mpeg")
        yield h


def test_serves_a_folder_and_bodies_with_types_ranges_head_and_a_log(host: FakeHost) -> None:
    resp, data = _get(host, "/ep/a.vtt")
    assert (resp.status, resp.getheader("Content-Type"), data) == (200, "text/vtt", b"WEBVTT\n")
    assert resp.getheader("Access-Control-Allow-Origin") == "*"
    assert _get(host, "/ep/chapters.1.json")[0].getheader("Content-Type") == "application/json+chapters"
    for rng, part, content_range in (
        ("bytes=10-19", BODY[10:20], "bytes 10-19/10240"),
        ("bytes=10000-", BODY[10000:], "bytes 10000-10239/10240"),
        ("bytes=-5", BODY[-5:], "bytes 10235-10239/10240"),
        ("bytes=10000-99999", BODY[10000:], "bytes 10000-10239/10240"),
    ):
        resp, data = _get(host, "/big.mp3", Range=rng)
        assert (resp.status, data, resp.getheader("Content-Range")) == (206, part, content_range)
    resp, data = _get(host, "/big.mp3", Range="bytes=20000-")
    assert (resp.status, resp.getheader("Content-Range"), data) == (416, "bytes */10240", b"")
    resp, data = _get(host, "/big.mp3", "HEAD")
    assert (resp.status, resp.getheader("Content-Length"), data) == (200, "10240", b"")
    assert _get(host, "/nothing")[0].status == 404
    assert _get(host, "/../../etc/passwd")[0].status == 404  # nothing outside the folder
    assert host.requests[:2] == [("GET", "/ep/a.vtt", None), Request("GET", "/ep/chapters.1.json", None)]
    assert host.requests_for("big.mp3")[-1] == ("HEAD", "/big.mp3", None)


def test_faults_status_redirect_and_ranges_ignored(host: FakeHost) -> None:
    host.fault("/big.mp3", status=503, times=2)
    assert [_get(host, "/big.mp3")[0].status for _ in range(3)] == [503, 503, 200]
    host.fault("/old.mp3", redirect="/big.mp3")
    resp, _ = _get(host, "/old.mp3")
    assert (resp.status, resp.getheader("Location")) == (302, "/big.mp3")
    host.fault("/big.mp3", ranges=False)
    resp, data = _get(host, "/big.mp3", Range="bytes=0-9")
    assert (resp.status, len(data)) == (200, len(BODY))
    host.ranges = False  # the whole host, as rclone serve s3 answers ranges
    assert _get(host, "/ep/a.vtt", Range="bytes=0-1")[0].status == 200


def test_faults_that_break_the_body(host: FakeHost) -> None:
    # An early close: the client gets fewer bytes than announced.
    host.fault("/big.mp3", close_after=1000, times=1)
    assert _get(host, "/big.mp3", "HEAD")[0].getheader("Content-Length") == "10240"  # HEAD leaves the fault armed
    with pytest.raises(http.client.IncompleteRead) as e:
        _get(host, "/big.mp3")
    assert len(e.value.partial) == 1000
    assert _get(host, "/big.mp3")[1] == BODY  # times=1: served whole afterwards
    # A Content-Length that lies, too long then too short.
    host.fault("/big.mp3", length_delta=100, times=1)
    with pytest.raises(http.client.IncompleteRead) as e:
        _get(host, "/big.mp3")
    assert e.value.expected == 100 and e.value.partial == BODY
    host.fault("/big.mp3", length_delta=-40, times=1)
    resp, data = _get(host, "/big.mp3")
    assert resp.getheader("Content-Length") == "10200" and data == BODY[:-40]
    # A trickling body: 10 240 bytes, 2 048 at a time, 50 ms apart, arrives whole and takes its time.
    host.fault("/big.mp3", trickle=(2048, 0.05), times=1)
    t0 = time.monotonic()
    assert _get(host, "/big.mp3")[1] == BODY
    assert time.monotonic() - t0 >= 0.2
    # A slow first byte.
    host.fault("/ep/a.vtt", Fault(delay=0.3), times=1)
    t0 = time.monotonic()
    assert _get(host, "/ep/a.vtt")[0].status == 200 and time.monotonic() - t0 >= 0.3


def test_config_writers_round_trip_through_the_loaders(tmp_path: Path) -> None:
    show = configs.show_config(assets={"intro": COVER}, audio={"target_lufs": -19.0})
    configs.write_show(tmp_path, show)
    loaded = load_show(tmp_path / "show.toml")
    # Equal but for what the loader resolves: the local publishing folder is made absolute (beside configs/).
    assert loaded.storage.local_dir == tmp_path.parent.resolve() / "public"
    assert loaded == show.model_copy(update={"storage": loaded.storage}) and isinstance(loaded, ShowConfig)
    ep = configs.episode_config([tmp_path / "a.wav"], "ep-3", glossary=("Lingard",))
    configs.write_episode(tmp_path, ep)
    assert load_episode(tmp_path, "ep-3") == ep
    # Raw values are written as given: a clock string is parsed by the loader, a bad date is the loader's error.
    configs.write_episode(tmp_path, ep, chapters=[{"title": "Start", "start": "01:02.5"}])
    assert load_episode(tmp_path, "ep-3").chapters[0].start == 62.5
    assert "[audio]\ntarget_lufs = -19.0" in (tmp_path / "show.toml").read_text("utf-8")


def test_tests_share_code_only_through_the_support_package() -> None:
    """No test module imports another test module, conftest or a fixture plugin; support never imports tests."""
    local = {p.stem for p in TESTS.glob("*.py")}
    bad = []
    for path in [*TESTS.glob("*.py"), *(TESTS / "support").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in local or name.startswith("support.fixtures"):
                    bad.append(f"{path.relative_to(TESTS)}: {name}")
    assert bad == []
