"""``produce verify``: the release check a podcast app makes, run against what is live.

Apps never see our build folder: they fetch the feed, then each enclosure, transcript, chapters file and artwork it
names, over HTTP(S). This module does the same and reports every problem on one line (docs/platform.md lists the
rules; docs/release.md what each check means):

- the feed answers 200, parses (feedparser) and carries Apple's required tags, channel and item;
- every enclosure answers HEAD with 200, ``Content-Length`` equal to the enclosure ``length`` and the enclosure
  ``type``, and a byte-range GET with **206**, the right ``Content-Range`` and length (Apple requires byte ranges;
  ``rclone serve s3`` answers 200, which is reported);
- transcripts and chapters answer with the media type the feed names (Podcasting 2.0);
- artwork is JPEG/PNG, RGB, square, 1400-3000 px (Apple);
- descriptions are at most 4000 bytes; guids are unique and the same as the last run's (a small state file);
- the MP3s asked for (``--audio``) are downloaded once: integrated loudness and true peak measured with ffmpeg's
  ``ebur128`` within the target, and the ID3 tag readable, its ``TGID`` equal to the item ``<guid>``.

Requests run in parallel (HEADs and 1 KiB ranged GETs; nothing is downloaded whole except artwork, chapters and the
MP3s an audio check needs). Offline, :class:`LocalFetcher` answers from the ``public/`` folder instead, so the
feed's content is checked but the hosting checks only see the files.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

from .. import ffmpeg, fsutil, http
from ..config import Settings
from ..errors import HttpError, KeylimeError, VerifyError
from ..http import Response
from ..publish.feed import ITUNES_NS, MAX_DESCRIPTION, PODCAST_NS, SPOTIFY_MIN_STAMPS

log = logging.getLogger(__name__)

Severity = Literal["error", "warning"]
#: Bytes asked for by the ranged GET (Apple: hosts must answer byte ranges; players ask for the first bytes first).
RANGE_BYTES = 1024
STATE_SCHEMA = "keylime-prod/verify-state/1"
_NS = {"itunes": ITUNES_NS, "podcast": PODCAST_NS}
_STAMP = re.compile(r"\((\d\d):(\d\d):(\d\d)\) ")


# --------------------------------------------------------------------------------------------------- fetching


class Fetcher(Protocol):
    """How verify reaches a URL: over HTTP(S), or from the local publish folder."""

    def head(self, url: str) -> Response:
        """A HEAD request."""
        ...

    def get(self, url: str, *, first: int | None = None) -> Response:
        """A GET; with ``first``, a ranged GET for bytes ``0..first-1`` that never reads more than ``first`` bytes."""
        ...

    def save(self, url: str, dest: Path, *, max_bytes: int | None) -> Response:
        """A GET whose body goes to ``dest`` (never held in memory), at most ``max_bytes`` of it; the body in the
        answer is empty."""
        ...


class HttpFetcher:
    """The live host, through :class:`keylime_prod.http.Client` with a pool as wide as the checks run in parallel."""

    def __init__(self, *, workers: int = 16, timeout: float = 20.0, allow_private: bool = False) -> None:
        self.client = http.Client(
            user_agent="keylime-prod-verify/1", timeout=timeout, workers=workers, allow_private=allow_private
        )

    def head(self, url: str) -> Response:
        """HEAD ``url``."""
        try:
            return self.client.head(url)
        except HttpError as e:
            raise VerifyError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {e.message}", hint=_HOST_HINT) from e

    def get(self, url: str, *, first: int | None = None) -> Response:
        """GET ``url`` (only its first bytes with ``first``)."""
        try:
            return self.client.get(url, first=first)
        except HttpError as e:
            raise VerifyError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {e.message}", hint=_HOST_HINT) from e

    def save(self, url: str, dest: Path, *, max_bytes: int | None) -> Response:
        """GET ``url`` into ``dest`` (at most ``max_bytes``, and never more than :data:`keylime_prod.http.MEDIA`
        allows)."""
        try:
            with self.client.stream(url, limits=http.MEDIA.capped(max_bytes)) as r, open(dest, "wb") as f:
                if r.status == 200:
                    for chunk in r.chunks(1 << 16):
                        f.write(chunk)
                return Response(r.status, r.headers, b"", r.reason)
        except HttpError as e:
            raise VerifyError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {e.message}", hint=_HOST_HINT) from e


_HOST_HINT = (
    "check that the host is online and show.feed_url / storage.public_base_url (KEYLIME_PUBLIC_BASE_URL) are right"
)


class MappedFetcher:
    """A fetcher that sends the public URLs to another base: the local folder served on 127.0.0.1."""

    def __init__(self, inner: Fetcher, public_base: str, actual_base: str) -> None:
        self.inner = inner
        self.public_base = public_base.rstrip("/")
        self.actual_base = actual_base.rstrip("/")

    def _map(self, url: str) -> str:
        return self.actual_base + url[len(self.public_base) :] if url.startswith(self.public_base + "/") else url

    def head(self, url: str) -> Response:
        """HEAD the mapped URL."""
        return self.inner.head(self._map(url))

    def get(self, url: str, *, first: int | None = None) -> Response:
        """GET the mapped URL."""
        return self.inner.get(self._map(url), first=first)

    def save(self, url: str, dest: Path, *, max_bytes: int | None) -> Response:
        """GET the mapped URL into ``dest``."""
        return self.inner.save(self._map(url), dest, max_bytes=max_bytes)


class LocalFetcher:
    """Answers for public URLs from the folder they were published from (``produce verify --offline``).

    ``base_url`` is the public URL of ``root``. Headers are what a well-configured host would send for the files
    (types by extension, as :mod:`keylime_prod.publish.storage` uploads them): offline, the hosting checks prove only
    that the files exist with the right sizes.
    """

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = Path(root).resolve()
        self.base_url = base_url.rstrip("/")

    def _path(self, url: str) -> Path | None:
        if url.startswith(self.base_url + "/"):
            rel = urllib.parse.unquote(url[len(self.base_url) + 1 :])
        elif url.startswith("file://"):
            p = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).resolve()
            return p if p.is_relative_to(self.root) else None
        else:
            return None
        p = (self.root / rel).resolve()
        return p if p.is_relative_to(self.root) else None

    def _headers(self, p: Path) -> dict[str, str]:
        from .localhost import served_type

        return {"content-type": served_type(p), "content-length": str(p.stat().st_size), "accept-ranges": "bytes"}

    def head(self, url: str) -> Response:
        """The file's size and type, or 404."""
        p = self._path(url)
        if p is None or not p.is_file():
            return Response(404, {})
        return Response(200, self._headers(p))

    def get(self, url: str, *, first: int | None = None) -> Response:
        """The file (or its first bytes, as a 206 would give them), or 404."""
        p = self._path(url)
        if p is None or not p.is_file():
            return Response(404, {})
        h = self._headers(p)
        if first is None:
            return Response(200, h, p.read_bytes())
        with open(p, "rb") as f:
            data = f.read(first)
        size = int(h["content-length"])
        h.update({"content-length": str(len(data)), "content-range": f"bytes 0-{len(data) - 1}/{size}"})
        return Response(206, h, data)

    def save(self, url: str, dest: Path, *, max_bytes: int | None) -> Response:
        """The file copied to ``dest``, or 404 (our own folder: no size to cap)."""
        p = self._path(url)
        if p is None or not p.is_file():
            return Response(404, {})
        shutil.copyfile(p, dest)
        return Response(200, self._headers(p))


