"""The one HTTP client: urllib3, for every URL keylime-prod reads (old feeds and their media for ``produce import``
and the batch, the live feed and its files for ``produce verify``).

urllib3 because the callers need what it does directly: a connection pool the release check's parallel requests
share, separate connect and read timeouts, bodies streamed in chunks or cut after the first bytes, and ``Range``
answers (``206``/``416``) handed back as statuses instead of exceptions. Connection errors are retried twice; HTTP
statuses are never retried or raised here: the caller decides what a 404 means. Failures to connect or to read are
an :class:`~keylime_prod.errors.HttpError` naming the URL and saying why in a few words ("the connection was
refused"), which each caller translates into its own error.

The network rules (docs/security.md, "What the network may do") are kept here, once, for every exchange:

- **Only http(s)**, at every hop: redirects are followed here (at most :data:`MAX_REDIRECTS`), each new URL checked.
- **Only public addresses** unless the caller allows private ones (``allow_private``, the ``--allow-private``
  option): every address a host name resolves to is checked (loopback, link-local, private, multicast, reserved
  and unspecified addresses are refused), and the connection goes to the address that was checked, so a second DNS
  answer cannot swap it (DNS rebinding).
- **Every exchange ends**: a :class:`Limits` gives it an overall deadline, a minimum transfer rate (over
  :data:`RATE_WINDOW_S`) and a cap on the body's size. A watchdog thread enforces the deadline and the rate even
  while a read is blocked, by shutting the socket down, so a peer that sends one byte every few seconds (each read
  "succeeds", so a read timeout never fires) fails in bounded time with one line naming the URL.
- **Long transfers say so**: a log line every :data:`PROGRESS_EVERY_S` with the bytes so far and the rate.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import connection as _connection

from .errors import HttpError

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Redirect hops followed (hosts move media behind CDNs and trackers; five is what browsers' tests use as a floor).
MAX_REDIRECTS = 5
#: The minimum rate is measured over windows this long: a short stall (a CDN switching nodes) is not a failure.
RATE_WINDOW_S = 20.0
#: The status line and headers (of every redirect hop together) must have come within this.
ANSWER_S = 60.0
#: A long transfer logs one progress line this often.
PROGRESS_EVERY_S = 10.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Limits:
    """How long one exchange (connect, answer, body) may take, how slowly its body may come, how big it may be."""

    deadline_s: float
    min_rate: float  # bytes per second, over RATE_WINDOW_S
    max_bytes: int

    def capped(self, max_bytes: int | None) -> Limits:
        """These limits with the body capped at ``max_bytes`` too (a length the caller was told, e.g. a feed's)."""
        if max_bytes is None:
            return self
        return Limits(self.deadline_s, self.min_rate, min(self.max_bytes, max_bytes))


#: A feed, chapters, a transcript, artwork: documents. The largest real feeds (thousands of items) are a few MB.
DOCUMENT = Limits(deadline_s=120.0, min_rate=1024.0, max_bytes=50 * MiB)
#: An episode's media. 1 GiB holds 12 hours of 192 kbps MP3; a longer body is not a podcast episode.
MEDIA = Limits(deadline_s=4 * 3600.0, min_rate=8 * 1024.0, max_bytes=1024 * MiB)
#: HEAD and ranged GETs: headers and at most a few KB.
PROBE = Limits(deadline_s=60.0, min_rate=0.0, max_bytes=1 * MiB)


@dataclass(frozen=True)
class Response:
    """What a server answered: status, headers (lower-case names) and the body read (possibly only its start)."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    reason: str = ""

    def media_type(self) -> str:
        """``Content-Type`` without parameters, lower case."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def _reason(e: BaseException) -> str:
    """Why a request failed, in a few words: urllib3 nests the cause in a paragraph that names the pool."""
    x = urllib3.exceptions
    cause: BaseException = e
    while isinstance(cause, x.MaxRetryError) and cause.reason is not None:
        cause = cause.reason
    if isinstance(cause, x.NameResolutionError):
        return "its name does not resolve (DNS)"
    if isinstance(cause, x.NewConnectionError):  # a subclass of ConnectTimeoutError: asked first
        return "the connection was refused" if "refused" in str(cause).lower() else "no connection"
    if isinstance(cause, x.ConnectTimeoutError):
        return "the connection timed out"
    if isinstance(cause, x.SSLError):
        return "TLS failed (certificate?)"
    if isinstance(cause, x.ReadTimeoutError):
        return "it stopped answering (read timeout)"
    if isinstance(cause, x.ProtocolError):
        return "the connection broke"
    return type(cause).__name__


# ------------------------------------------------------------------------------------------------ where we connect


class Refused(Exception):
    """A URL or address the rules refuse (not an OSError, so urllib3 neither retries nor wraps it)."""


def check_scheme(url: str) -> None:
    """Raise :class:`Refused` unless ``url`` is http(s) with a host (``file:``, ``ftp:``, ``data:`` never are)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Refused(f"only http(s) URLs are fetched, not {parts.scheme or 'a relative'} URLs: {url}")


def _refused_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None


def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[tuple[Any, ...]]:
    """Every address ``host`` resolves to (``getaddrinfo`` rows), after checking each: one private address refuses
    the host (unless ``allow_private``), since which one a connection would get is not ours to choose."""
    rows = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    if not allow_private:
        for row in rows:
            kind = _refused_kind(ipaddress.ip_address(str(row[4][0]).split("%")[0]))
            if kind is not None:
                raise Refused(f"{host} resolves to {row[4][0]}, a {kind} address: not fetched without --allow-private")
    return rows


class _Watchdog:
    """One thread for every exchange of the process: four times a second it asks each whether it broke its limits
    (and ends those that did) and lets long ones log their progress. A thread per exchange would cost ``produce
    verify``'s two thousand requests a thread start each."""

    def __init__(self) -> None:
        self._active: set[_Exchange] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, ex: _Exchange) -> None:
        with self._lock:
            self._active.add(ex)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="keylime-http-watchdog", daemon=True)
                self._thread.start()

    def remove(self, ex: _Exchange) -> None:
        with self._lock:
            self._active.discard(ex)

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            with self._lock:
                active = list(self._active)
            now = time.monotonic()
            for ex in active:
                ex.tick(now)


