"""The one HTTP client: urllib3, for every URL keylime-prod reads (old feeds and their media for ``produce import``
and the batch, the live feed and its files for ``produce verify``).

urllib3 because the callers need what it does directly: a connection pool the release check's parallel requests
share, separate connect and read timeouts, redirects (hosts move media behind CDNs), bodies streamed in chunks or
cut after the first bytes, and ``Range`` answers (``206``/``416``) handed back as statuses instead of exceptions.
Connection errors are retried twice; HTTP statuses are never retried or raised here: the caller decides what a
404 means. Failures to connect or to read are an :class:`~keylime_prod.errors.HttpError` naming the URL and
saying why in a few words ("the connection was refused"), which each caller translates into its own error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import urllib3

from .errors import HttpError


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


class Client:
    """A pool of connections with one User-Agent and the timeouts every request of its caller gets.

    ``workers`` is how many threads use the client at once (the pool keeps that many connections per host).
    """

    def __init__(self, *, user_agent: str, timeout: float = 30.0, connect_timeout: float = 5.0, workers: int = 1):
        self.pool = urllib3.PoolManager(
            num_pools=8,
            maxsize=max(1, workers),
            timeout=urllib3.Timeout(connect=connect_timeout, read=timeout),
            retries=urllib3.Retry(total=2, redirect=5, status=0, raise_on_status=False),
            headers={"User-Agent": user_agent},
        )

    def _open(self, method: str, url: str, headers: Mapping[str, str]) -> Any:
        try:
            return self.pool.request(method, url, headers=dict(headers), preload_content=False, redirect=True)
        except urllib3.exceptions.HTTPError as e:
            raise HttpError(_reason(e), where=url) from e

    def head(self, url: str) -> Response:
        """HEAD ``url``."""
        r = self._open("HEAD", url, {})
        r.release_conn()
        return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, b"", r.reason or "")

    def get(self, url: str, *, first: int | None = None) -> Response:
        """GET ``url``, the whole body; with ``first``, a ranged GET for bytes ``0..first-1`` that never reads more
        than ``first + 1`` bytes (one more shows a server that ignored the range)."""
        headers = {"Range": f"bytes=0-{first - 1}"} if first else {}
        r = self._open("GET", url, headers)
        try:
            body = r.read() if first is None else r.read(first + 1)
        except urllib3.exceptions.HTTPError as e:
            raise HttpError(_reason(e), where=url) from e
        finally:
            # A server that ignored the Range header would send the whole file: close the connection instead of
            # reading (or draining) the rest.
            if first is not None and r.status != 206:
                r.close()
            else:
                r.release_conn()
        return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, body, r.reason or "")

    @contextmanager
    def stream(self, url: str, *, start: int = 0) -> Iterator[Streamed]:
        """GET ``url`` from byte ``start`` (``Range: bytes=start-`` when not 0) for reading in chunks
        (:meth:`Streamed.chunks`); the connection is released when the block ends."""
        r = self._open("GET", url, {"Range": f"bytes={start}-"} if start else {})
        try:
            yield Streamed(url, r)
        finally:
            r.release_conn()


class Streamed:
    """A response whose body is still to be read: status and headers now, the body chunk by chunk."""

    def __init__(self, url: str, raw: Any) -> None:
        self.url = url
        self.status: int = raw.status
        self.reason: str = raw.reason or ""
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in raw.headers.items()}
        self._raw = raw

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes, each as soon as it arrives (``read1``: a plain ``read``
        holds back a partial piece, and a connection cut mid-piece would lose it instead of leaving it for a resume);
        a body cut short of its ``Content-Length`` is an :class:`HttpError`."""
        try:
            while chunk := self._raw.read1(size):
                yield chunk
        except urllib3.exceptions.HTTPError as e:
            raise HttpError(_reason(e), where=self.url) from e
