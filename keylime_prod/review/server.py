"""The review page's web server: a Starlette app on 127.0.0.1 that answers only under a per-run secret path.

Security model (docs/review.md, "Security"): the socket is bound to the loopback address only, on a port the
system picks; every URL starts with ``/<token>/``, a 256-bit token made fresh for each run (``secrets``), compared in
constant time; a request with any other path, or a ``Host`` that is not this address and port (a DNS-rebinding page
would send its own), is refused with 403 before any route runs. Writes are JSON POSTs (a cross-site form cannot send
one without the token, nor with that content type), they change only the episode's edit files
(:mod:`.decisions`), and "Apply" runs the pipeline up to, not including, publishing. Starlette and uvicorn are the
``[review]`` extra: imported here only, when a review starts.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .. import pages
from ..audio.artefact import Master
from ..config import Settings, corrections_path, load_corrections
from ..errors import KeylimeError, ReviewError
from ..transcript.artefact import Heard, read_words
from ..transcript.corrections import apply_corrections
from . import decisions
from .model import ReviewPage, build_page, parse_time, published, waveform_peaks

log = logging.getLogger(__name__)

#: Sent with every answer: scripts and media only from this server (the vendored wavesurfer.js, no CDN), no
#: framing, no referrer (the token is in the path).
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; media-src 'self'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
INSTALL = "pip install 'keylime-prod[review]'"
STOP_GRACE_S = 3.0  # how long open connections may finish before the server is stopped regardless


def require_extra() -> None:
    """Starlette and uvicorn are importable, else one line saying how to install them."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ReviewError(f"the review page needs Starlette and uvicorn ({e.name} is missing)", hint=INSTALL) from e


@dataclass
class Review:
    """One episode under review: what the routes read and write, and the rebuild "Apply" runs."""

    settings: Settings
    episode_id: str
    rebuild: Callable[[], dict[str, Any]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    _peaks: tuple[str, list[float]] | None = None

    def page(self) -> ReviewPage:
        return build_page(self.settings, self.episode_id)

    def master(self) -> Master:
        """The published master's file alone (master.json, or edit.json when cuts were applied: the audio's path, hash
        and length): the player's many Range requests read no more."""
        return published(self.settings.layout(self.episode_id))[0]

    def peaks(self) -> tuple[list[float], float]:
        master = self.master()
        if self._peaks is None or self._peaks[0] != master.audio_sha256:
            self._peaks = (master.audio_sha256, waveform_peaks(master.mp3, master.duration))
        return self._peaks[1], master.duration

    def correct(self, index: int, meant: str) -> Path:
        layout = self.settings.layout(self.episode_id)
        words = read_words(layout.words_json)
        if not 0 <= index < len(words):
            raise ReviewError(f"no word {index}", hint="reload the page")
        heard = Heard.load(layout.heard_json).words
        # What the transcript says there now, with the corrections saved since words.json was rendered (a word fixed
        # twice before Apply): the new entry's `heard` must match the text the earlier entries leave.
        configs = self.settings.configs_dir
        now = apply_corrections(
            heard, load_corrections(configs, self.episode_id), corrections_path(configs, self.episode_id)
        ).words
        w = min(now, key=lambda c: abs(c.start - words[index].start)) if now else words[index]
        return decisions.add_correction(configs, self.episode_id, heard, w.start, w.word, meant)

    def decide_cut(self, cut_id: str, choice: str) -> Path:
        from ..edit.artefact import read_cuts

        choices: dict[str, decisions.CutChoice] = {"cut": "cut", "keep": "keep", "open": "open"}
        if choice not in choices:
            raise ReviewError(f"unknown choice {choice!r}")
        cuts = read_cuts(self.settings.layout(self.episode_id).cuts_json)
        return decisions.set_cut(self.settings.configs_dir, self.episode_id, cuts, cut_id, choices[choice])

    def rename(self, label: str, name: str) -> Path:
        if label not in {s.label for s in self.page().speakers}:
            raise ReviewError(f"no speaker {label!r}", hint="reload the page")
        return decisions.set_speaker_name(self.settings.configs_dir, self.episode_id, label, name)

    def move_chapter(self, index: int, start: str) -> Path:
        master = self.master()
        t = parse_time(start)
        if not 0 <= t <= master.duration:
            raise ReviewError(f"{start} is outside the episode (0 to {master.duration:.1f} s)")
        # The page shows the published timeline; the config keeps the raw recordings' (docs/review.md, "What each
        # decision writes").
        raw = master.episode_to_body(t)
        return decisions.move_chapter(self.settings.configs_dir, self.episode_id, index, raw)


def create_app(review: Review, token: str, hosts: set[str]) -> Any:
    """The Starlette app for ``review``: every route under ``/<token>/``; requests for anything else, or with a
    ``Host`` not in ``hosts``, get 403."""
    require_extra()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    static = Path(str(resources.files("keylime_prod.review") / "static"))

    def page(request: Request) -> Response:
        try:
            p = review.page()
        except KeylimeError as e:  # the build folder changed under the page (a run by hand that failed)
            return PlainTextResponse(f"{e}\n", status_code=409)
        return HTMLResponse(pages.render("keylime_prod.review", "review.html.j2", ReviewError, page=p))

    def audio(request: Request) -> Response:
        # Starlette's FileResponse answers Range requests (206, Content-Range): browsers seek with them.
        return FileResponse(review.master().mp3, media_type="audio/mpeg")

    def peaks(request: Request) -> Response:
        values, duration = review.peaks()
        return JSONResponse({"peaks": values, "duration": duration})

    async def decision(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"ok": False, "error": "JSON only"}, status_code=415)
        origin = request.headers.get("origin")
        if origin is not None and origin.removeprefix("http://") not in hosts:
            return JSONResponse({"ok": False, "error": "wrong origin"}, status_code=403)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"ok": False, "error": "not JSON"}, status_code=400)
        # Writes and the rebuild block: in a worker thread, so the page's other requests are still answered.
        return await run_in_threadpool(_decide, request.path_params["what"], body if isinstance(body, dict) else {})

    def _decide(what: str, body: dict[str, Any]) -> Response:
        try:
            with review.lock:
                if what == "correction":
                    path = review.correct(int(body["index"]), str(body["meant"]))
                elif what == "cut":
                    path = review.decide_cut(str(body["id"]), str(body["choice"]))
                elif what == "speaker":
                    path = review.rename(str(body["label"]), str(body["name"]))
                elif what == "chapter":
                    path = review.move_chapter(int(body["index"]), str(body["start"]))
                elif what == "apply":
                    t0 = time.perf_counter()
                    result = review.rebuild()
                    return JSONResponse({"ok": True, **result, "seconds": round(time.perf_counter() - t0, 2)})
                else:
                    return JSONResponse({"ok": False, "error": f"unknown action {what!r}"}, status_code=404)
        except KeylimeError as e:
            log.warning("%s", e)
            return JSONResponse({"ok": False, "error": str(e)}, status_code=400)
        except (KeyError, ValueError, TypeError) as e:
            return JSONResponse({"ok": False, "error": f"bad request: {e}"}, status_code=400)
        log.info("%s: wrote %s", review.episode_id, path)
        return JSONResponse({"ok": True, "file": path.name})

    routes = [
        Mount(
            f"/{token}",
            routes=[
                Route("/", page),
                Route("/audio.mp3", audio),
                Route("/peaks.json", peaks),
                Route("/do/{what}", decision, methods=["POST"]),
                Mount("/static", StaticFiles(directory=static), name="static"),
            ],
        )
    ]
    app = Starlette(routes=routes)
    return _Guard(app, token, hosts)


