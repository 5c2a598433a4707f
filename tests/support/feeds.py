"""Feeds for tests: manifests to build an RSS feed from, and third-party readers of the result (gPodder's
podcastparser, the Podcast Index's parser).

``podcast-partytime`` is an npm package: it runs under the machine's Node.js from ``tests/node/parse_feed.mjs``,
installed from ``tests/node/package-lock.json`` by ``.ci/run`` (``npm ci --prefix tests/node``).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import lxml.html
import podcastparser
import pytest

from keylime_prod.guids import item_guid
from keylime_prod.publish.feed import Manifest, ShowManifest, build_feed
from support.configs import make_show, storage_settings

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, tzinfo=UTC)
SHA = "ab" * 32


def text_of(html: str) -> str:
    """What a reader shows for an HTML description (lxml's HTML parser, independent of feedgen)."""
    return str(lxml.html.fromstring(f"<div>{html}</div>").text_content())


def url(key: str) -> str:
    return f"https://cdn.example.org/{key}"


def show_manifest(guid: str = "c6da6de0-a986-5d32-88a3-b033f83e4403") -> ShowManifest:
    return ShowManifest.model_validate(
        {
            "podcast_guid": guid,
            "feed_url": "https://media.example.org/podcast/feed.xml",
            "artwork": _file("cover", "jpg", "podcast/art/cover.0123456789.jpg", 1000, "image/jpeg"),
        }
    )


def _file(role: str, fmt: str, key: str, size: int, ctype: str) -> dict[str, Any]:
    return {
        "role": role,
        "format": fmt,
        "name": key.rsplit("/", 1)[-1],
        "key": key,
        "size": size,
        "sha256": SHA,
        "content_type": ctype,
        "verified_by": "etag-md5",
    }


def manifest(
    episode_id: str = "ep-1",
    *,
    title: str = "Episode one",
    summary: str = "Summary.",
    date: dt.datetime = dt.datetime(2026, 1, 1, 6, tzinfo=UTC),
    size: int = 123_456,
    persons: tuple[dict[str, str], ...] = ({"name": "Lara Varpio"},),
    **item: Any,
) -> Manifest:
    base = f"podcast/episodes/{episode_id}/"
    return Manifest.model_validate(
        {
            "episode_id": episode_id,
            "guid": item_guid(show_manifest().podcast_guid, episode_id),
            "first_published": date,
            "updated": date,
            "item": {
                "title": title,
                "summary": summary,
                "publish_date": date,
                "duration": 1834.6,
                "number": 258,
                "season": 1,
                "persons": persons,
                "chapters": [{"start": 0, "title": "Welcome"}, {"start": 330.2, "title": "Findings"}],
                "transcript_language": "en",
                "notes_html": "<p>Notes &amp; <b>links</b></p>",
                **item,
            },
            "files": [
                _file("audio", "mp3", base + f"{episode_id}.1111111111.mp3", size, "audio/mpeg"),
                _file("transcript", "vtt", base + f"{episode_id}.2222222222.vtt", 10, "text/vtt"),
                _file("transcript", "srt", base + f"{episode_id}.3333333333.srt", 10, "application/x-subrip"),
                _file("transcript", "txt", base + f"{episode_id}.4444444444.txt", 10, "text/plain"),
                _file("chapters", "json", base + "chapters.5555555555.json", 10, "application/json+chapters"),
                _file("cover", "jpg", "podcast/art/cover.0123456789.jpg", 1000, "image/jpeg"),
            ],
        }
    )


def feed_of(*manifests: Manifest, now: dt.datetime = NOW, **show_kw: Any) -> bytes:
    show = make_show(storage_settings(None), **show_kw)
    return build_feed(show.show, manifests, show_manifest=show_manifest(), url=url, settings=show.feed, now=now)


def gpodder(xml: bytes, url: str = "https://media.example.org/podcast/feed.xml") -> dict[str, Any]:
    """The feed as gPodder reads it."""
    return dict(podcastparser.parse(url, io.BytesIO(xml)))


def partytime(xml: bytes, tmp_path: Path) -> dict[str, Any]:
    """The feed as the Podcast Index reads it (``podcast-partytime``'s ``parseFeed``).

    Skips only where Node.js is absent; a missing install is installed from the lock file, and any other failure
    fails the test.
    """
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: podcast-partytime (the Podcast Index's feed parser) needs it")
    if not (NODE_DIR / "node_modules" / "podcast-partytime").is_dir():
        npm = shutil.which("npm")
        assert npm, "Node.js is here but npm is not: install npm, then `npm ci --prefix tests/node`"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)], check=True)
    path = tmp_path / "partytime-feed.xml"
    path.write_bytes(xml)
    out = subprocess.run(
        [node, str(NODE_DIR / "parse_feed.mjs"), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))
