"""Small, careful edits of a producer's TOML files: one value changed, everything else (comments, order, spacing)
left as it was written by hand.

There is no TOML library among the dependencies that keeps comments (tomllib only reads, tomli_w only writes), so
an edit here is a line edit: find the key's line (or the array it opens, up to its closing bracket), put the new
value there written by ``tomli_w`` (so strings are escaped as TOML wants), and read the whole file back with
``tomllib``. The caller compares what was read with what it meant to write (:func:`checked`): a file laid out in a way
these edits do not understand (an inline table, a dotted key) is never written wrong, only refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import tomli_w

from ..config import tomllib

_HEADER = re.compile(r"^\s*\[")  # a table header, [x] or [[x]]
_KEY = re.compile(r"^\s*(?P<key>[A-Za-z0-9_-]+|\"(?:[^\"\\]|\\.)*\"|'[^']*')\s*=")


class Unedited(Exception):
    """The file's layout is not one these line edits can change safely."""


def value(v: Any) -> str:
    """``v`` written as a TOML value (a string quoted and escaped, an array of strings on one line)."""
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    line = tomli_w.dumps({"v": v}).strip()
    return line.split("=", 1)[1].strip()


def key(k: str) -> str:
    """``k`` written as a TOML key: bare when it can be, else quoted."""
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else value(k)


def _key_of(line: str) -> str | None:
    m = _KEY.match(line)
    if not m:
        return None
    raw = m.group("key")
    if raw[0] in "\"'":
        try:
            return str(next(iter(tomllib.loads(f"{raw} = 0"))))
        except tomllib.TOMLDecodeError:
            return None
    return raw


def _value_end(lines: list[str], i: int) -> tuple[int, str]:
    """The index of the last line of the value that starts on line ``i`` (an array may run over several lines), and
    the comment that ends that line (``""`` for none)."""
    j = i
    text = lines[i].split("=", 1)[1]
    depth, quote = 0, ""
    while True:
        k, comment = 0, ""
        while k < len(text):
            ch = text[k]
            if quote:
                if ch == "\\" and quote == '"':
                    k += 1
                elif ch == quote:
                    quote = ""
            elif ch in "\"'":
                if text.startswith(ch * 3, k):
                    raise Unedited("a multi-line string")
                quote = ch
            elif ch == "#":
                comment = text[k:].rstrip("\r\n")
                break
            elif ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
            k += 1
        if depth <= 0:
            return j, comment
        j += 1
        if j >= len(lines):
            raise Unedited("an array that is never closed")
        text = lines[j]


def table_span(lines: list[str], header: Callable[[str], bool], nth: int = 0) -> tuple[int, int]:
    """Lines ``[start, end)`` of the body of the ``nth`` table whose header line satisfies ``header``; the top-level
    keys (before any header) when ``header`` matches nothing and ``nth`` is -1."""
    if nth == -1:
        end = next((i for i, line in enumerate(lines) if _HEADER.match(line)), len(lines))
        return 0, end
    seen = -1
    for i, line in enumerate(lines):
        if _HEADER.match(line) and header(line.split("#", 1)[0].strip()):
            seen += 1
            if seen == nth:
                end = next((j for j in range(i + 1, len(lines)) if _HEADER.match(lines[j])), len(lines))
                return i + 1, end
    raise Unedited("no such table")


def set_key(text: str, span: tuple[int, int] | None, k: str, v: Any, *, header: str | None = None) -> str:
    """``text`` with key ``k`` of the table ``span`` (lines, from :func:`table_span`) set to ``v``: its value
    replaced where it is (a comment after it kept), else a new line after the table's last key. ``span`` None: the
    table is not there yet; it is added at the end under ``header``. ``v`` None removes the key."""
    lines = text.splitlines(keepends=True)
    if span is None:
        if v is None:
            return text
        sep = "" if not text or text.endswith("\n") else "\n"
        gap = "\n" if text.strip() else ""
        head = f"{header}\n" if header else ""
        return f"{text}{sep}{gap}{head}{key(k)} = {value(v)}\n"
    start, end = span
    for i in range(start, end):
        if _key_of(lines[i]) == k:
            last, comment = _value_end(lines, i)
            if v is None:
                del lines[i : last + 1]
                return "".join(lines)
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            lines[i : last + 1] = [f"{indent}{key(k)} = {value(v)}{'  ' + comment if comment else ''}\n"]
            return "".join(lines)
    if v is None:
        return text
    # After the last line that belongs to a key of this table (not after the blank lines and comments that lead
    # into the next table).
    # With no key yet: after the comments that open the table (a file's header), before anything else.
    at = next((i for i in range(start, end) if not lines[i].lstrip().startswith("#")), end)
    i = start
    while i < end:
        if _key_of(lines[i]) is not None:
            i = _value_end(lines, i)[0] + 1
            at = i
        else:
            i += 1
    new = f"{key(k)} = {value(v)}\n"
    if at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    lines.insert(at, new)
    return "".join(lines)


def set_in_inline_table(text: str, array: str, nth: int, k: str, v: Any) -> str:
    """``text`` with key ``k`` of the ``nth`` inline table of the top-level array ``array`` set to ``v``, where each
    table sits on a line of its own (``chapters = [ { title = "A", start = 0.0 }, ... ]``, as tomli_w writes it)."""
    lines = text.splitlines(keepends=True)
    start, end = table_span(lines, lambda _h: False, -1)
    first = next((i for i in range(start, end) if _key_of(lines[i]) == array), None)
    if first is None:
        raise Unedited(f"no {array} array")
    last, _ = _value_end(lines, first)
    rows = [i for i in range(first, last + 1) if "{" in lines[i].split("=", 1)[-1 if i == first else 0]]
    if nth >= len(rows):
        raise Unedited(f"no inline table {nth + 1} in {array}")
    i = rows[nth]
    pattern = re.compile(rf"(\b{re.escape(k)}\s*=\s*)(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[0-9][0-9_:.eE+-]*)")
    new, count = pattern.subn(lambda m: m.group(1) + value(v), lines[i], count=1)
    if count != 1:
        raise Unedited(f"no {k} in inline table {nth + 1} of {array}")
    lines[i] = new
    return "".join(lines)


def append(text: str, block: str) -> str:
    """``text`` with ``block`` (whole tables) added at its end, a blank line between."""
    sep = "" if not text or text.endswith("\n") else "\n"
    gap = "\n" if text.strip() else ""
    return f"{text}{sep}{gap}{block.rstrip()}\n"


def checked(new_text: str, want: dict[str, Any], what: str) -> str:
    """``new_text`` if it reads back as ``want``; :class:`Unedited` otherwise (the edit did not do what it meant)."""
    try:
        got = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as e:
        raise Unedited(f"{what}: the edit is not valid TOML ({e})") from e
    if got != want:
        raise Unedited(f"{what}: the edit reads back differently")
    return new_text
