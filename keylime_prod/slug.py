"""Slugs: free text (a title, a model label, a file stem) made safe as one file name or object-key segment."""

from __future__ import annotations

import re


def slugify(text: str, *, default: str, keep: str = "A-Za-z0-9._-", sep: str = "-", max_len: int | None = None) -> str:
    """``text`` with every run of characters outside ``keep`` (a regex character-class body) replaced by ``sep``,
    no ``sep`` or ``.`` at either end (no hidden files, no ``..``), at most ``max_len`` characters; ``default`` when
    nothing is left."""
    s = re.sub(f"[^{keep}]+", sep, text).strip(sep + ".")
    if max_len is not None:
        s = s[:max_len].rstrip(sep + ".")
    return s or default