# ----------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Problem:
    """One thing an app would stumble on. ``where``: the item (its guid or title) or ``feed``."""

    severity: Severity
    where: str
    check: str
    message: str
    url: str | None = None

    def line(self) -> str:
        """The one line ``produce verify`` prints."""
        return f"{self.severity}: {self.where}: {self.check}: {self.message}" + (f" ({self.url})" if self.url else "")


@dataclass(frozen=True)
class Verified:
    """The result of :func:`check_live_feed`."""

    feed_url: str
    items: int
    checked: tuple[str, ...]
    audio_checked: tuple[str, ...]
    problems: tuple[Problem, ...]
    requests: int
    seconds: float
    offline: bool = False
    state: Path | None = None
    #: How the files were reached, when not over the public URLs: the local folder served on 127.0.0.1, or read.
    source: str | None = None

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems that fail the check."""
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    def describe(self) -> str:
        """One closing line for people (the problems have their own lines)."""
        how = "offline, local folder" if self.offline else f"{self.requests} requests"
        if self.source:
            how = f"{self.source}; {how}"
        return (
            f"{self.feed_url}: {len(self.checked)} of {self.items} item(s) checked, {len(self.audio_checked)} MP3(s) "
            f"measured; {len(self.errors)} error(s), {len(self.problems) - len(self.errors)} warning(s) "
            f"({how}, {self.seconds:.1f} s)"
        )

    def to_json(self) -> dict[str, Any]:
        """``produce verify --json``."""
        return {
            "schema": "keylime-prod/verify/1",
            "feed_url": self.feed_url,
            "offline": self.offline,
            "source": self.source,
            "ok": self.ok,
            "items": self.items,
            "checked": list(self.checked),
            "audio_checked": list(self.audio_checked),
            "errors": len(self.errors),
            "warnings": len(self.problems) - len(self.errors),
            "problems": [vars(p) for p in self.problems],
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class AudioLimits:
    """The loudness an MP3 must have: Apple's -16 LUFS +-1 LU and true peak at or under -1 dBTP by default."""

    target_lufs: float = -16.0
    tolerance_lu: float = 1.0
    true_peak_dbtp: float = -1.0


