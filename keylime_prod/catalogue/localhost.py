"""The local publish folder served over HTTP on 127.0.0.1, as a host would serve the bucket.

``produce verify`` checks what an app sees over HTTP: HEAD, byte ranges answered 206 (Apple: hosts must serve byte
ranges), media types, CORS. Right after the quick start the show is published into ``public/`` and its public URL
(``storage.public_base_url``) does not exist yet, so verify serves the folder here and maps the public URLs onto
it: every check runs over real HTTP, and the report says so.

Types are the ones the publishing stage uploads with (:func:`keylime_prod.publish.storage.content_type_for`), so a
file served here carries the type it will have in the bucket.
"""

from __future__ import annotations

import contextlib
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..publish.storage import CHAPTERS_TYPE, content_type_for

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 16


def served_type(path: Path) -> str:
    """The Content-Type a file of the publish folder is uploaded (and so served) with."""
    if path.name.startswith("chapters.") and path.suffix == ".json":
        return CHAPTERS_TYPE
    return content_type_for(path)


class _Handler(BaseHTTPRequestHandler):
    server_version = "keylime-prod-verify"
    root: Path

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the checks report what matters."""

    def _file(self) -> Path | None:
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        if any(part.startswith(".") for part in rel.split("/")):
            return None  # no dot files (the folder's lock), no '..'
        p = (self.root / rel).resolve()
        return p if p.is_relative_to(self.root) and p.is_file() else None

    def _answer(self, body: bool) -> None:
        p = self._file()
        if p is None:
            self.send_error(404)
            return
        size = p.stat().st_size
        start, end, status = 0, size - 1, 200
        m = _RANGE.match(self.headers.get("Range", "").strip())
        if self.headers.get("Range") is not None:
            if m is None or (not m.group(1) and not m.group(2)):
                self.send_error(416)
                return
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:  # bytes=-N: the last N bytes
                start = max(0, size - int(m.group(2)))
            if start > end or start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", served_type(p))
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Access-Control-Allow-Origin", "*")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        with open(p, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client read what it wanted (a ranged check closes early)
                left -= len(chunk)

    def do_HEAD(self) -> None:
        """Headers only."""
        self._answer(body=False)

    def do_GET(self) -> None:
        """The file, or the asked byte range of it (206)."""
        self._answer(body=True)


@contextlib.contextmanager
def serve_folder(root: Path) -> Iterator[str]:
    """Serve ``root`` on a free port of 127.0.0.1 for the block; yields its base URL (no trailing slash)."""
    handler = type("Handler", (_Handler,), {"root": Path(root).resolve()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="keylime-verify-host", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