_watchdog = _Watchdog()


class _Exchange:
    """One request and its body, watched: the watchdog ends it when the deadline passes or the body comes slower
    than the minimum rate, by shutting down the socket a read may be blocked on."""

    def __init__(self, url: str, limits: Limits) -> None:
        self.url, self.limits = url, limits
        self.t0 = time.monotonic()
        self.done = 0
        self.total: int | None = None
        self.body_started: float | None = None
        self.failure: str | None = None
        self._sock: socket.socket | None = None
        self._window = (self.t0, 0)
        self._last_log = self.t0
        self._lock = threading.Lock()
        _watchdog.add(self)

    def use(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
        if self.failure is not None:
            self._kill()

    def _kill(self) -> None:
        with self._lock:
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _verdict(self, now: float) -> str | None:
        lim = self.limits
        if self.body_started is None and now - self.t0 > min(ANSWER_S, lim.deadline_s):
            return f"it did not answer within {min(ANSWER_S, lim.deadline_s):g} s"
        if now - self.t0 > lim.deadline_s:
            return f"it took longer than the {lim.deadline_s:g} s allowed ({self.done:,} bytes read)"
        if lim.min_rate and self.body_started is not None:
            start, at = self._window
            if now - start >= RATE_WINDOW_S:
                rate = (self.done - at) / (now - start)
                if rate < lim.min_rate:
                    return (
                        f"it sent {self.done - at:,} bytes in {now - start:.0f} s, under the minimum "
                        f"{lim.min_rate / 1024:g} KiB/s"
                    )
                self._window = (now, self.done)
        return None

    def tick(self, now: float) -> None:
        """The watchdog's look at this exchange."""
        if self.failure is None:
            verdict = self._verdict(now)
            if verdict is not None:
                self.failure = verdict
                self._kill()
                _watchdog.remove(self)
                return
            if self.body_started is not None and now - self._last_log >= PROGRESS_EVERY_S:
                self._last_log = now
                mib = self.done / MiB
                of = f" of {self.total / MiB:.1f}" if self.total else ""
                rate = mib / max(1e-6, now - self.body_started)
                log.info("%s: %.1f%s MiB (%.2f MiB/s)", urlsplit(self.url).netloc, mib, of, rate)

    def started_body(self, total: int | None) -> None:
        self.body_started = time.monotonic()
        self._window = (self.body_started, 0)
        self.total = total

    def count(self, n: int) -> None:
        self.done += n
        if self.done > self.limits.max_bytes:
            raise HttpError(f"the body is longer than the {self.limits.max_bytes:,} bytes allowed", where=self.url)

    def close(self) -> None:
        _watchdog.remove(self)

    def error(self, e: BaseException) -> HttpError:
        """The error for ``e`` raised while this exchange was watched: the watchdog's reason if it ended it."""
        if self.failure is not None:
            return HttpError(self.failure, where=self.url)
        return HttpError(_reason(e), where=self.url)


_current = threading.local()


def _watched_class(base: type[HTTPConnection], allow_private: bool) -> type[HTTPConnection]:
    class Watched(base):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            # Resolve once, check every address, connect to a checked one: the TLS layer (HTTPSConnection) still
            # verifies the certificate against the host name, and the Host header keeps it.
            try:
                rows = checked_addresses(self._dns_host, self.port, allow_private=allow_private)
            except socket.gaierror as e:
                raise urllib3.exceptions.NameResolutionError(self.host, self, e) from e
            last: OSError | None = None
            for _family, _type, _proto, _name, addr in rows:
                try:
                    sock = _connection.create_connection(
                        (addr[0], addr[1]), self.timeout, source_address=self.source_address,
                        socket_options=self.socket_options,
                    )  # fmt: skip
                except OSError as e:
                    last = e
                    continue
                return sock
            if isinstance(last, TimeoutError):
                raise urllib3.exceptions.ConnectTimeoutError(self, f"connecting to {self.host} timed out") from last
            raise urllib3.exceptions.NewConnectionError(self, f"Failed to establish a new connection: {last}")

        def getresponse(self) -> Any:
            ex: _Exchange | None = getattr(_current, "exchange", None)
            if ex is not None:
                ex.use(self.sock)
            return super().getresponse()

    return Watched


class Client:
    """A pool of connections with one User-Agent and the timeouts every request of its caller gets.

    ``workers`` is how many threads use the client at once (the pool keeps that many connections per host).
    ``allow_private`` lets it reach loopback, link-local and private addresses (a host on this machine or this
    network); without it such a host is refused.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        workers: int = 1,
        allow_private: bool = False,
    ):
        self.allow_private = allow_private
        self.pool = urllib3.PoolManager(
            num_pools=8,
            maxsize=max(1, workers),
            timeout=urllib3.Timeout(connect=connect_timeout, read=timeout),
            retries=urllib3.Retry(total=2, redirect=0, status=0, raise_on_status=False),
            headers={"User-Agent": user_agent},
        )
        http_cls = _watched_class(HTTPConnection, allow_private)
        https_cls = _watched_class(HTTPSConnection, allow_private)
        self.pool.pool_classes_by_scheme = {
            "http": type("WatchedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_cls}),
            "https": type("WatchedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_cls}),
        }

    def _open(self, method: str, url: str, headers: Mapping[str, str], ex: _Exchange) -> tuple[str, Any]:
        """Send the request, following redirects (each hop's URL checked); returns the final URL and response."""
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                check_scheme(url)
            except Refused as e:
                raise HttpError(str(e), where=ex.url) from None
            _current.exchange = ex
            try:
                r = self.pool.request(method, url, headers=dict(headers), preload_content=False, redirect=False)
            except Refused as e:
                raise HttpError(str(e), where=url) from None
            except urllib3.exceptions.HTTPError as e:
                raise ex.error(e) from e
            finally:
                _current.exchange = None
            location = r.headers.get("location")
            if r.status not in _REDIRECTS or not location:
                return url, r
            r.close()  # never read a redirect's body: its size is the peer's choice
            url = urljoin(url, location)
            if r.status == 303:
                method = "GET" if method != "HEAD" else method
        raise HttpError(f"more than {MAX_REDIRECTS} redirects", where=ex.url)

    @contextmanager
    def _exchange(self, url: str, limits: Limits) -> Iterator[_Exchange]:
        ex = _Exchange(url, limits)
        try:
            yield ex
        finally:
            ex.close()

    def head(self, url: str, *, limits: Limits = PROBE) -> Response:
        """HEAD ``url``."""
        with self._exchange(url, limits) as ex:
            _, r = self._open("HEAD", url, {}, ex)
            r.close()
        return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, b"", r.reason or "")

    def get(self, url: str, *, first: int | None = None, limits: Limits = DOCUMENT) -> Response:
        """GET ``url``, the whole body (at most ``limits.max_bytes``, else an :class:`HttpError`); with ``first``, a
        ranged GET for bytes ``0..first-1`` that never reads more than ``first + 1`` bytes (one more shows a server
        that ignored the range)."""
        headers = {"Range": f"bytes=0-{first - 1}"} if first else {}
        with self._exchange(url, limits.capped(first + 1 if first else None)) as ex:
            _, r = self._open("GET", url, headers, ex)
            try:
                parts = list(_body(r, ex, 64 * 1024, stop_at=first + 1 if first else None))
            except BaseException:
                r.close()  # the rest of the body is unread: the connection cannot serve another request
                raise
            # A server that ignored the Range header would send the whole file: close the connection instead of
            # reading (or draining) the rest.
            if first is not None and r.status != 206:
                r.close()
            else:
                r.release_conn()
        return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, b"".join(parts), r.reason or "")

    @contextmanager
    def stream(self, url: str, *, start: int = 0, limits: Limits = MEDIA) -> Iterator[Streamed]:
        """GET ``url`` from byte ``start`` (``Range: bytes=start-`` when not 0) for reading in chunks
        (:meth:`Streamed.chunks`, at most ``limits.max_bytes`` from ``start``); the connection is released when the
        block ends."""
        with self._exchange(url, limits) as ex:
            final, r = self._open("GET", url, {"Range": f"bytes={start}-"} if start else {}, ex)
            try:
                yield Streamed(final, r, ex)
            except BaseException:
                r.close()  # the rest of the body is unread: the connection cannot serve another request
                raise
            r.release_conn()