# ------------------------------------------------------------------------------------------------------ checks


@dataclass
class _Ctx:
    """What the checks share across threads: the fetcher and the problems found (appends under a lock)."""

    fetch: Fetcher
    problems: list[Problem] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, severity: Severity, where: str, check: str, message: str, url: str | None = None) -> None:
        with self.lock:
            self.problems.append(Problem(severity, where, check, message, url))

    def call(self, where: str, check: str, url: str, fn: Callable[[], Response]) -> Response | None:
        with self.lock:
            self.requests += 1
        try:
            return fn()
        except KeylimeError as e:
            self.add("error", where, check, e.message + (f" ({e.hint})" if e.hint else ""), url)
            return None

    def fetch_ok(
        self, where: str, check: str, url: str, fn: Callable[[], Response], *, media_type: str | None = None
    ) -> Response | None:
        """``fn()``'s answer if it is a 200 (its media type checked against ``media_type``); else one problem."""
        r = self.call(where, check, url, fn)
        if r is None:
            return None
        if r.status != 200:
            self.add("error", where, check, f"answered {r.status}, not 200", url)
            return None
        if media_type is not None and r.media_type() != media_type.lower():
            self.add("error", where, check, f"served as {r.media_type() or 'nothing'}, the feed says {media_type}", url)
        return r


@dataclass(frozen=True)
class _Item:
    where: str
    guid: str | None
    title: str
    enclosure: dict[str, str] | None
    transcripts: tuple[dict[str, str], ...]
    chapters: dict[str, str] | None
    image: str | None
    description: str
    el: Any


def _text(el: Any, path: str) -> str | None:
    found = el.find(path, _NS)
    return (found.text or "").strip() if found is not None else None


