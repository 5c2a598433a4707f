"""Verified uploads to S3-compatible storage, and a local folder laid out the same way.

Two stores share one interface (:class:`Store`): :class:`S3Store` talks to any S3-compatible endpoint (AWS S3,
MinIO, Cloudflare R2, Backblaze B2, ``rclone serve s3`` ...) through boto3; :class:`LocalStore` writes into a folder
(``public/`` by default) with the same keys, so the demo runs offline. :func:`open_store` picks one from
:class:`~keylime_prod.config.StorageSettings`.

Every upload is verified: the object's size, then a content hash. We trust, in this order, an ETag equal to the MD5
we computed (single-part uploads; the ``md5-of-part-md5s-N`` form for multipart ones), the server's full-object
SHA-256 checksum (``x-amz-checksum-sha256``, returned by HEAD with ``ChecksumMode=ENABLED`` on AWS, MinIO, R2), and
otherwise read the object back and compare its SHA-256 (``verify = "read-back"`` always does). Nothing relies on
conditional writes, ACLs, user metadata or ranged GETs, which some S3-compatible servers ignore (docs/platform.md).

No exchange with the server waits without an end (docs/security.md, "What the network may do"): botocore's
connect and read timeouts and its standard retries bound each attempt, and every call runs under an overall
deadline (:meth:`S3Store._bounded`: the attempts' timeouts plus the bytes at :data:`MIN_RATE`), while the bytes of a
body (sent or received) must keep :data:`MIN_RATE` over each :data:`RATE_WINDOW_S` (:class:`_Rate`): a server or
proxy that trickles one byte every few seconds, which no read timeout catches, fails in bounded time with one line
naming the endpoint.

Credentials are never passed in: boto3 reads the standard ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN`` variables or an AWS profile itself. botocore and boto3 exceptions are translated into
:class:`~keylime_prod.errors.StorageError` here, where the library is called.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import fsutil
from ..config import StorageSettings
from ..errors import StorageError, redact
from ..progress import ProgressFn, null_progress

log = logging.getLogger(__name__)

_MIB = 1 << 20
#: GET bodies are read this much at a time: at most what MIN_RATE moves in a RATE_WINDOW_S, so a read that has not
#: returned within a window proves the rate fell under the minimum (:meth:`_Rate.stalled`).
_READ = 64 * 1024
_HASH_READ = 4 * _MIB
#: The slowest a body may move (bytes per second, over each RATE_WINDOW_S) before the transfer is given up.
MIN_RATE = 8 * 1024.0
RATE_WINDOW_S = 20.0
#: A long transfer logs one progress line this often (a CI log shows no progress bar).
PROGRESS_EVERY_S = 10.0

#: Content-Type of every kind of file we publish, by extension (S3 would default to ``binary/octet-stream``).
#: The types named by ``podcast:transcript`` / ``podcast:chapters`` are served bare: Podcasting 2.0 wants the served
#: Content-Type to equal the tag's ``type`` attribute.
CONTENT_TYPES: dict[str, str] = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/x-m4a",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".json": "application/json",
    ".txt": "text/plain",
    ".html": "text/html",
    ".md": "text/markdown; charset=utf-8",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".xml": "application/rss+xml; charset=utf-8",
}
#: Podcasting 2.0 chapters files have their own type.
CHAPTERS_TYPE = "application/json+chapters"


def content_type_for(path: Path | str) -> str:
    """The Content-Type we upload ``path`` with, from its extension."""
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def _media_type(value: str | None) -> str:
    """``text/vtt; charset=utf-8`` -> ``text/vtt`` (servers may add or drop parameters)."""
    return (value or "").split(";")[0].strip().lower()


# ---------------------------------------------------------------------------------------------------- digests


@dataclass(frozen=True)
class FileDigest:
    """Size, SHA-256 and MD5 of a local file, computed in one pass before uploading it.

    ``multipart`` says whether the file goes up in parts of ``part_size`` bytes; :attr:`multipart_etag` (the ETag
    AWS gives such an upload: MD5 of the concatenated part MD5s, then ``-N``) costs another pass over the file, so
    it is computed only when a server answers with an ETag of that form.
    """

    path: Path
    size: int
    sha256: str
    md5: str
    part_size: int
    multipart: bool = False

    @property
    def sha256_b64(self) -> str:
        """The SHA-256 as S3's ``x-amz-checksum-sha256`` header carries it (base64 of the raw digest)."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode("ascii")

    @property
    def md5_b64(self) -> str:
        """The MD5 as the ``Content-MD5`` header carries it."""
        return base64.b64encode(bytes.fromhex(self.md5)).decode("ascii")

    @functools.cached_property
    def multipart_etag(self) -> str | None:
        """``md5(part md5s)-N`` for a multipart upload of this file; ``None`` for a single PUT."""
        if not self.multipart:
            return None
        part_md5s = []
        with open(self.path, "rb") as f:
            while True:
                pm = hashlib.md5()
                left = self.part_size
                while left > 0 and (chunk := f.read(min(_READ, left))):
                    pm.update(chunk)
                    left -= len(chunk)
                if left == self.part_size:
                    break
                part_md5s.append(pm.digest())
        return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def part_size_for(size: int, chunk_bytes: int) -> int:
    """The part size s3transfer will really use for a file of ``size`` bytes (it grows parts past 10,000)."""
    from s3transfer.utils import ChunksizeAdjuster

    return int(ChunksizeAdjuster().adjust_chunksize(chunk_bytes, size))


