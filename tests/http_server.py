"""A small static HTTP server on 127.0.0.1 that answers HEAD and byte-range GETs (206) the way a podcast host must.

Used by tests/test_verify.py and bench/verify.py. Content types are those keylime_prod.publish.storage uploads with (by
extension; ``chapters.*.json`` as ``application/json+chapters``), overridable per path; CORS is allowed. Runs in a
thread of the test process and is shut down by the fixture.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from keylime_prod.publish.storage import CHAPTERS_TYPE, content_type_for

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(SimpleHTTPRequestHandler):
    types: ClassVar[dict[str, str]] = {}
    ranges = True
    protocol_version = "HTTP/1.1"  # keep-alive, as real hosts do

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def guess_type(self, path: str | Any) -> str:
        name = Path(str(path)).name
        rel = Path(str(path)).relative_to(self.directory).as_posix()
        if rel in self.types:
            return self.types[rel]
        if name.startswith("chapters.") and name.endswith(".json"):
            return CHAPTERS_TYPE
        return content_type_for(name)

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def send_head(self) -> Any:
        m = _RANGE.match(self.headers.get("Range", ""))
        if not (self.ranges and m):
            return super().send_head()
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        size = path.stat().st_size
        start, end = int(m.group(1)), int(m.group(2) or size - 1)
        end = min(end, size - 1)
        f = open(path, "rb")  # noqa: SIM115 (closed by copyfile's caller)
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._left = end - start + 1
        return f

    def copyfile(self, source: Any, outputfile: Any) -> None:
        left = getattr(self, "_left", None)
        if left is None:
            super().copyfile(source, outputfile)
            return
        self._left = None
        while left > 0:
            chunk = source.read(min(left, 64 * 1024))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that stops reading (verify closes a 200 answered to a range request) is not a server fault.
        pass


@contextmanager
def serve(root: Path, *, ranges: bool = True, types: dict[str, str] | None = None) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (a free port) and yield its base URL; ``ranges=False`` answers ranges with 200."""
    handler = type("Handler", (_Handler,), {"types": dict(types or {}), "ranges": ranges})
    server = _QuietServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