def _parse_items(channel: Any) -> list[_Item]:
    out = []
    for i, it in enumerate(channel.iterfind("item")):
        guid = _text(it, "guid")
        title = _text(it, "title") or ""
        enc = it.find("enclosure")
        chap = it.find("podcast:chapters", _NS)
        img = it.find("itunes:image", _NS)
        out.append(
            _Item(
                where=guid or title or f"item {i + 1}",
                guid=guid,
                title=title,
                enclosure=dict(enc.attrib) if enc is not None else None,
                transcripts=tuple(dict(t.attrib) for t in it.iterfind("podcast:transcript", _NS)),
                chapters=dict(chap.attrib) if chap is not None else None,
                image=img.get("href") if img is not None else None,
                description=_text(it, "description") or "",
                el=it,
            )
        )
    return out


def _check_channel(ctx: _Ctx, channel: Any, url: str) -> str | None:
    """Apple's required channel tags; returns the channel artwork URL."""
    w = "feed"
    for tag in ("title", "description", "language"):
        if not _text(channel, tag):
            ctx.add("error", w, "required tag", f"<{tag}> is missing or empty (Apple requires it)", url)
    desc = _text(channel, "description") or ""
    if len(desc.encode("utf-8")) > MAX_DESCRIPTION:
        ctx.add("error", w, "description", f"{len(desc.encode())} bytes, Apple allows {MAX_DESCRIPTION}", url)
    image = channel.find("itunes:image", _NS)
    if image is None or not image.get("href"):
        ctx.add("error", w, "required tag", "<itunes:image href> is missing (Apple requires it)", url)
    if channel.find("itunes:category", _NS) is None:
        ctx.add("error", w, "required tag", "<itunes:category> is missing (Apple requires it)", url)
    if _text(channel, "itunes:explicit") not in ("true", "false", "yes", "no", "clean"):
        ctx.add("error", w, "required tag", "<itunes:explicit> is missing or not true/false (Apple requires it)", url)
    locked = channel.find("podcast:locked", _NS)
    if locked is None or not locked.get("owner"):
        ctx.add("warning", w, "podcast:locked", "missing, or without owner (validators expect it)", url)
    return image.get("href") if image is not None else None


def _check_item_tags(ctx: _Ctx, item: _Item, url: str) -> None:
    w = item.where
    if not item.title:
        ctx.add("error", w, "required tag", "<title> is missing or empty (Apple requires it)", url)
    if not item.guid:
        ctx.add("error", w, "guid", "no <guid>: apps cannot tell this episode from a new one", url)
    enc = item.enclosure
    if enc is None or not enc.get("url") or not enc.get("type") or not enc.get("length", "").isdigit():
        ctx.add("error", w, "required tag", "<enclosure url length type> is missing or incomplete", url)
    if len(item.description.encode("utf-8")) > MAX_DESCRIPTION:
        ctx.add("error", w, "description", f"{len(item.description.encode())} bytes, Apple allows {MAX_DESCRIPTION}")
    if _text(item.el, "itunes:title") is None:
        ctx.add("warning", w, "itunes:title", "item has no <itunes:title> (validators expect it)")
    if _text(item.el, "itunes:explicit") is None:
        ctx.add("warning", w, "itunes:explicit", "item has no <itunes:explicit> (validators expect it)")
    stamps = _STAMP.findall(item.description)
    if stamps and (len(stamps) < SPOTIFY_MIN_STAMPS or stamps[0] != ("00", "00", "00")):
        ctx.add(
            "warning", w, "chapters",
            f"description has {len(stamps)} timestamps starting at {':'.join(stamps[0])}: Spotify needs at least "
            f"{SPOTIFY_MIN_STAMPS}, the first at 00:00:00",
        )  # fmt: skip