def digest_file(path: Path, *, multipart_threshold: int, chunk_bytes: int) -> FileDigest:
    """Hash ``path`` once (SHA-256 and MD5 side by side); note whether it will be a multipart upload."""
    path = Path(path)
    size = path.stat().st_size
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_READ):
            sha.update(chunk)
            md5.update(chunk)
    # s3transfer goes multipart at size >= multipart_threshold.
    multipart = size >= multipart_threshold
    return FileDigest(path, size, sha.hexdigest(), md5.hexdigest(), part_size_for(size, chunk_bytes), multipart)


def digest_bytes(data: bytes) -> FileDigest:
    """A :class:`FileDigest` of bytes held in memory (manifests, the feed), always a single PUT."""
    return FileDigest(
        Path("-"), len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), max(len(data), 1)
    )


# ---------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RemoteObject:
    """What HEAD says about an object."""

    key: str
    size: int
    etag: str | None = None
    content_type: str | None = None
    cache_control: str | None = None
    checksum_sha256: str | None = None  # base64, only when the server keeps a full-object SHA-256


@dataclass(frozen=True)
class StoredObject:
    """One object uploaded (or found already there) and verified.

    ``verified_by`` says how the bytes were proven: ``sha256-checksum`` (the server's own SHA-256), ``etag-md5`` (an
    ETag equal to our MD5), ``read-back`` (GET and SHA-256), or ``manifest`` (the manifest recorded this exact
    object as verified and HEAD still shows the same size and ETag).
    """

    key: str
    url: str
    size: int
    sha256: str
    content_type: str
    cache_control: str
    etag: str | None
    verified_by: str
    uploaded: bool
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------------ stores