def _body(raw: Any, ex: _Exchange, size: int, *, stop_at: int | None = None) -> Iterator[bytes]:
    """The body in pieces of at most ``size`` bytes as they arrive, counted against the exchange's limits."""
    cl = raw.headers.get("content-length")
    ex.started_body(int(cl) if cl and cl.isdigit() else None)
    try:
        while True:
            if ex.failure is not None:
                raise ex.error(TimeoutError())
            want = size if stop_at is None else min(size, stop_at - ex.done)
            if want <= 0:
                return
            chunk = raw.read1(want)
            if not chunk:
                if ex.failure is not None:  # the watchdog shut the socket: an EOF that is not the body's end
                    raise ex.error(TimeoutError())
                return
            ex.count(len(chunk))
            yield chunk
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise ex.error(e) from e


class Streamed:
    """A response whose body is still to be read: status and headers now, the body chunk by chunk."""

    def __init__(self, url: str, raw: Any, ex: _Exchange) -> None:
        self.url = url
        self.status: int = raw.status
        self.reason: str = raw.reason or ""
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in raw.headers.items()}
        self._raw = raw
        self._ex = ex

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes, each as soon as it arrives (``read1``: a plain ``read``
        holds back a partial piece, and a connection cut mid-piece would lose it instead of leaving it for a resume);
        a body cut short of its ``Content-Length``, longer than the limits allow, slower than their minimum rate or
        past their deadline is an :class:`HttpError`."""
        yield from _body(self._raw, self._ex, size)