def _check_enclosure(ctx: _Ctx, item: _Item) -> None:
    enc = item.enclosure
    if not enc or not enc.get("url"):
        return
    w, url = item.where, enc["url"]
    length = int(enc["length"]) if enc.get("length", "").isdigit() else None
    head = ctx.fetch_ok(w, "enclosure HEAD", url, lambda: ctx.fetch.head(url), media_type=enc.get("type", ""))
    if head is None:
        return
    size = head.headers.get("content-length")
    if length is not None and size != str(length):
        ctx.add("error", w, "enclosure length", f"Content-Length {size} but the feed says length={length}", url)
    r = ctx.call(w, "byte range", url, lambda: ctx.fetch.get(url, first=RANGE_BYTES))
    if r is None:
        return
    want = min(RANGE_BYTES, length) if length else RANGE_BYTES
    if r.status != 206:
        ctx.add("error", w, "byte range", f"a GET for bytes=0-{RANGE_BYTES - 1} answered {r.status}, not 206 "
                "(Apple requires byte-range support)", url)  # fmt: skip
        return
    total = str(length) if length is not None else r"\d+"
    if not re.fullmatch(rf"bytes 0-{want - 1}/{total}", r.headers.get("content-range", "")):
        ctx.add("error", w, "byte range", f"Content-Range {r.headers.get('content-range')!r}, want "
                f"'bytes 0-{want - 1}/{length}'", url)  # fmt: skip
    if len(r.body) != want:
        ctx.add("error", w, "byte range", f"{len(r.body)} bytes in the 206 body, want {want}", url)
    if r.media_type() != enc.get("type", "").lower():
        ctx.add("error", w, "byte range", f"206 served as {r.media_type() or 'nothing'}", url)
    if enc.get("type") == "audio/mpeg" and r.body[:3] != b"ID3":
        ctx.add("warning", w, "ID3", "the MP3 does not start with an ID3 tag: players show no chapters or cover", url)


def _check_sidecars(ctx: _Ctx, item: _Item) -> None:
    w = item.where
    for t in item.transcripts:
        url = t.get("url", "")
        r = ctx.fetch_ok(w, "transcript", url, partial(ctx.fetch.head, url), media_type=t.get("type", ""))
        cors = r is None or "access-control-allow-origin" in r.headers or isinstance(ctx.fetch, LocalFetcher)
        if not cors:
            ctx.add("warning", w, "transcript", "no Access-Control-Allow-Origin: web players cannot load it", url)
    if item.chapters:
        url = item.chapters.get("url", "")
        r = ctx.fetch_ok(w, "chapters", url, lambda: ctx.fetch.get(url), media_type=item.chapters.get("type", ""))
        if r is None:
            return
        try:
            doc = json.loads(r.body)
            ok = isinstance(doc, dict) and isinstance(doc.get("chapters"), list) and "version" in doc
        except ValueError:
            ok = False
        if not ok:
            ctx.add("error", w, "chapters", 'not a Podcasting 2.0 chapters file {"version", "chapters": [...]}', url)


def _check_artwork(ctx: _Ctx, where: str, url: str) -> None:
    from PIL import Image, UnidentifiedImageError

    from ..tags.artwork import FORMATS, artwork_problems

    r = ctx.fetch_ok(where, "artwork", url, lambda: ctx.fetch.get(url))
    if r is None:
        return
    try:
        with Image.open(io.BytesIO(r.body)) as im:
            fmt, mode, (w, h), transparency = im.format or "unknown", im.mode, im.size, "transparency" in im.info
    except (UnidentifiedImageError, OSError):
        ctx.add("error", where, "artwork", "not an image Pillow can read", url)
        return
    name = urllib.parse.unquote(urllib.parse.urlparse(url).path).rsplit("/", 1)[-1]
    bad = [what for what, _ in artwork_problems(fmt, mode, w, h, transparency=transparency, name=name)]
    if r.media_type() not in [mime for mime, _ in FORMATS.values()]:
        bad.append(f"served as {r.media_type() or 'nothing'}")
    for b in bad:
        ctx.add("error", where, "artwork", f"{b} (Apple's artwork rules)", url)


