"""A real HTTP server on 127.0.0.1 for the archive tests: an old podcast host serving a feed and its media.

It answers GET and HEAD, honours ``Range: bytes=N-`` with ``206`` and ``Content-Range`` (as podcast hosts must), and
can misbehave on purpose: ``drop_after[path] = n`` sends the first ``n`` bytes of that file and closes the
connection (once), ``ignore_range`` answers ranged requests with the whole file (``200``). Every request is logged
in ``requests`` as ``(method, path, range header)``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OldHost:
    """Files served from memory at ``http://127.0.0.1:<port>/<path>``; start with :meth:`start`."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.drop_after: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str, str | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def put(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Serve ``data`` at ``/path``; returns its URL (the server must be started)."""
        self.files["/" + path.lstrip("/")] = (data, content_type)
        return self.url(path)

    def url(self, path: str) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/{path.lstrip('/')}"

    def start(self) -> OldHost:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def _send(self, body: bool) -> None:
                host.requests.append((self.command, self.path, self.headers.get("Range")))
                found = host.files.get(self.path.split("?")[0])
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, ctype = found
                start = 0
                rng = self.headers.get("Range")
                if rng and not host.ignore_range and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if not body:
                    return
                cut = host.drop_after.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(data[start : start + cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

            def do_GET(self) -> None:
                self._send(True)

            def do_HEAD(self) -> None:
                self._send(False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
