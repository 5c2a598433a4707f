"""Content checks for files that run in-process and come from packages whose publishers did not write them.

The bundled Whisper weights and the denoiser's model are pinned by SHA-256 in the code that loads them
(``transcript/weights.py``, ``audio/speech.py``); docs/security.md lists them. Hashing ~150 MB costs about half a
second, so a verified file is recorded in a *stamp* (a small JSON file beside the cache) under its size, mtime, ctime
and inode: a file whose stat is unchanged is not hashed again. Any write to the file, a copy, or a ``touch`` changes
its ctime, which no user-space call can set back, so a changed file is always hashed again. The stamp saves time; it
is not a signature: whoever can write the cache can write the stamp too (docs/security.md, "What is trusted").
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import fsutil


@dataclass(frozen=True)
class Mismatch:
    """A file whose content is not the pinned one (``actual`` is None when the file is missing or unreadable)."""

    path: Path
    expected: str
    actual: str | None

    def describe(self) -> str:
        if self.actual is None:
            return f"{self.path.name} is missing or unreadable"
        return f"{self.path.name} has SHA-256 {self.actual[:12]}..., not the pinned {self.expected[:12]}..."


#: What this process has verified, as in a stamp: {path: {"stat": [...], "sha256": digest}}.
_VERIFIED: dict[str, dict[str, object]] = {}


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _read_stamp(stamp: Path | None) -> dict[str, dict[str, object]]:
    if stamp is None:
        return {}
    try:
        data = json.loads(stamp.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check(files: Mapping[Path, str], *, stamp: Path | None) -> list[Mismatch]:
    """Compare each file's SHA-256 with the pinned hex digest; return the mismatches (empty: all verified).

    A file recorded in ``stamp`` (or verified earlier by this process) with the same stat and digest is taken as
    verified without reading it; the files hashed here are added to the stamp when all of them match.
    """
    seen = _read_stamp(stamp)
    bad: list[Mismatch] = []
    hashed = False
    for path, expected in files.items():
        try:
            key = _stat_key(path.stat())
        except OSError:
            bad.append(Mismatch(path, expected, None))
            continue
        if any(
            isinstance(entry, dict) and entry.get("stat") == key and entry.get("sha256") == expected
            for entry in (seen.get(str(path)), _VERIFIED.get(str(path)))
        ):
            continue
        try:
            actual = fsutil.sha256_file(path)
        except OSError:
            bad.append(Mismatch(path, expected, None))
            continue
        if actual != expected:
            bad.append(Mismatch(path, expected, actual))
            continue
        seen[str(path)] = _VERIFIED[str(path)] = {"stat": key, "sha256": actual}
        hashed = True
    if stamp is not None and hashed and not bad:
        # A stamp that cannot be written only costs a re-hash next time.
        with contextlib.suppress(OSError):
            fsutil.write_json(stamp, seen)
    return bad