def _check_audio(ctx: _Ctx, item: _Item, limits: AudioLimits, scratch: Path, feed_url: str) -> None:
    """Download the MP3 once: loudness and true peak with ffmpeg's ebur128, the ID3 tag with mutagen."""
    from ..tags.id3 import read_tags

    assert item.enclosure is not None
    w, url = item.where, item.enclosure["url"]
    mp3 = scratch / f"{abs(hash(url))}.mp3"
    # Read to a file, never into memory, and no further than the enclosure's stated length: the peer chooses the size.
    length = item.enclosure.get("length", "")
    stated = int(length) if length.isdigit() and int(length) > 0 else None
    r = ctx.fetch_ok(w, "audio", url, lambda: ctx.fetch.save(url, mp3, max_bytes=stated))
    if r is None:
        return
    try:
        m = ffmpeg.measure_ebur128(mp3)
    except KeylimeError as e:
        ctx.add("error", w, "loudness", f"ffmpeg cannot measure it: {e.message}", url)
        return
    if abs(m.integrated_lufs - limits.target_lufs) > limits.tolerance_lu:
        ctx.add("error", w, "loudness", f"{m.integrated_lufs:.1f} LUFS, want {limits.target_lufs:g} "
                f"+-{limits.tolerance_lu:g} LU (measured with ffmpeg ebur128 on the MP3)", url)  # fmt: skip
    if m.true_peak_dbtp is None or m.true_peak_dbtp > limits.true_peak_dbtp:
        ctx.add("error", w, "true peak", f"{m.true_peak_dbtp} dBTP, over {limits.true_peak_dbtp:g} dBTP", url)
    try:
        tags = read_tags(mp3)
    except KeylimeError as e:
        ctx.add("error", w, "ID3", f"unreadable: {e.message}", url)
        return
    if not tags.frames.get("TIT2"):
        ctx.add("error", w, "ID3", "no title (TIT2)", url)
    tgid = next(iter(tags.frames.get("TGID", ())), None)
    if item.guid and tgid is not None and tgid != item.guid:
        ctx.add("error", w, "ID3", f"TGID {tgid!r} is not the feed's <guid> {item.guid!r}: apps see two episodes", url)
    wfed = next(iter(tags.frames.get("WFED", ())), None)
    if wfed is not None and wfed != feed_url:
        ctx.add("warning", w, "ID3", f"WFED {wfed!r} is not the feed URL {feed_url!r}", url)


# -------------------------------------------------------------------------------------------------------- state


def _state_key(item: _Item) -> str:
    """An item's identity that does not depend on its guid: the episode folder in the enclosure URL, else the title."""
    url = (item.enclosure or {}).get("url", "")
    m = re.search(r"/episodes/([^/]+)/[^/]+$", urllib.parse.urlparse(url).path)
    return f"episode:{m.group(1)}" if m else f"title:{item.title}"


def _check_guids(ctx: _Ctx, items: Sequence[_Item], state: Path | None, feed_url: str) -> None:
    seen: dict[str, str] = {}
    for it in items:
        if it.guid and it.guid in seen:
            ctx.add("error", it.where, "guid", f"the same guid as {seen[it.guid]!r}: apps keep only one of them")
        elif it.guid:
            seen[it.guid] = it.title
    if state is None:
        return
    try:
        old = json.loads(state.read_text("utf-8")) if state.is_file() else {}
    except (OSError, ValueError) as e:
        raise VerifyError(f"unreadable state file: {e}", where=state, hint="delete it to start over") from e
    recorded: dict[str, str] = dict(old.get("feeds", {}).get(feed_url, {}))
    for it in items:
        if not it.guid:
            continue
        key = _state_key(it)
        before = recorded.get(key)
        if before is None:
            recorded[key] = it.guid  # first seen: remembered
        elif before != it.guid:
            # Kept as recorded: a changed guid stays an error until it is changed back (or the state file reset).
            ctx.add("error", it.where, "guid", f"was {before!r} on the last run ({key}): every subscriber gets the "
                    "episode again", state.as_posix())  # fmt: skip
    feeds = dict(old.get("feeds", {}))
    feeds[feed_url] = dict(sorted(recorded.items()))
    fsutil.write_json(state, {"schema": STATE_SCHEMA, "feeds": feeds})


