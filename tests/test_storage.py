"""Verified uploads against a real S3 server (``rclone serve s3``), over HTTP, HTTPS and a connection-resetting proxy.

Every check reads the objects back independently: a plain boto3 client (not our Store) GETs them and we compare
SHA-256, or we read the files rclone wrote under its root.
"""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from support.configs import storage_settings
from support.s3 import BUCKET, SECRET_KEY, FaultProxy, RcloneS3, get_sha256, random_file, raw_client

from keylime_prod.config import StorageSettings, apply_overrides, load_show, storage_sources
from keylime_prod.errors import ConfigError, StorageError
from keylime_prod.publish import storage

MIB = 1 << 20


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------------ digests


def test_digest_of_a_multipart_file(tmp_path: Path) -> None:
    f = random_file(tmp_path / "big.bin", 12 * MIB + 123)
    d = storage.digest_file(f, multipart_threshold=5 * MIB, chunk_bytes=5 * MIB)
    data = f.read_bytes()
    parts = [hashlib.md5(data[i : i + 5 * MIB]).digest() for i in range(0, len(data), 5 * MIB)]
    assert d.size == len(data)
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert d.md5 == hashlib.md5(data).hexdigest()
    assert d.multipart_etag == hashlib.md5(b"".join(parts)).hexdigest() + "-3"
    small = storage.digest_file(f, multipart_threshold=64 * MIB, chunk_bytes=5 * MIB)
    assert small.multipart_etag is None and small.sha256 == d.sha256


# --------------------------------------------------------------------------------------------------- S3 uploads


def test_upload_verify_and_skip(s3_server: RcloneS3, tmp_path: Path) -> None:
    store = storage.open_store(storage_settings(s3_server.endpoint_url))
    assert isinstance(store, storage.S3Store)
    store.check()
    small = tmp_path / "transcript.vtt"
    small.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nHello & 🎧\n", encoding="utf-8")
    big = random_file(tmp_path / "episode.mp3", 12 * MIB + 7)
    seen: list[tuple[float, float]] = []
    a = store.upload_file(
        store.key("x/transcript.vtt"), small, content_type="text/vtt", cache_control="public, max-age=60"
    )
    b = store.upload_file(
        store.key("x/episode.mp3"),
        big,
        content_type="audio/mpeg",
        cache_control="public, max-age=31536000, immutable",
        progress=lambda _d, done, total: seen.append((done, total)),
    )
    assert a.uploaded and b.uploaded
    # rclone's ETag is the MD5 of the bytes it stored (for multipart uploads too).
    assert (a.verified_by, b.verified_by) == ("etag-md5", "etag-md5")
    assert seen[-1] == (big.stat().st_size, big.stat().st_size) and len(seen) > 2
    raw = raw_client(s3_server.endpoint_url)
    for obj, src, ctype in ((a, small, "text/vtt"), (b, big, "audio/mpeg")):
        assert obj.key.startswith("podcast/x/")
        assert get_sha256(raw, obj.key) == (src.stat().st_size, file_sha256(src))
        head = raw.head_object(Bucket=BUCKET, Key=obj.key)
        assert head["ContentType"] == ctype
        assert head["ContentLength"] == src.stat().st_size
    # The bytes on the server's disk are the same too.
    assert file_sha256(s3_server.root / BUCKET / b.key) == file_sha256(big)
    # A second upload finds both there and verified: nothing is sent.
    again = store.upload_file(store.key("x/episode.mp3"), big, content_type="audio/mpeg", cache_control=b.cache_control)
    assert not again.uploaded and again.verified_by == "etag-md5"
    assert not store.upload_file(a.key, small, content_type="text/vtt", cache_control=a.cache_control).uploaded


def test_read_back_mode_and_corruption_detected(s3_server: RcloneS3, tmp_path: Path) -> None:
    store = storage.open_store(storage_settings(s3_server.endpoint_url, verify="read-back"))
    f = random_file(tmp_path / "a.mp3", 300_000)
    obj = store.upload_file(store.key("a.mp3"), f, content_type="audio/mpeg", cache_control="no-cache")
    assert obj.verified_by == "read-back"
    # Flip one byte of the stored object behind the server's back: same size, different content.
    on_disk = s3_server.root / BUCKET / obj.key
    data = bytearray(on_disk.read_bytes())
    data[1000] ^= 0xFF
    on_disk.write_bytes(bytes(data))
    head = store.head(obj.key)
    assert head is not None and head.size == f.stat().st_size
    with pytest.raises(StorageError, match="verification failed"):
        store.confirm_upload(head, store.digest(f))
    # An upload notices it is not verified and sends the file again.
    fixed = store.upload_file(obj.key, f, content_type="audio/mpeg", cache_control="no-cache")
    assert fixed.uploaded and file_sha256(on_disk) == file_sha256(f)


