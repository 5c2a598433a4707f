"""Third-party feed readers the tests run on our RSS: gPodder's podcastparser and the Podcast Index's parser.

``podcast-partytime`` is an npm package: it runs under the machine's Node.js from ``tests/node/parse_feed.mjs``,
installed from ``tests/node/package-lock.json`` by ``.ci/run`` (``npm ci --prefix tests/node``).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import podcastparser
import pytest

NODE_DIR = Path(__file__).parent / "node"


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