# -------------------------------------------------------------------------------------------------------- entry


def _select(items: Sequence[_Item], wanted: Iterable[str] | None) -> list[_Item]:
    if wanted is None:
        return list(items)
    wanted = set(wanted)
    return [it for it in items if (it.guid in wanted) or (_state_key(it).removeprefix("episode:") in wanted)]


def check_live_feed(
    feed_url: str,
    *,
    fetch: Fetcher,
    episodes: Iterable[str] | None = None,
    audio: int | Literal["all"] = 1,
    limits: AudioLimits = AudioLimits(),
    state: Path | None = None,
    workers: int = 16,
) -> Verified:
    """Check the feed at ``feed_url`` and what it points to, as an app would.

    ``episodes``: guids or episode ids (the ``episodes/<id>/`` folder of the enclosure) to check; ``None`` for every
    item. ``audio``: how many of the checked items, newest first, get the full-download checks (loudness, true
    peak, ID3), or ``"all"``. ``state``: the JSON file that remembers each episode's guid between runs. Problems are
    results; :class:`VerifyError` only when nothing can be checked (the state file is unreadable).
    """
    from lxml import etree

    t0 = time.perf_counter()
    ctx = _Ctx(fetch)
    offline = isinstance(fetch, LocalFetcher)
    r = ctx.call("feed", "feed", feed_url, lambda: fetch.get(feed_url))
    if r is None or r.status != 200:
        if r is not None:
            ctx.add("error", "feed", "feed", f"answered {r.status}, not 200", feed_url)
        return Verified(feed_url, 0, (), (), tuple(ctx.problems), ctx.requests, time.perf_counter() - t0, offline)
    import feedparser

    parsed = feedparser.parse(r.body)
    if parsed.bozo:
        ctx.add("error", "feed", "feed", f"feedparser: {parsed.get('bozo_exception')}", feed_url)
    if r.media_type() not in ("application/rss+xml", "application/xml", "text/xml"):
        ctx.add(
            "warning", "feed", "feed", f"served as {r.media_type() or 'nothing'}, not application/rss+xml", feed_url
        )
    try:
        root = etree.fromstring(r.body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as e:
        ctx.add("error", "feed", "feed", f"not XML: {e}", feed_url)
        return Verified(feed_url, 0, (), (), tuple(ctx.problems), ctx.requests, time.perf_counter() - t0, offline)
    channel = root.find("channel")
    if channel is None:
        ctx.add("error", "feed", "feed", "no <channel>: not an RSS 2.0 feed", feed_url)
        return Verified(feed_url, 0, (), (), tuple(ctx.problems), ctx.requests, time.perf_counter() - t0, offline)
    art = _check_channel(ctx, channel, feed_url)
    items = _parse_items(channel)
    _check_guids(ctx, items, state, feed_url)
    chosen = _select(items, episodes)
    if episodes is not None:
        missing = set(episodes) - {it.guid for it in chosen} - {_state_key(it)[8:] for it in chosen}
        for m in sorted(missing):
            ctx.add("error", m, "feed", "not in the feed (not published, or not due yet)", feed_url)
    for it in chosen:
        _check_item_tags(ctx, it, feed_url)
    images = sorted({u for u in [art, *(it.image for it in chosen)] if u})
    # Items are in the feed's order, newest first (we build it so; Apple sorts by pubDate anyway).
    n_audio = len(chosen) if audio == "all" else max(0, int(audio))
    with_audio = [it for it in chosen if it.enclosure and it.enclosure.get("url")][:n_audio]
    with ThreadPoolExecutor(max_workers=workers) as pool, fsutil.temporary_folder("verify") as tmp:
        jobs = [pool.submit(_check_enclosure, ctx, it) for it in chosen]
        jobs += [pool.submit(_check_sidecars, ctx, it) for it in chosen]
        jobs += [pool.submit(_check_artwork, ctx, "feed" if u == art else "artwork", u) for u in images]
        jobs += [pool.submit(_check_audio, ctx, it, limits, Path(tmp), feed_url) for it in with_audio]
        for j in jobs:
            j.result()
    order = {it.where: i for i, it in enumerate(items)}
    problems = sorted(ctx.problems, key=lambda p: (p.where != "feed", order.get(p.where, len(order)), p.check))
    return Verified(
        feed_url=feed_url,
        items=len(items),
        checked=tuple(it.where for it in chosen),
        audio_checked=tuple(it.where for it in with_audio),
        problems=tuple(problems),
        requests=ctx.requests,
        seconds=time.perf_counter() - t0,
        offline=offline,
        state=state,
    )


def check_live_show(
    settings: Settings,
    episodes: Sequence[str] | None = None,
    *,
    offline: bool = False,
    feed_url: str | None = None,
    state: Path | None = None,
    audio: int | Literal["all"] = 1,
    allow_private: bool = False,
) -> Verified:
    """``produce verify``: check the show's live feed (``show.feed_url``, or ``feed_url``) and the items of
    ``episodes`` (ids; ``None``: every item) as an app would, over HTTP(S).

    A show that publishes into the local folder (no bucket configured) is checked there: the folder is served on
    127.0.0.1 (byte ranges, types and CORS as a host serves them) and the public URLs are mapped onto it; with
    ``offline`` its files are read directly (the hosting checks then see only the files). ``state`` defaults to
    ``<build root>/verify-state.json``. ``allow_private`` lets the live feed and its files be on loopback and private
    addresses (keylime_prod.http); the local folder's own server on 127.0.0.1 is always reached.
    """
    from ..config import load_episode
    from ..publish.storage import LocalStore, open_store
    from .localhost import serve_folder

    show = settings.show
    store = open_store(show.storage)
    local = isinstance(store, LocalStore)
    if offline and not local:
        raise VerifyError(
            "--offline checks the local publish folder, but this show publishes to a bucket",
            where="storage",
            hint="leave out --offline to check the public URLs",
        )
    wanted: list[str] | None = None
    if episodes is not None:
        wanted = []
        for episode_id in episodes:
            ep = load_episode(settings.configs_dir, episode_id)
            wanted += [episode_id, *([ep.guid] if ep.guid else [])]
    limits = AudioLimits(target_lufs=show.audio.target_lufs, true_peak_dbtp=show.audio.true_peak_db)
    state = state if state is not None else settings.build_root / "verify-state.json"
    if not local:
        url = feed_url or show.show.feed_url
        return check_live_feed(
            url,
            fetch=HttpFetcher(allow_private=allow_private),
            episodes=wanted,
            audio=audio,
            limits=limits,
            state=state,
        )
    assert isinstance(store, LocalStore)
    folder = store.root / store.prefix if store.prefix else store.root
    url = feed_url or store.url(store.key(show.feed.filename))
    if not (folder / show.feed.filename).is_file() and feed_url is None:
        raise VerifyError(
            "nothing is published in the local folder yet", where=folder, hint="run `produce EPISODE` first"
        )
    if offline:
        fetch: Fetcher = LocalFetcher(folder, store.base_url)
        res = check_live_feed(url, fetch=fetch, episodes=wanted, audio=audio, limits=limits, state=state)
        return dataclasses.replace(res, source=f"read the files of {folder} directly (no HTTP: hosting unchecked)")
    with serve_folder(folder) as base:
        fetch = MappedFetcher(HttpFetcher(allow_private=True), store.base_url, base)
        res = check_live_feed(url, fetch=fetch, episodes=wanted, audio=audio, limits=limits, state=state)
    return dataclasses.replace(res, source=f"served {folder} on {base} (the public URLs {store.base_url} mapped there)")