@pytest.mark.s3
def test_https_with_self_signed_certificate(tmp_path: Path, aws_env: dict[str, str], monkeypatch: Any) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_pem, key_pem, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    server = RcloneS3(tmp_path / "s3tls", cert=cert_pem, key=key_pem)
    server.make_bucket(BUCKET)
    with server:
        assert server.endpoint_url.startswith("https://")
        settings = storage_settings(server.endpoint_url, max_attempts=1)
        # Untrusted certificate: a clear error, not a traceback.
        with pytest.raises(StorageError, match="TLS certificate .* not trusted.*AWS_CA_BUNDLE"):
            storage.open_store(settings).check()
        # Trusted through the standard AWS variable: single-part and multipart uploads verify.
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca_pem))
        store = storage.open_store(storage_settings(server.endpoint_url))
        store.check()
        small = tmp_path / "notes.md"
        small.write_text("# Notes\n", encoding="utf-8")
        big = random_file(tmp_path / "big.mp3", 6 * MIB + 1)
        raw = raw_client(server.endpoint_url, verify=str(ca_pem))
        for src, ctype in ((small, "text/markdown; charset=utf-8"), (big, "audio/mpeg")):
            obj = store.upload_file(store.key(src.name), src, content_type=ctype, cache_control="no-cache")
            assert obj.uploaded and obj.verified_by == "etag-md5"
            assert get_sha256(raw, obj.key) == (src.stat().st_size, file_sha256(src))


def test_connection_resets_are_retried(s3_server: RcloneS3, tmp_path: Path) -> None:
    assert s3_server.port is not None
    proxy = FaultProxy("127.0.0.1", s3_server.port, reset_at=(200_000, 3 * MIB, 8 * MIB))
    try:
        store = storage.open_store(storage_settings(proxy.endpoint_url, max_attempts=5, concurrency=2))
        big = random_file(tmp_path / "ep.mp3", 11 * MIB + 5)
        small = random_file(tmp_path / "small.srt", 600_000, seed=2)
        up_small = store.upload_file(
            store.key("small.srt"), small, content_type="application/x-subrip", cache_control="x"
        )
        up_big = store.upload_file(store.key("ep.mp3"), big, content_type="audio/mpeg", cache_control="x")
    finally:
        proxy.close()
    assert proxy.resets == 3, "every planned reset happened"
    assert up_small.uploaded and up_big.uploaded
    raw = raw_client(s3_server.endpoint_url)
    assert get_sha256(raw, up_big.key) == (big.stat().st_size, file_sha256(big))
    assert get_sha256(raw, up_small.key) == (small.stat().st_size, file_sha256(small))


# ------------------------------------------------------------------------------------------------------ errors


def test_wrong_secret_is_a_clear_error(s3_server: RcloneS3, monkeypatch: Any, tmp_path: Path) -> None:
    wrong = "definitely-not-the-secret-4242"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    store = storage.open_store(storage_settings(s3_server.endpoint_url))
    with pytest.raises(StorageError, match=r"access denied .*AWS_SECRET_ACCESS_KEY") as e:
        store.check()
    assert wrong not in str(e.value) and SECRET_KEY not in str(e.value)
    f = tmp_path / "x.txt"
    f.write_text("x")
    with pytest.raises(StorageError, match="access denied|SignatureDoesNotMatch"):
        store.upload_file(store.key("x.txt"), f, content_type="text/plain", cache_control="x")


def test_missing_credentials(s3_server: RcloneS3, monkeypatch: Any) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="no usable S3 credentials.*AWS_ACCESS_KEY_ID"):
        storage.open_store(storage_settings(s3_server.endpoint_url)).check()