class Store:
    """The interface both stores share. Keys are ``/``-separated and already include the prefix."""

    kind = "abstract"

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.prefix = settings.prefix.strip("/")

    # -- naming

    @property
    def description(self) -> str:
        """Where objects go, for logs and summaries (never carries credentials)."""
        raise NotImplementedError

    #: Whether this is the local folder (the offline default), where demos may go and nothing is public.
    is_local = False

    def lock_path(self, scope: str) -> Path:
        """The lock file of ``scope`` (``feed``, or a batch task's episodes) on this target.

        Keyed by endpoint, bucket and prefix, so a staging and a live bucket behind one public URL never block each
        other. A bucket's lock lives on this machine (the temporary folder): a lock cannot live in S3 (no
        conditional writes on every server), so two machines need the workflow's ``concurrency`` to take turns.
        """
        s = self.settings
        target = "\n".join((s.endpoint_url or "aws", s.bucket or "", self.prefix))
        name = hashlib.sha256(target.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / "keylime-prod" / "locks" / f"{name}-{scope}.lock"

    def key(self, *parts: str) -> str:
        """Join ``parts`` under the configured prefix."""
        rel = "/".join(p.strip("/") for p in parts if p.strip("/"))
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _default_base_url(self) -> str:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """The public URL of the prefix: ``public_base_url`` if set, else the store's own address for it."""
        return (self.settings.public_base_url or self._default_base_url()).rstrip("/")

    def url(self, key: str) -> str:
        """The public URL of ``key`` (``public_base_url`` stands for the prefix)."""
        rel = key[len(self.prefix) + 1 :] if self.prefix and key.startswith(self.prefix + "/") else key
        return f"{self.base_url}/{urllib.parse.quote(rel, safe='/')}"

    # -- primitives each store implements

    def check(self) -> None:
        """Fail early, with a clear message, if the store cannot be used (no bucket, no access, no connection)."""
        raise NotImplementedError

    def head(self, key: str) -> RemoteObject | None:
        """What the store holds at ``key``, or ``None``."""
        raise NotImplementedError

    def get_bytes(self, key: str) -> bytes | None:
        """The bytes at ``key``, or ``None`` if there is no such object."""
        raise NotImplementedError

    def read_sha256(self, key: str) -> tuple[int, str]:
        """Read ``key`` back in full: its size and hex SHA-256."""
        raise NotImplementedError

    def list_keys(self, under: str) -> list[str]:
        """Every key that starts with ``under``, sorted."""
        raise NotImplementedError

    def download(self, key: str, dest: Path, *, progress: ProgressFn = null_progress) -> tuple[int, str]:
        """Write the object at ``key`` to ``dest`` (created or replaced whole, never half-written) and return its
        size and hex SHA-256, hashed as it streams."""
        raise NotImplementedError

    def delete(self, keys: list[str]) -> None:
        """Delete ``keys`` (missing ones are not an error)."""
        raise NotImplementedError

    def list_folders(self, under: str) -> list[str]:
        """The names of the "folders" directly below ``under`` (which ends in ``/``), sorted."""
        raise NotImplementedError

    def _put_file(
        self, key: str, digest: FileDigest, *, content_type: str, cache_control: str, progress: ProgressFn
    ) -> None:
        raise NotImplementedError

    def _put_bytes(self, key: str, data: bytes, digest: FileDigest, *, content_type: str, cache_control: str) -> None:
        raise NotImplementedError

    # -- verified upload, shared

    def digest(self, path: Path) -> FileDigest:
        """Hash ``path`` with this store's multipart settings."""
        s = self.settings
        return digest_file(
            path, multipart_threshold=s.multipart_threshold_mb * _MIB, chunk_bytes=s.multipart_chunk_mb * _MIB
        )

    def confirm_upload(self, obj: RemoteObject, digest: FileDigest) -> str:
        """Prove ``obj`` holds exactly the bytes of ``digest``; return how, or raise :class:`StorageError`."""
        where = self.describe_key(obj.key)
        if obj.size != digest.size:
            raise StorageError(
                f"verification failed: the object has {obj.size} bytes, the file {digest.size}",
                where=where,
                hint="re-run to upload it again",
            )
        if self.settings.verify == "auto":
            # The ETag first: servers compute it from the bytes they stored (MD5 for a single PUT, MD5 of the part
            # MD5s for a multipart upload). A returned x-amz-checksum-sha256 comes second: AWS, MinIO and R2 check it
            # on receipt, but some servers (rclone serve s3) store and echo whatever the client sent.
            etag = (obj.etag or "").strip('"').lower()
            if etag and (etag == digest.md5 or ("-" in etag and etag == digest.multipart_etag)):
                return "etag-md5"
            if obj.checksum_sha256:
                if obj.checksum_sha256 != digest.sha256_b64:
                    raise StorageError(
                        "verification failed: the server's SHA-256 differs from the file's",
                        where=where,
                        hint="re-run to upload it again",
                    )
                return "sha256-checksum"
        # The ETag is not an MD5 we can check (encrypted or composite objects, some servers): read it back.
        size, sha = self.read_sha256(obj.key)
        if size != digest.size or sha != digest.sha256:
            raise StorageError(
                f"verification failed: read back {size} bytes, SHA-256 {sha[:12]}..., "
                f"expected {digest.size} bytes, {digest.sha256[:12]}...",
                where=where,
                hint="re-run to upload it again",
            )
        return "read-back"

    def describe_key(self, key: str) -> str:
        """``key`` as a user-facing location."""
        return key

    def _matches(self, obj: RemoteObject | None, digest: FileDigest, content_type: str, cache_control: str) -> bool:
        if obj is None or obj.size != digest.size:
            return False
        # A server that forgets metadata (rclone keeps it in memory only) gets the object again: harmless.
        if obj.content_type is not None and _media_type(obj.content_type) != _media_type(content_type):
            return False
        return not (obj.cache_control is not None and obj.cache_control != cache_control)

    def existing(
        self,
        key: str,
        digest: FileDigest,
        *,
        content_type: str,
        cache_control: str,
        known_etag: str | None = None,
    ) -> StoredObject | None:
        """The object at ``key`` if it already holds exactly ``digest``'s bytes with these headers, else ``None``.

        ``known_etag`` is the ETag a manifest recorded when this exact object (same key, same SHA-256) was verified;
        if HEAD still shows it with the same size, the object counts as verified without reading it again.
        """
        t0 = time.perf_counter()
        obj = self.head(key)
        if obj is None or not self._matches(obj, digest, content_type, cache_control):
            return None
        if known_etag and obj.etag and obj.etag == known_etag:
            method = "manifest"
        else:
            try:
                method = self.confirm_upload(obj, digest)
            except StorageError as e:
                log.info(
                    "%s: present but not verified (%s); it will be uploaded again", self.describe_key(key), e.message
                )
                return None
        return self._stored(key, digest, obj, content_type, cache_control, method, False, t0)

    def upload_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str,
        cache_control: str,
        digest: FileDigest | None = None,
        known_etag: str | None = None,
        progress: ProgressFn = null_progress,
    ) -> StoredObject:
        """Upload ``path`` to ``key`` unless it is already there and verified (:meth:`existing`), then verify it."""
        t0 = time.perf_counter()
        digest = digest or self.digest(path)
        found = self.existing(
            key, digest, content_type=content_type, cache_control=cache_control, known_etag=known_etag
        )
        if found is not None:
            log.debug("%s: already there (%s), not uploaded", self.describe_key(key), found.verified_by)
            return found
        log.debug("%s: uploading %d bytes (%s)", self.describe_key(key), digest.size, content_type)
        self._put_file(key, digest, content_type=content_type, cache_control=cache_control, progress=progress)
        obj = self.head(key)
        if obj is None:
            raise StorageError(
                "verification failed: the object is missing right after the upload", where=self.describe_key(key)
            )
        method = self.confirm_upload(obj, digest)
        if obj.content_type is not None and _media_type(obj.content_type) != _media_type(content_type):
            log.warning(
                "%s: the server serves it as %s, not %s", self.describe_key(key), obj.content_type, content_type
            )
        return self._stored(key, digest, obj, content_type, cache_control, method, True, t0)

    def put_bytes(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> StoredObject:
        """Upload ``data`` to ``key`` (always: manifests and feeds are small) and verify it."""
        t0 = time.perf_counter()
        digest = digest_bytes(data)
        self._put_bytes(key, data, digest, content_type=content_type, cache_control=cache_control)
        obj = self.head(key)
        if obj is None:
            raise StorageError(
                "verification failed: the object is missing right after the upload", where=self.describe_key(key)
            )
        method = self.confirm_upload(obj, digest)
        return self._stored(key, digest, obj, content_type, cache_control, method, True, t0)

    def _stored(
        self,
        key: str,
        digest: FileDigest,
        obj: RemoteObject,
        content_type: str,
        cache_control: str,
        method: str,
        uploaded: bool,
        t0: float,
    ) -> StoredObject:
        return StoredObject(
            key=key,
            url=self.url(key),
            size=obj.size,
            sha256=digest.sha256,
            content_type=content_type,
            cache_control=cache_control,
            etag=obj.etag,
            verified_by=method,
            uploaded=uploaded,
            seconds=time.perf_counter() - t0,
        )


# ---------------------------------------------------------------------------------------------------------- S3


_CREDENTIALS_HINT = "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the key's permissions"


class _Rate:
    """The bytes of one S3 body, counted as they move: raises :class:`StorageError` when a window of
    :data:`RATE_WINDOW_S` moved less than :data:`MIN_RATE`, and logs progress every :data:`PROGRESS_EVERY_S`."""

    def __init__(self, what: str, where: str, endpoint: str, total: int | None) -> None:
        self.what, self.where, self.endpoint, self.total = what, where, endpoint, total
        self.t0 = self._window_at = self._logged = time.monotonic()
        self.done = self._window_bytes = 0
        self.started: float | None = None  # when the body began to move
        self.last = self.t0  # when bytes last moved
        self._lock = threading.Lock()

    def begin(self) -> None:
        """The body starts to move now (a GET's answer arrived)."""
        with self._lock:
            if self.started is None:
                self.started = self.last = self._window_at = self._logged = time.monotonic()

    def stalled(self, now: float) -> str | None:
        """Why the transfer is too slow, if no bytes moved for a whole window once the body started (each piece is
        at most what MIN_RATE moves in a window, so such a gap is a rate under the minimum)."""
        if self.started is None or now - self.last < RATE_WINDOW_S:
            return None
        if self.total and self.done >= self.total:  # all sent: the server may take its time to answer (deadline)
            return None
        return (
            f"{self.endpoint} moved nothing for {now - self.last:.0f} s ({self.done:,} bytes in all), under the "
            f"minimum {MIN_RATE / 1024:g} KiB/s"
        )

    def __call__(self, n: int) -> None:
        self.begin()
        with self._lock:
            self.done += n
            now = self.last = time.monotonic()
            if now - self._window_at >= RATE_WINDOW_S:
                moved, took = self.done - self._window_bytes, now - self._window_at
                if moved / took < MIN_RATE:
                    raise StorageError(
                        f"cannot {self.what}: {self.endpoint} moved {moved:,} bytes in {took:.0f} s, under the "
                        f"minimum {MIN_RATE / 1024:g} KiB/s",
                        where=self.where,
                        hint="re-run later: finished files are not uploaded again",
                    )
                self._window_at, self._window_bytes = now, self.done
            if now - self._logged >= PROGRESS_EVERY_S:
                self._logged = now
                of = f" of {self.total / _MIB:.1f}" if self.total else ""
                log.info("%s: %.1f%s MiB (%.2f MiB/s)", self.where, self.done / _MIB, of,
                         self.done / _MIB / max(1e-6, now - self.t0))  # fmt: skip


class _RateReader:
    """A file whose reads (botocore sending it as a request body) are counted by a :class:`_Rate`."""

    def __init__(self, f: Any, rate: _Rate) -> None:
        self._f, self._rate = f, rate

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._f.read(n)
        self._rate(len(data))
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return int(self._f.seek(offset, whence))

    def tell(self) -> int:
        return int(self._f.tell())


class S3Store(Store):
    """A bucket on an S3-compatible server, reached with boto3."""

    kind = "s3"

    def __init__(self, settings: StorageSettings) -> None:
        super().__init__(settings)
        if not settings.bucket:
            raise StorageError(
                "no bucket configured",
                where="storage.bucket",
                hint="set storage.bucket in show.toml or KEYLIME_S3_BUCKET",
            )
        self.bucket: str = settings.bucket
        self.endpoint = redact(settings.endpoint_url, drop=True) if settings.endpoint_url else None
        import boto3
        import botocore.exceptions
        from boto3.s3.transfer import TransferConfig

        try:
            self._session = boto3.session.Session(profile_name=settings.profile, region_name=settings.region)
        except botocore.exceptions.BotoCoreError as e:  # ProfileNotFound, a bad config file
            raise self._error(e, "open the AWS session") from None
        self.client = self._client(settings.max_attempts, settings.connect_timeout_s, settings.read_timeout_s)
        # HEAD-bucket probe: one attempt, so an unreachable endpoint fails within the connect timeout.
        self._probe = self._client(1, settings.connect_timeout_s, settings.connect_timeout_s)
        self.transfer_config = TransferConfig(
            multipart_threshold=settings.multipart_threshold_mb * _MIB,
            multipart_chunksize=settings.multipart_chunk_mb * _MIB,
            max_concurrency=settings.concurrency,
            use_threads=True,
        )

    def _client(self, attempts: int, connect_timeout: float, read_timeout: float) -> Any:
        from botocore.config import Config

        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": self.settings.addressing_style},
            retries={"mode": "standard", "total_max_attempts": attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # boto3 >= 1.36 adds CRC checksums to every request by default (aws-chunked trailers over HTTPS) and
            # validates them on responses; several S3-compatible servers answer those with MissingContentLength
            # or fail ranged GETs with FlexibleChecksumError. Only send/check them where the API requires it.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=max(10, self.settings.concurrency + 2),
        )
        return self._session.client("s3", endpoint_url=self.settings.endpoint_url, config=config)

    @property
    def description(self) -> str:
        """``s3://bucket/prefix`` and the endpoint."""
        loc = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{loc} at {self.endpoint}" if self.endpoint else loc

    def describe_key(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}"

    def _default_base_url(self) -> str:
        if self.endpoint:
            base = f"{self.endpoint}/{self.bucket}"
        else:
            base = f"https://{self.bucket}.s3.{self.settings.region}.amazonaws.com"
        return f"{base}/{urllib.parse.quote(self.prefix)}" if self.prefix else base

    # -- errors

    def _error(self, e: BaseException, what: str, key: str | None = None) -> StorageError:
        """Translate a boto3/botocore exception into one readable :class:`StorageError` line."""
        import boto3.exceptions
        import botocore.exceptions as bx

        where = self.describe_key(key) if key else f"s3://{self.bucket}"
        endpoint = self.endpoint or "AWS S3"
        # boto3 wraps a failed transfer; the cause tells what really happened.
        if isinstance(e, (boto3.exceptions.S3UploadFailedError, boto3.exceptions.RetriesExceededError)):
            inner = e.__cause__ or e.__context__ or getattr(e, "last_exception", None)
            if isinstance(inner, (bx.BotoCoreError, bx.ClientError)):
                e = inner
        if isinstance(e, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError)):
            return StorageError(f"cannot {what}: no usable S3 credentials", where=where, hint=_CREDENTIALS_HINT)
        if isinstance(e, bx.ProfileNotFound):
            return StorageError(
                f"AWS profile {self.settings.profile!r} not found",
                where="storage.profile",
                hint="fix storage.profile or AWS_PROFILE",
            )
        if isinstance(e, bx.SSLError):
            return StorageError(
                f"cannot {what}: TLS certificate of {endpoint} not trusted",
                where=where,
                hint="for a self-signed certificate set AWS_CA_BUNDLE to its CA file",
            )
        if isinstance(e, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
            return StorageError(
                f"cannot {what}: cannot connect to {endpoint}",
                where=where,
                hint="check storage.endpoint_url / KEYLIME_S3_ENDPOINT_URL and that the server is up",
            )
        if isinstance(e, bx.ReadTimeoutError):
            return StorageError(f"cannot {what}: {endpoint} stopped answering", where=where, hint="re-run later")
        if isinstance(e, (bx.ConnectionClosedError, bx.HTTPClientError, bx.ConnectionError)):
            return StorageError(
                f"cannot {what}: the connection to {endpoint} failed ({type(e).__name__}) after "
                f"{self.settings.max_attempts} attempts",
                where=where,
                hint="re-run: finished files are not uploaded again",
            )
        if isinstance(e, bx.ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and key is None):
                return StorageError(
                    f"bucket {self.bucket!r} does not exist at {endpoint}",
                    where="storage.bucket",
                    hint="create it, or fix storage.bucket / KEYLIME_S3_BUCKET",
                )
            if (
                code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden")
                or status == 403
            ):
                return StorageError(
                    f"cannot {what}: access denied by {endpoint} ({code})", where=where, hint=_CREDENTIALS_HINT
                )
            message = str(err.get("Message", "")).strip() or str(status or "")
            return StorageError(f"cannot {what}: {code or 'error'} {message}".strip(), where=where)
        if isinstance(e, (bx.BotoCoreError, boto3.exceptions.Boto3Error)):
            return StorageError(f"cannot {what}: {e}", where=where)
        return StorageError(f"cannot {what}: {type(e).__name__}: {e}", where=where)

    @contextmanager
    def _calling(self, what: str, key: str | None = None) -> Iterator[None]:
        import boto3.exceptions
        import botocore.exceptions as bx

        try:
            yield
        except (bx.BotoCoreError, bx.ClientError, boto3.exceptions.Boto3Error) as e:
            raise self._error(e, what, key) from e

    def _rate(self, what: str, key: str, total: int | None) -> _Rate:
        return _Rate(what, self.describe_key(key), self.endpoint or "AWS S3", total)

    def deadline_for(self, size: int) -> float:
        """How long one call moving ``size`` bytes may take in all: every attempt's connect and read timeouts (a
        server that answers nothing), then the bytes at :data:`MIN_RATE`."""
        st = self.settings
        return st.max_attempts * (st.connect_timeout_s + st.read_timeout_s) + size / MIN_RATE

    def _bounded(self, what: str, key: str | None, fn: Any, *, size: int = 0, rate: _Rate | None = None) -> Any:
        """``fn()`` under :meth:`deadline_for` ``size`` (or the size a GET's answer states, in ``rate.total``): run
        in a thread, given up when the deadline passes (a peer that trickles its answer, which the per-read timeout
        never catches). The given-up call's connection is left to its thread; later calls use a new client, so they
        never queue behind it."""
        box: dict[str, Any] = {}
        finished = threading.Event()

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as e:  # handed to the caller's thread as it is
                box["error"] = e
            finally:
                finished.set()

        t0 = time.monotonic()
        threading.Thread(target=run, name="keylime-s3-call", daemon=True).start()
        while not finished.wait(0.25):
            now = time.monotonic()
            limit = self.deadline_for(max(size, rate.total or 0) if rate is not None else size)
            why = rate.stalled(now) if rate is not None else None
            if why is None and now - t0 >= limit:
                why = f"{self.endpoint or 'AWS S3'} did not finish within {limit:.0f} s"
            if why is None:
                continue
            st = self.settings
            self.client = self._client(st.max_attempts, st.connect_timeout_s, st.read_timeout_s)
            raise StorageError(
                f"cannot {what}: {why}",
                where=self.describe_key(key) if key else f"s3://{self.bucket}",
                hint="re-run later: finished files are not uploaded again",
            )
        if "error" in box:
            raise box["error"]
        return box.get("value")

    # -- primitives

    def check(self) -> None:
        """HEAD the bucket once, without retries: no bucket, bad keys or no server fail here, quickly."""
        with self._calling("reach the bucket"):
            if self._session.get_credentials() is None:
                import botocore.exceptions as bx

                raise bx.NoCredentialsError()
            self._bounded("reach the bucket", None, lambda: self._probe.head_bucket(Bucket=self.bucket))

    def head(self, key: str) -> RemoteObject | None:
        """HEAD ``key`` (asking for the stored checksum); ``None`` when it does not exist."""
        import botocore.exceptions as bx

        with self._calling("check", key):
            try:
                r = self._bounded(
                    "check", key, lambda: self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
                )
            except bx.ClientError as e:
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404 or e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        checksum = r.get("ChecksumSHA256")
        # A COMPOSITE checksum (checksum of part checksums) is not the SHA-256 of the bytes: ignore it.
        if checksum and (r.get("ChecksumType") == "COMPOSITE" or "-" in checksum):
            checksum = None
        return RemoteObject(
            key=key,
            size=int(r.get("ContentLength", -1)),
            etag=r.get("ETag"),
            content_type=r.get("ContentType"),
            cache_control=r.get("CacheControl"),
            checksum_sha256=checksum,
        )

    def get_bytes(self, key: str) -> bytes | None:
        """GET ``key`` whole; ``None`` when it does not exist."""
        import botocore.exceptions as bx

        rate = self._rate("read", key, None)

        def read() -> bytes:
            r = self.client.get_object(Bucket=self.bucket, Key=key)
            rate.total = int(r.get("ContentLength") or 0)
            rate.begin()
            parts = []
            for chunk in r["Body"].iter_chunks(_READ):
                rate(len(chunk))
                parts.append(chunk)
            return b"".join(parts)

        with self._calling("read", key):
            try:
                data: bytes = self._bounded("read", key, read, rate=rate)
            except bx.ClientError as e:
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404 or e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
        return data

    def read_sha256(self, key: str) -> tuple[int, str]:
        """GET ``key`` and hash it as it streams."""
        h = hashlib.sha256()
        rate = self._rate("read back", key, None)

        def read() -> int:
            r = self.client.get_object(Bucket=self.bucket, Key=key)
            rate.total = int(r.get("ContentLength") or 0)
            rate.begin()
            for chunk in r["Body"].iter_chunks(_READ):
                rate(len(chunk))
                h.update(chunk)
            return rate.done

        with self._calling("read back", key):
            n: int = self._bounded("read back", key, read, rate=rate)
        return n, h.hexdigest()

    def download(self, key: str, dest: Path, *, progress: ProgressFn = null_progress) -> tuple[int, str]:
        """GET ``key`` into ``dest`` through a temporary file beside it, hashing as it streams."""
        h = hashlib.sha256()
        rate = self._rate("download", key, None)
        with self._calling("download", key), fsutil.atomic_path(dest) as tmp, open(tmp, "wb") as f:

            def read() -> int:
                r = self.client.get_object(Bucket=self.bucket, Key=key)
                total = rate.total = int(r.get("ContentLength") or 0)
                rate.begin()
                for chunk in r["Body"].iter_chunks(_READ):
                    rate(len(chunk))
                    f.write(chunk)
                    h.update(chunk)
                    progress(f"download {Path(key).name}", rate.done, total or rate.done)
                return rate.done

            n: int = self._bounded("download", key, read, rate=rate)
        return n, h.hexdigest()

    def delete(self, keys: list[str]) -> None:
        """DeleteObjects, 1000 keys a request (the S3 limit)."""
        with self._calling("delete", keys[0] if keys else None):
            for i in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[i : i + 1000]]
                delete = {"Objects": batch, "Quiet": True}
                r = self._bounded(
                    "delete", batch[0]["Key"], lambda d=delete: self.client.delete_objects(Bucket=self.bucket, Delete=d)
                )
                if r.get("Errors"):
                    e = r["Errors"][0]
                    raise StorageError(f"cannot delete: {e.get('Code')} {e.get('Message')}", where=e.get("Key"))

    def list_keys(self, under: str) -> list[str]:
        """List keys under ``under`` (paginated)."""

        def pages() -> list[str]:
            keys: list[str] = []
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=under):
                keys.extend(o["Key"] for o in page.get("Contents", ()))
            return keys

        with self._calling("list", under):
            return sorted(self._bounded("list", under, pages))

    def list_folders(self, under: str) -> list[str]:
        """One ``list_objects_v2`` with ``Delimiter="/"``: a page per 1000 episodes, not per object."""

        def pages() -> list[str]:
            names: list[str] = []
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=under, Delimiter="/"
            ):
                names.extend(c["Prefix"][len(under) :].rstrip("/") for c in page.get("CommonPrefixes", ()))
            return names

        with self._calling("list", under):
            return sorted(n for n in self._bounded("list", under, pages) if n)

    def _put_file(
        self, key: str, digest: FileDigest, *, content_type: str, cache_control: str, progress: ProgressFn
    ) -> None:
        label = f"upload {Path(key).name}"
        progress(label, 0, digest.size)
        if not digest.multipart:
            # One PUT. Content-MD5 makes the server refuse a corrupted body; the SHA-256 is kept by servers that
            # support full-object checksums, so a later HEAD can prove the bytes without reading them.
            extra: dict[str, Any] = {}
            if self.settings.send_checksums:
                extra = {"ContentMD5": digest.md5_b64, "ChecksumSHA256": digest.sha256_b64}
            rate = self._rate("upload", key, digest.size)
            with self._calling("upload", key), open(digest.path, "rb") as f:
                self._bounded(
                    "upload", key, size=digest.size, rate=rate,
                    fn=lambda: self.client.put_object(
                        Bucket=self.bucket, Key=key, Body=_RateReader(f, rate), ContentLength=digest.size,
                        ContentType=content_type, CacheControl=cache_control, **extra,
                    ),
                )  # fmt: skip
            progress(label, digest.size, digest.size)
            return
        # Multipart through s3transfer: parallel parts, each retried by botocore's standard retry mode.
        rate = self._rate("upload", key, digest.size)

        def callback(n: int) -> None:
            rate(n)  # raises when too slow: s3transfer cancels the other parts
            progress(label, min(rate.done, digest.size), digest.size)

        with self._calling("upload", key):
            self._bounded(
                "upload", key, size=digest.size, rate=rate,
                fn=lambda: self.client.upload_file(
                    str(digest.path), self.bucket, key,
                    ExtraArgs={"ContentType": content_type, "CacheControl": cache_control},
                    Callback=callback, Config=self.transfer_config,
                ),
            )  # fmt: skip

    def _put_bytes(self, key: str, data: bytes, digest: FileDigest, *, content_type: str, cache_control: str) -> None:
        extra: dict[str, Any] = {}
        if self.settings.send_checksums:
            extra = {"ContentMD5": digest.md5_b64, "ChecksumSHA256": digest.sha256_b64}
        with self._calling("upload", key):
            self._bounded(
                "upload", key, size=len(data),
                fn=lambda: self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, CacheControl=cache_control,
                    **extra,
                ),
            )  # fmt: skip


