"""Compare two builds of the same episodes file by file, timing fields aside.

A refactoring that must not change behaviour is proven by building the committed episodes before and after and
comparing every published and build file: the MP3s, transcripts, notes, chapters and feed byte for byte; JSON files
after dropping the keys that record when or how fast something ran; XML after blanking ``lastBuildDate``.

    python scripts/compare_builds.py BEFORE_DIR AFTER_DIR   # e.g. two copies of build/ or public/

Exit status 0 when everything agrees; otherwise one line per difference.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

#: Keys that record a moment or a duration of the run, not what it made.
TIMING_KEYS = re.compile(
    r"(^|_)(seconds|elapsed|finished|published|updated|timings|load_seconds)($|_)|^(first_published)$"
)
#: Files that record only that a run happened (lock files, stage state).
SKIP = {".lock", "state.json"}


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not TIMING_KEYS.search(k)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def same(a: Path, b: Path) -> bool:
    if a.read_bytes() == b.read_bytes():
        return True
    if a.suffix == ".json":
        try:
            return _strip(json.loads(a.read_text("utf-8"))) == _strip(json.loads(b.read_text("utf-8")))
        except ValueError:
            return False
    if a.suffix == ".xml":
        blank = re.compile(rb"<lastBuildDate>[^<]*</lastBuildDate>")
        return blank.sub(b"", a.read_bytes()) == blank.sub(b"", b.read_bytes())
    return False


def compare(before: Path, after: Path) -> list[str]:
    """One line per file that is missing on one side or differs beyond timing fields."""
    names = {p.relative_to(before) for p in before.rglob("*") if p.is_file()}
    names |= {p.relative_to(after) for p in after.rglob("*") if p.is_file()}
    problems = []
    for rel in sorted(names):
        if rel.name in SKIP:
            continue
        a, b = before / rel, after / rel
        if not a.is_file() or not b.is_file():
            problems.append(f"{rel}: only in {'after' if b.is_file() else 'before'}")
        elif not same(a, b):
            problems.append(f"{rel}: differs")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: compare_builds.py BEFORE_DIR AFTER_DIR", file=sys.stderr)
        return 2
    problems = compare(Path(argv[0]), Path(argv[1]))
    for line in problems:
        print(line)
    n = sum(1 for p in Path(argv[1]).rglob("*") if p.is_file())
    print(f"{n} files compared: {'identical (timing fields aside)' if not problems else f'{len(problems)} differ'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
