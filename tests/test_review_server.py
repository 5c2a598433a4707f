"""The review server's security model and its audio, in the fast tier: a build folder made without Whisper (a real
MP3, its master.json, a few words) served by the real Starlette app on 127.0.0.1, asked with http.client.

Only the token's path and this server's Host are answered (403 otherwise, DNS rebinding included), the socket is
bound to the loopback address alone, writes must be JSON from the page's own origin, and the MP3 is served in byte
ranges as browsers seek."""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import configs, media
from support.http import get_with_host

from keylime_prod import ffmpeg
from keylime_prod.config import load_settings
from keylime_prod.review import Review, ReviewServer, build_for_review
from keylime_prod.transcript.artefact import Heard, TimedWord, write_words

EP = "ep-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewServer]:
    root = tmp_path_factory.mktemp("review-server")
    cfg = root / "configs"
    mp3 = media.make_mp3(root / "take.mp3", 12.0)
    configs.write_show(cfg, configs.show_config())
    configs.write_episode(cfg, configs.episode_config([mp3], EP))
    settings = load_settings(cfg, root / "build")
    layout = settings.layout(EP)
    layout.root.mkdir(parents=True)
    built = root / "build" / EP / f"{EP}.mp3"
    built.write_bytes(mp3.read_bytes())
    media.write_fake_master(layout.root, built, 12.0, EP)
    words = tuple(TimedWord(1.0 + i, 1.6 + i, w, 0.9, "Lara Varpio") for i, w in enumerate(["ask", "not", "what"]))
    write_words(layout.words_json, words)
    Heard(words, "en", "faster-whisper", "tiny.en").save(layout.heard_json)
    with ReviewServer(Review(settings, EP, lambda: build_for_review(settings, EP))) as s:
        yield s


def _get(server: ReviewServer, path: str, host: str | None = None, **headers: str) -> http.client.HTTPResponse:
    return get_with_host(server.address, path, host, **headers)


def test_only_the_token_and_loopback_are_served(server: ReviewServer) -> None:
    assert server.address[0] == "127.0.0.1"
    token = server.token
    assert len(token) >= 40
    for path in ("/", "/audio.mp3", f"/{token[:-1]}/", f"/{token[:-1]}/audio.mp3", f"/x/{token}/", "/static/review.js"):
        r = _get(server, path)
        assert r.status == 403, path
        assert b"Review" not in r.read()
    # A page on another site that resolves its own name to 127.0.0.1 (DNS rebinding) sends its own Host.
    assert _get(server, f"/{token}/", host=f"evil.example:{server.port}").status == 403
    ok = _get(server, f"/{token}/")
    assert ok.status == 200 and "script-src 'self'" in ok.headers["Content-Security-Policy"]
    assert ok.headers["Referrer-Policy"] == "no-referrer"
    # Not reachable on any other address of this machine.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        own = probe.getsockname()[0]
    except OSError:
        own = "127.0.0.1"
    finally:
        probe.close()
    if not own.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((own, server.port), timeout=3).close()


def test_writes_need_json_from_the_page_itself(server: ReviewServer) -> None:
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    conn.request("POST", f"/{server.token}/do/speaker", body="label=Speaker+1&name=x",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert conn.getresponse().status == 415
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    body = json.dumps({"label": "Speaker 1", "name": "x"})
    conn.request("POST", f"/{server.token}/do/speaker", body=body,
                 headers={"Content-Type": "application/json", "Origin": "http://evil.example"})  # fmt: skip
    assert conn.getresponse().status == 403
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    conn.request("POST", f"/{server.token}/do/speaker", body="{label", headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 400


def _post(server: ReviewServer, what: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    origin = f"http://127.0.0.1:{server.port}"
    conn.request("POST", f"/{server.token}/do/{what}", body=json.dumps(body),
                 headers={"Content-Type": "application/json", "Origin": origin})  # fmt: skip
    r = conn.getresponse()
    return r.status, json.loads(r.read())


def test_a_decision_writes_its_edit_file_and_nothing_else(server: ReviewServer) -> None:
    settings = server.review.settings

    def files() -> dict[Path, bytes]:
        roots = (settings.configs_dir, settings.build_root)
        return {p: p.read_bytes() for root in roots for p in sorted(Path(root).rglob("*")) if p.is_file()}

    before = files()
    status, doc = _post(server, "speaker", {"label": "Lara Varpio", "name": "Lara Varpio, PhD"})
    assert (status, doc) == (200, {"ok": True, "file": f"{EP}.speakers.toml"})
    after = files()
    speakers = settings.configs_dir / "episodes" / f"{EP}.speakers.toml"
    assert set(after) - set(before) == {speakers} and all(after[p] == b for p, b in before.items())
    status, doc = _post(server, "speaker", {"label": "Nobody", "name": "x"})
    assert (status == 400 and doc == {"ok": False, "error": f"{EP}: no speaker 'Nobody' (reload the page)"}) or (
        status == 400 and "no speaker 'Nobody'" in str(doc["error"])
    )
    status, doc = _post(server, "chapter", {"index": 0, "start": "00:05"})  # the episode has no chapters
    assert status == 400 and "no chapter 1" in str(doc["error"])
    assert files() == after


def test_audio_is_served_in_ranges(server: ReviewServer) -> None:
    mp3 = server.review.master().mp3.read_bytes()
    r = _get(server, f"/{server.token}/audio.mp3", Range="bytes=1000-1999")
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(mp3)}"
    assert r.read() == mp3[1000:2000]
    whole = _get(server, f"/{server.token}/audio.mp3")
    assert whole.status == 200 and whole.headers["Accept-Ranges"] == "bytes" and whole.read() == mp3


def test_the_page_is_served_under_the_token(server: ReviewServer) -> None:
    r = _get(server, f"/{server.token}/")
    page = r.read().decode()
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "Review: 1. Test episode" in page and 'data-label="Lara Varpio"' in page
    peaks = json.loads(_get(server, f"/{server.token}/peaks.json").read())
    # A steady tone: every peak of its 12 s (20 a second) is the mono mix's maximum as ffmpeg's volumedetect reads it.
    out = ffmpeg.run(["-i", str(server.review.master().mp3), "-ac", "1", "-af", "volumedetect", "-f", "null", "-"])
    top = 10 ** (float(re.search(r"max_volume: (-?[\d.]+) dB", out.stderr.decode()).group(1)) / 20)  # type: ignore[union-attr]
    inner = peaks["peaks"][2:-2]
    assert len(peaks["peaks"]) == 240 and all(abs(20 * math.log10(p / top)) < 1.0 for p in inner), (top, inner[:5])
    js = _get(server, f"/{server.token}/static/wavesurfer.min.js")
    assert js.status == 200 and b"WaveSurfer" in js.read()
