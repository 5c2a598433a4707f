"""Atomic file output and hashing, shared by every stage.

Outputs are written to a temporary file in the destination folder and moved into place with ``os.replace``
(atomic on POSIX within one file system), so an interrupted run never leaves a half-written file under the final
name (the yt-dlp / ffmpeg-normalize pattern).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import TypeAdapter, ValidationError

if TYPE_CHECKING:
    from .errors import KeylimeError

_CHUNK = 1 << 20
T = TypeVar("T")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success move it onto ``dest``, on error delete it.

    ``suffix`` defaults to ``dest``'s suffix so tools that pick a format from the extension (ffmpeg) still work.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=(dest.suffix if suffix is None else suffix) + ".part", dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; published and served files need the mode a plain open() would give (0644 with the
    # usual umask).
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes(dest: Path, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically and return ``dest``."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``dest`` atomically and return ``dest``."""
    return write_bytes(dest, text.encode("utf-8"))


def write_json(dest: Path, obj: Any) -> Path:
    """Write ``obj`` as indented UTF-8 JSON to ``dest`` atomically and return ``dest``.

    JSON has no NaN or infinity (RFC 8259, section 6): a non-finite number (the loudness of silence, or what a
    float recording holding NaN/Inf measures as) is written as ``null``, so every reader can parse the file.
    """
    return write_text(dest, json.dumps(finite(obj), indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf), however deep in dicts, lists and tuples, made ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a regular file, read in 1 MiB chunks.

    A FIFO or a device is refused (``OSError``) before it is opened: reading one never ends (``/dev/zero``) or
    blocks until a writer comes (a FIFO).
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or folder)", str(path))
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def hold_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block; ``what`` names the thing locked.

    A second process that asks for the same lock fails at once with a :class:`KeylimeError` that says which
    process holds it and since when, instead of both writing the same files. ``flock`` locks die with their process,
    so a run killed by SIGKILL never leaves a stale lock behind.
    """
    import fcntl

    from .errors import KeylimeError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise KeylimeError(
                f"{what} is in use by {holder}", where=path, hint="wait until that run ends, then try again"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete what interrupted writes left in ``folder`` and below: ``.*.part`` files (:func:`atomic_path`) and
    ``.master-*`` work folders. Call it only while holding the folder's lock. Returns the bytes freed."""
    import shutil

    freed = 0
    for p in sorted(Path(folder).rglob(".*")):
        if p.is_file() and p.name.endswith(".part"):
            freed += p.stat().st_size
            p.unlink(missing_ok=True)
        elif p.is_dir() and p.name.startswith(".master-"):
            freed += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            shutil.rmtree(p, ignore_errors=True)
    return freed


#: A temporary folder of ours: ``keylime-<kind>-<pid>-<random>`` in the system temp folder, the pid its owner's.
_OWNED_TEMP = re.compile(r"keylime-[a-z]+-(\d+)-")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists (POSIX kill(2))
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_dead_temporaries(root: Path | None = None) -> int:
    """Delete the temporary folders (:func:`temporary_folder`) whose owner process is gone: a publish, batch task
    or check killed by SIGKILL or a power cut never ran its cleanup. A recycled pid keeps a folder until its new
    owner ends too; that only delays the removal. Returns the bytes freed."""
    import shutil

    freed = 0
    root = Path(root or tempfile.gettempdir())
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0
    for p in entries:
        m = _OWNED_TEMP.match(p.name)
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            if not p.is_dir() or p.is_symlink():
                continue
            freed += sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
        except OSError:
            continue
        shutil.rmtree(p, ignore_errors=True)
    return freed


@contextlib.contextmanager
def temporary_folder(kind: str, name: str = "") -> Iterator[Path]:
    """A private temporary folder ``keylime-<kind>-<pid>-[<name>-]<random>``, removed when the block ends; first
    the folders of dead owners (:func:`remove_dead_temporaries`) are removed, so nothing a killed run left
    outlives the next start. ``kind`` is lowercase letters only (the pid follows it)."""
    assert kind.isalpha() and kind.islower(), kind
    remove_dead_temporaries()
    with tempfile.TemporaryDirectory(prefix=f"keylime-{kind}-{os.getpid()}-{name + '-' if name else ''}") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def reading_report(
    report: Path, error: type[KeylimeError], missing: str, what: str, hint: str
) -> Iterator[dict[str, Any]]:
    """A stage report's JSON (``schema`` dropped) for the block that rebuilds the artefact; every way it can fail,
    the block's included, is one ``error`` naming the file."""
    try:
        d = json.loads(report.read_text("utf-8"))
        d.pop("schema", None)
        yield d
    except FileNotFoundError:
        raise error(missing, where=report, hint=hint) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise error(f"unreadable {what}: {e}", where=report, hint="delete it and re-run") from e


def read_json_as(
    path: Path,
    kind: TypeAdapter[T],
    error: type[KeylimeError],
    *,
    what: str,
    missing: str,
    hint: str,
    prepare: Callable[[Any], Any] | None = None,
) -> T:
    """The JSON file at ``path`` validated as ``kind`` (an adapter of a frozen pydantic dataclass, or of a container
    of them): the one way every artefact file is read back. ``prepare`` adapts the parsed document first (paths
    made absolute, an older file's spelling), and may raise ``KeyError``/``TypeError``/``ValueError`` for a
    document it cannot read.

    Every way it can fail is one ``error`` naming the file: ``missing`` (with ``hint``) when there is no file,
    ``unreadable <what>: <reason>`` for anything else (the first field at fault, by its path in the document).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text("utf-8"))
        if prepare is not None:
            doc = prepare(doc)
        return kind.validate_python(doc)
    except FileNotFoundError:
        raise error(missing, where=path, hint=hint) from None
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "document"
        raise error(f"unreadable {what}: {field}: {first['msg']}", where=path, hint="delete it and re-run") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else repr(e) if isinstance(e, KeyError) else e
        raise error(f"unreadable {what}: {reason}", where=path, hint="delete it and re-run") from e


def dump_json_as(obj: T, kind: TypeAdapter[T]) -> Any:
    """``obj`` as the plain JSON value its file holds (fields in declaration order, tuples as lists, paths as
    strings)."""
    return kind.dump_python(obj, mode="json")


def write_json_as(dest: Path, obj: T, kind: TypeAdapter[T]) -> Path:
    """Write ``obj`` to ``dest`` as :func:`write_json` does: the one way every artefact file is written."""
    return write_json(dest, dump_json_as(obj, kind))