def test_missing_bucket(s3_server: RcloneS3) -> None:
    store = storage.open_store(storage_settings(s3_server.endpoint_url, bucket="no-such-bucket"))
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        store.check()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_endpoint() -> Any:
    """An address whose SYNs go unanswered: a listener with a full accept queue (Linux then drops new SYNs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue; later connection attempts hang in SYN_SENT
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    for c in fillers:
        c.close()
    listener.close()


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_unreachable_endpoint_fails_fast(kind: str, aws_env: dict[str, str], request: Any) -> None:
    # A closed port (refused at once) and a silent one (bounded by the connect timeout, one attempt).
    endpoint = f"http://127.0.0.1:{_closed_port()}" if kind == "refused" else request.getfixturevalue("silent_endpoint")
    store = storage.open_store(storage_settings(endpoint, connect_timeout_s=1.0, max_attempts=5))
    t0 = time.monotonic()
    with pytest.raises(StorageError, match="cannot connect to .*check storage.endpoint_url"):
        store.check()
    assert time.monotonic() - t0 < 4.0


def test_no_bucket_with_an_endpoint() -> None:
    with pytest.raises(StorageError, match="no bucket configured"):
        storage.open_store(StorageSettings(endpoint_url="http://127.0.0.1:9"))


# ------------------------------------------------------------------------------------------------------- local


def test_local_store_same_layout(tmp_path: Path) -> None:
    store = storage.open_store(storage_settings(None, local_dir=tmp_path / "public", public_base_url="https://cdn.x/p"))
    assert isinstance(store, storage.LocalStore)
    store.check()
    f = random_file(tmp_path / "e.mp3", 100_000)
    obj = store.upload_file(store.key("episodes/e1/e.mp3"), f, content_type="audio/mpeg", cache_control="x")
    assert obj.uploaded and obj.verified_by == "read-back"
    assert (tmp_path / "public/podcast/episodes/e1/e.mp3").read_bytes() == f.read_bytes()
    assert obj.url == "https://cdn.x/p/episodes/e1/e.mp3"
    assert store.list_keys("podcast/episodes/") == ["podcast/episodes/e1/e.mp3"]
    assert not store.upload_file(obj.key, f, content_type="audio/mpeg", cache_control="x").uploaded
    with pytest.raises(StorageError, match="invalid key"):
        store.head("podcast/../../etc/passwd")
    assert not any(p.name.endswith(".part") for p in (tmp_path / "public").rglob("*"))


def test_env_overrides_win_and_empty_ones_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from keylime_prod.cli import _State, app

    env = {
        "KEYLIME_S3_ENDPOINT_URL": "https://s3.example.com/",
        "KEYLIME_S3_BUCKET": "from-env",
        "KEYLIME_S3_PREFIX": "",
        "KEYLIME_PUBLIC_BASE_URL": "https://cdn.example.com/podcast/",
        "AWS_SECRET_ACCESS_KEY": "never-read-here",
    }
    # Typer reads the variables (envvar=); config.load_settings lays them on show.toml.
    CliRunner().invoke(app, ["models", "list"], env=env)
    show_toml = Path(__file__).resolve().parent.parent / "configs" / "show.toml"
    base = load_show(show_toml).model_copy(update={"storage": StorageSettings(bucket="from-toml", prefix="toml")})
    s = apply_overrides(base, _State.storage, source=Path("show.toml"), names=storage_sources()).storage
    assert (s.endpoint_url, s.bucket, s.prefix, s.public_base_url) == (
        "https://s3.example.com",
        "from-env",
        "toml",
        "https://cdn.example.com/podcast",
    )
    with pytest.raises(ConfigError, match="KEYLIME_S3_ENDPOINT_URL: .*http"):
        apply_overrides(
            base, {"storage.endpoint_url": "s3.example.com"}, source=Path("show.toml"), names=storage_sources()
        )
    assert "secret" not in " ".join(StorageSettings.model_fields)


def test_secret_keys_are_not_config_fields() -> None:
    # Credentials never come from TOML: an AWS key there is an unknown field, not silently used.
    with pytest.raises(Exception, match="extra"):
        StorageSettings.model_validate({"aws_secret_access_key": "x"})


def test_aws_style_multipart_etag_verifies_without_reading_back(tmp_path: Path) -> None:
    # rclone answers with the whole-file MD5; AWS answers a multipart upload with md5(part md5s)-N. Both count.
    store = storage.open_store(storage_settings(None, local_dir=tmp_path / "public"))
    f = random_file(tmp_path / "ep.mp3", 11 * MIB)
    key = store.key("ep.mp3")
    store.upload_file(key, f, content_type="audio/mpeg", cache_control="x")
    digest = store.digest(f)
    assert digest.multipart and digest.multipart_etag is not None
    aws = storage.RemoteObject(key=key, size=digest.size, etag=f'"{digest.multipart_etag}"')
    assert store.confirm_upload(aws, digest) == "etag-md5"
    # An ETag we cannot interpret (say, SSE-KMS) falls back to reading the object back.
    opaque = storage.RemoteObject(key=key, size=digest.size, etag='"0123456789abcdef0123456789abcdef-2"')
    assert store.confirm_upload(opaque, digest) == "read-back"
    (tmp_path / "public" / key).write_bytes(b"x" * digest.size)
    with pytest.raises(StorageError, match="verification failed: read back"):
        store.confirm_upload(opaque, digest)