# ------------------------------------------------------------------------------------------------------- local


class LocalStore(Store):
    """A folder laid out exactly as the bucket would be (``<local_dir>/<prefix>/...``): the offline default."""

    kind = "local"
    is_local = True

    def __init__(self, settings: StorageSettings) -> None:
        super().__init__(settings)
        self.root = Path(settings.local_dir).resolve()

    def lock_path(self, scope: str) -> Path:
        """The folder holds its own lock (``.keylime/``, which no key can name), per prefix and scope."""
        name = hashlib.sha256(self.prefix.encode()).hexdigest()[:16]
        return self.root / ".keylime" / f"{name}-{scope}.lock"

    @property
    def description(self) -> str:
        """The folder."""
        return str(self.root / self.prefix) if self.prefix else str(self.root)

    def describe_key(self, key: str) -> str:
        """The file path of ``key``."""
        return str(self.path(key))

    def _default_base_url(self) -> str:
        return (self.root / self.prefix).as_uri() if self.prefix else self.root.as_uri()

    def path(self, key: str) -> Path:
        """The file that holds ``key``; keys never leave the folder."""
        if key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
            raise StorageError(f"invalid key {key!r}", where=self.root)
        return self.root / key

    def check(self) -> None:
        """The folder must be creatable and writable."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the publish folder: {e.strerror}", where=self.root) from e
        if not os.access(self.root, os.W_OK):
            raise StorageError("the publish folder is not writable", where=self.root, hint="fix storage.local_dir")

    def head(self, key: str) -> RemoteObject | None:
        """Size of the file at ``key`` (a folder keeps no content type or cache header)."""
        p = self.path(key)
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        return RemoteObject(key=key, size=st.st_size) if p.is_file() else None

    def get_bytes(self, key: str) -> bytes | None:
        """The file's bytes, or ``None``."""
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def read_sha256(self, key: str) -> tuple[int, str]:
        """Re-read the written file."""
        p = self.path(key)
        return p.stat().st_size, fsutil.sha256_file(p)

    def list_keys(self, under: str) -> list[str]:
        """Files whose key starts with ``under``."""
        base = self.root / under.rsplit("/", 1)[0] if "/" in under else self.root
        if not base.is_dir():
            return []
        keys = (
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.endswith(".part")
        )
        # No key part starts with a dot (is_valid_key_part): dot files and folders (the lock) are not objects.
        return sorted(k for k in keys if k.startswith(under) and not any(x.startswith(".") for x in k.split("/")))

    def download(self, key: str, dest: Path, *, progress: ProgressFn = null_progress) -> tuple[int, str]:
        """Copy the file at ``key`` to ``dest`` (atomically) and hash it."""
        src = self.path(key)
        if not src.is_file():
            raise StorageError("no such object", where=src, hint="check the key (produce upload-raw puts it there)")
        with fsutil.atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        return dest.stat().st_size, fsutil.sha256_file(dest)

    def delete(self, keys: list[str]) -> None:
        """Remove the files and the folders they leave empty."""
        for key in keys:
            p = self.path(key)
            with self._writing(key):
                p.unlink(missing_ok=True)
                for parent in p.parents:
                    if parent == self.root or not parent.is_relative_to(self.root):
                        break
                    try:
                        parent.rmdir()
                    except OSError:
                        break  # not empty

    def list_folders(self, under: str) -> list[str]:
        """Sub-folders of ``under``."""
        base = self.root / under.rstrip("/")
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def _put_file(
        self, key: str, digest: FileDigest, *, content_type: str, cache_control: str, progress: ProgressFn
    ) -> None:
        label = f"copy {Path(key).name}"
        progress(label, 0, digest.size)
        with self._writing(key), fsutil.atomic_path(self.path(key)) as tmp:
            shutil.copyfile(digest.path, tmp)
        progress(label, digest.size, digest.size)

    def _put_bytes(self, key: str, data: bytes, digest: FileDigest, *, content_type: str, cache_control: str) -> None:
        with self._writing(key):
            fsutil.write_bytes(self.path(key), data)

    @contextlib.contextmanager
    def _writing(self, key: str) -> Iterator[None]:
        # A full disk or a read-only folder is a storage error naming the target (not the source file): exit 7.
        try:
            yield
        except OSError as e:
            raise StorageError(f"cannot write: {e.strerror or e}", where=self.path(key), hint="free space or fix "
                               "storage.local_dir; nothing the feed points to was changed") from e  # fmt: skip


def open_store(settings: StorageSettings) -> Store:
    """The store ``settings`` describe: S3 when an endpoint or a bucket is configured, else the local folder."""
    if settings.endpoint_url or settings.bucket:
        return S3Store(settings)
    return LocalStore(settings)


def is_valid_key_part(name: str) -> bool:
    """Whether ``name`` is safe as one key segment (letters, digits, ``.-_``; no leading dot)."""
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name))
