"""One fake HTTP host on 127.0.0.1 for every test (and bench/verify.py): a podcast host, an old host, a broken one.

It serves a folder (``root``) and bodies given with :meth:`FakeHost.put`, answers GET and HEAD, honours one byte
range per request (``bytes=A-B``, ``bytes=A-``, ``bytes=-N``) with ``206`` and ``Content-Range`` (``416`` past the
end), as podcast hosts must, keeps connections alive (HTTP/1.1) and allows CORS. Content types of folder files are
the ones keylime_prod.publish.storage uploads with (by extension; ``chapters.*.json`` as
``application/json+chapters``), overridable per path.

It misbehaves on purpose when told to, per path, with a :class:`Fault`: another status code, a redirect, a
Content-Length that lies, a body that trickles, a connection closed after N bytes; ``ranges = False`` answers
every ranged request with the whole body (200), as some hosts and ``rclone serve s3`` do. Every request is logged
in ``requests`` as ``(method, path, range header)``.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from keylime_prod.publish.storage import CHAPTERS_TYPE, content_type_for

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024


class Request(NamedTuple):
    """One request as the host saw it (a tuple, so tests can compare it with a literal)."""

    method: str
    path: str
    range: str | None


@dataclass(frozen=True)
class Fault:
    """How to misbehave on one path. ``times``: for this many requests, then serve normally (None: always).

    ``status``: answer with this code and an empty body. ``redirect``: answer 302 to this path or URL.
    ``length_delta``: announce a Content-Length this many bytes off (the connection is closed after the body, since
    the framing is broken). ``close_after``: send this many body bytes, then close. ``trickle``: send the body
    ``(bytes, seconds)`` at a time. ``delay``: wait this long before the status line. ``ranges=False``: answer a
    ranged request with the whole body. ``endless``: send no Content-Length and the body over and over until the
    client hangs up.
    """

    status: int | None = None
    redirect: str | None = None
    length_delta: int = 0
    close_after: int | None = None
    trickle: tuple[int, float] | None = None
    delay: float = 0.0
    ranges: bool = True
    endless: bool = False
    times: int | None = None


class _Body:
    """Bytes in memory or a file on disk, read a slice at a time."""

    def __init__(self, data: bytes | None = None, path: Path | None = None) -> None:
        self.data, self.path = data, path
        self.size = len(data) if data is not None else path.stat().st_size if path is not None else 0

    def chunks(self, start: int, length: int, step: int) -> Iterator[bytes]:
        if self.data is not None:
            for at in range(start, start + length, step):
                yield self.data[at : min(at + step, start + length)]
            return
        assert self.path is not None
        with open(self.path, "rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                chunk = f.read(min(left, step))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that stops reading (verify closes a 200 answered to a range request; a fault closes early) is
        # not a server fault worth a traceback in the test output.
        pass


class FakeHost:
    """``http://127.0.0.1:<port>/``: start with :meth:`start` (or ``with FakeHost(...) as host``), stop with
    :meth:`stop`."""

    def __init__(self, root: Path | None = None, *, types: dict[str, str] | None = None, ranges: bool = True) -> None:
        self.root = Path(root) if root is not None else None
        self.types = dict(types or {})  # path relative to root (or as put) -> Content-Type
        self.ranges = ranges
        self.files: dict[str, tuple[bytes, str]] = {}
        self.faults: dict[str, Fault] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------------- setting up

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        assert self._server is not None, "start the host first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        """The URL of ``path`` on this host."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def put(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Serve ``data`` at ``/path`` (before any file of the same name under ``root``); returns its URL."""
        self.files["/" + path.lstrip("/")] = (data, content_type)
        return self.url(path)

    def fault(self, path: str, fault: Fault | None = None, **kw: Any) -> Fault:
        """Misbehave on ``/path`` as ``fault`` (or ``Fault(**kw)``) says; returns the fault set."""
        f = replace(fault or Fault(), **kw)
        self.faults["/" + path.lstrip("/")] = f
        return f

    def requests_for(self, path: str) -> list[Request]:
        """The logged requests of one path."""
        return [r for r in self.requests if r.path == "/" + path.lstrip("/")]

    def start(self) -> FakeHost:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real hosts do

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                host._answer(self, body=True)

            def do_HEAD(self) -> None:
                host._answer(self, body=False)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FakeHost:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------------- answering

    def _find(self, path: str) -> tuple[_Body, str] | None:
        if path in self.files:
            data, ctype = self.files[path]
            return _Body(data=data), ctype
        if self.root is None:
            return None
        rel = unquote(path).lstrip("/")
        file = (self.root / rel).resolve()
        if not file.is_file() or not file.is_relative_to(self.root.resolve()):
            return None
        name = file.name
        if rel in self.types:
            ctype = self.types[rel]
        elif name.startswith("chapters.") and name.endswith(".json"):
            ctype = CHAPTERS_TYPE
        else:
            ctype = content_type_for(name)
        return _Body(path=file), ctype

    def _take_fault(self, path: str, body: bool) -> Fault | None:
        with self._lock:
            f = self.faults.get(path)
            if f is None:
                return None
            if not body and f == Fault(close_after=f.close_after, trickle=f.trickle, times=f.times):
                return None  # a HEAD has no body to cut or slow: the fault waits for the GET
            if f.times is not None:
                if f.times <= 1:
                    del self.faults[path]
                else:
                    self.faults[path] = replace(f, times=f.times - 1)
            return f

    def _answer(self, h: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = urlsplit(h.path).path
        rng = h.headers.get("Range")
        with self._lock:
            self.requests.append(Request(h.command, path, rng))
        fault = self._take_fault(path, body) or Fault()
        if fault.delay:
            time.sleep(fault.delay)
        if fault.redirect is not None:
            self._empty(h, 302, Location=fault.redirect)
            return
        if fault.status is not None:
            self._empty(h, fault.status)
            return
        found = self._find(path)
        if found is None:
            self._empty(h, 404)
            return
        src, ctype = found
        if fault.endless and body:
            self._endless(h, src, ctype)
            return
        start, length, status = 0, src.size, 200
        m = _RANGE.match(rng or "")
        if m and self.ranges and fault.ranges and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), src.size - 1) if m.group(2) else src.size - 1
            else:  # bytes=-N: the last N bytes
                start, end = max(0, src.size - int(m.group(2))), src.size - 1
            if start >= src.size or end < start:
                self._empty(h, 416, **{"Content-Range": f"bytes */{src.size}"})
                return
            length, status = end - start + 1, 206
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Access-Control-Allow-Origin", "*")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{start + length - 1}/{src.size}")
        h.send_header("Content-Length", str(max(0, length + fault.length_delta)))
        if fault.length_delta:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        if not body:
            return
        cut = fault.close_after if fault.close_after is not None else length
        step, pause = fault.trickle or (_CHUNK, 0.0)
        sent = 0
        for chunk in src.chunks(start, min(cut, length), step):
            h.wfile.write(chunk)
            h.wfile.flush()
            sent += len(chunk)
            if pause:
                time.sleep(pause)
        if sent < length:  # an early close: the client sees a short body, then EOF
            h.close_connection = True

    @staticmethod
    def _endless(h: BaseHTTPRequestHandler, src: _Body, ctype: str) -> None:
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Connection", "close")  # no length: the body ends when the connection does (RFC 9112 6.3)
        h.end_headers()
        h.close_connection = True
        try:
            while True:
                for chunk in src.chunks(0, src.size, _CHUNK):
                    h.wfile.write(chunk)
        except OSError:  # the client hung up
            return

    @staticmethod
    def _empty(h: BaseHTTPRequestHandler, status: int, **headers: str) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", "0")
        h.send_header("Access-Control-Allow-Origin", "*")
        h.end_headers()


def get_with_host(
    address: tuple[str, int], path: str, host: str | None = None, **headers: str
) -> http.client.HTTPResponse:
    """A plain GET to ``address`` with the ``Host`` header the test chooses (default: the address itself), for
    servers that must refuse a foreign Host; ``headers`` with ``_`` for ``-`` (``Sec_Fetch_Site``)."""
    conn = http.client.HTTPConnection(*address, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host or f"{address[0]}:{address[1]}")
    for k, v in headers.items():
        conn.putheader(k.replace("_", "-"), v)
    conn.endheaders()
    return conn.getresponse()