class _Guard:
    """ASGI middleware: 403 unless the path starts with ``/<token>/`` and the Host is ours; security headers on
    every answer."""

    def __init__(self, app: Any, token: str, hosts: set[str]) -> None:
        self.app, self.prefix, self.hosts = app, f"/{token}/", hosts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
        given = path[: len(self.prefix)]
        ok = (
            scope["type"] == "http"
            and secrets.compare_digest(given.encode(), self.prefix.encode())
            and host in self.hosts
        )
        if not ok:
            if scope["type"] != "http":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send({"type": "http.response.start", "status": 403, "headers": _headers(b"text/plain")})
            await send({"type": "http.response.body", "body": b"forbidden\n"})
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.lower().encode(), v.encode()) for k, v in HEADERS.items() if k.lower().encode() not in have),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _headers(content_type: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), *((k.lower().encode(), v.encode()) for k, v in HEADERS.items())]


class ReviewServer:
    """The server in a thread of this process, on 127.0.0.1 and a port the system picks: ``with ReviewServer(...)
    as s: s.url``. The CLI waits in it until Ctrl-C; tests drive it with a browser."""

    HOST = "127.0.0.1"

    def __init__(self, review: Review, token: str | None = None) -> None:
        require_extra()
        self.review = review
        self.token = token or secrets.token_urlsafe(32)
        self._sock: socket.socket | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    @property
    def address(self) -> tuple[str, int]:
        """The address the socket is bound to."""
        assert self._sock is not None
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        return f"http://{self.HOST}:{self.port}/{self.token}/"

    def start(self) -> ReviewServer:
        import uvicorn

        # Bound here, before the app exists, so the app knows the one Host it answers to.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.HOST, 0))
        except OSError as e:
            sock.close()
            raise ReviewError(f"cannot listen on {self.HOST}: {e.strerror}") from e
        sock.set_inheritable(True)
        self._sock = sock
        hosts = {f"{self.HOST}:{self.port}", f"localhost:{self.port}"}
        app = create_app(self.review, self.token, hosts)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, timeout_keep_alive=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="review-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ReviewError("the review server did not start", where=self.url)
            time.sleep(0.02)
        return self

    def wait(self) -> None:
        """Until the server stops (Ctrl-C in the CLI raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_GRACE_S)
            if self._thread.is_alive() and self._server is not None:
                # uvicorn's graceful shutdown waits for every open connection and task to finish (a browser tab
                # holds one open): Ctrl-C means stop now, so after the grace it is told to force its way out.
                self._server.force_exit = True
                self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
