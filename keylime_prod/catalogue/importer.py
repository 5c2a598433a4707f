"""``produce import FEED``: bring an existing show's feed into keylime-prod (docs/archive.md).

Every item of the old feed becomes ``configs/episodes/<id>.toml`` (title, date, description as summary,
number/season, link, explicit, duration and the item's original ``guid``, which the new feed keeps forever so that
subscribers never see a duplicate) and its enclosure is fetched into a media folder outside git.

Ids come from the episode number (``episode-<n>``) or else the title, and an item already imported (found by its
guid) keeps the id and file it has: a re-import adds new items and rewrites nothing. Media downloads go to
``<name>.part`` and resume with an HTTP ``Range`` request; the file gets its final name only once its size equals
the enclosure's ``length``. A bad item (no enclosure, no date, a duplicate guid, media that answers 404) is one
problem line and the others are imported.

Feeds and media come through the one HTTP client (:mod:`keylime_prod.http`); the batch fetches media through
:func:`fetch_media` too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from .. import ffmpeg, http, timecode
from ..config import (
    COMMAND_NAMES,
    EPISODE_ID_RE,
    XML_FORBIDDEN,
    Person,
    episode_from_text,
    http_url,
    load_show,
    tomllib,
)
from ..errors import ArchiveError, ConfigError, FFmpegError, HttpError
from ..fsutil import atomic_path
from ..progress import ProgressFn, null_progress
from ..slug import slugify

log = logging.getLogger(__name__)

USER_AGENT = "keylime-prod-import/1"
_RETRY_HINT = "check the URL, or re-run later: downloads resume"
CHUNK = 1 << 16
#: Audio types an enclosure may carry, and the file extension each gets when the URL has none.
AUDIO_EXTENSIONS = {"audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/x-m4a": ".m4a", "audio/mp4": ".m4a"}
_NUMBER_IN_TITLE = re.compile(r"(?:\bepisode|\bep\.?|#)\s*(\d{1,5})\b", re.I)

FetchAction = Literal["fetched", "resumed", "present"]


# ------------------------------------------------------------------------------------------------------ fetching


def _client(timeout: float, allow_private: bool) -> http.Client:
    return http.Client(user_agent=USER_AGENT, timeout=timeout, allow_private=allow_private)


def _http_error(url: str, status: int, reason: str) -> ArchiveError:
    return ArchiveError(f"HTTP {status} {reason}", where=url, hint=_RETRY_HINT)


def read_url(url: str, *, timeout: float = 30.0, allow_private: bool = False) -> bytes:
    """GET ``url`` (a feed, at most :data:`keylime_prod.http.DOCUMENT`'s size); an unreachable or failing URL, or
    one the network rules refuse (keylime_prod.http), is an :class:`ArchiveError`."""
    try:
        r = _client(timeout, allow_private).get(url, limits=http.DOCUMENT)
    except HttpError as e:
        raise ArchiveError(f"cannot fetch: {e.message}", where=url, hint=_RETRY_HINT) from None
    if r.status >= 400:
        raise _http_error(url, r.status, r.reason)
    return r.body


def _check_audio(part: Path, url: str) -> None:
    """Raise (and delete ``part``) unless ffmpeg finds an audio stream in it: whatever a peer sends under an audio
    enclosure is not a recording until ffmpeg says so."""
    try:
        ffmpeg.probe(part)
    except FFmpegError as e:
        part.unlink(missing_ok=True)
        raise ArchiveError(
            f"what the server sent is not audio ({e.message})", where=url, hint="check the enclosure URL in the feed"
        ) from None


def _total_from(resp: http.Streamed, start: int) -> int | None:
    """The full size of the resource from ``Content-Range`` (206) or ``Content-Length`` (200)."""
    cr = resp.headers.get("content-range")
    if cr:
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", cr)
        if not m or int(m.group(1)) != start:
            raise ArchiveError(f"the server answered a range request with {cr!r}", where=resp.url)
        return int(m.group(3)) if m.group(3) != "*" else None
    cl = resp.headers.get("content-length")
    return int(cl) if cl and cl.isdigit() else None


def fetch_media(
    url: str,
    dest: Path,
    *,
    length: int | None,
    timeout: float = 30.0,
    progress: ProgressFn = null_progress,
    allow_private: bool = False,
) -> FetchAction:
    """Download ``url`` to ``dest``, resuming a ``dest.part`` left by an interrupted run (HTTP ``Range``).

    ``dest`` appears only when complete and audio: its size equals ``length`` (the enclosure's, when the feed gives
    one) or else the size the server announced, and ffmpeg finds an audio stream in it. A server that ignores
    ``Range`` (200) restarts the download from zero. The body is never written past ``length`` (or the announced
    size, or :data:`keylime_prod.http.MEDIA`'s cap when neither is known), and the network rules of
    :mod:`keylime_prod.http` apply (http(s) only, public addresses unless ``allow_private``, deadline, minimum rate).
    Returns what happened; raises :class:`ArchiveError` (HTTP errors, a size that disagrees with ``length``, not
    audio).
    """
    dest = Path(dest)
    if dest.is_file() and (not length or dest.stat().st_size == length):
        return "present"
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    if length and have > length:  # not the file the feed describes: start again
        have = 0
    total: int | None = length
    resumed = True
    if not (length and have == length):
        try:
            limits = http.MEDIA.capped(length)  # a 200 restarts from 0: never more than the whole file
            with _client(timeout, allow_private).stream(url, start=have, limits=limits) as resp:
                if resp.status == 416 and have and length == have:  # already complete: nothing left to send
                    pass
                elif resp.status >= 400:
                    raise _http_error(url, resp.status, resp.reason)
                else:
                    resumed = have > 0 and resp.status == 206
                    if not resumed:
                        have = 0  # 200: the whole body follows, whatever we asked for
                    total = _total_from(resp, have)
                    if length and total is not None and total != length:
                        raise ArchiveError(
                            f"the server has {total} bytes but the feed's enclosure length is {length}",
                            where=url,
                            hint="the old feed is out of date: fix the length in the episode's [archive] table",
                        )
                    expected = length or total
                    with open(part, "ab" if resumed else "wb") as f:
                        done = have
                        for chunk in resp.chunks(CHUNK):
                            done += len(chunk)
                            if expected and done > expected:
                                raise ArchiveError(
                                    f"the server sent more than the {expected:,} bytes it stated", where=url
                                )
                            f.write(chunk)
                            progress(f"Fetching {dest.name}", done, expected or done)
        except HttpError as e:  # unreachable, or cut off mid-body
            raise ArchiveError(f"cannot fetch: {e.message}", where=url, hint=_RETRY_HINT) from None
        except OSError as e:  # writing the part file
            raise ArchiveError(f"cannot write the download: {e.strerror}", where=part) from e
    size = part.stat().st_size
    want = length or total
    if want is not None and size != want:
        raise ArchiveError(
            f"download stopped at {size} of {want} bytes", where=url, hint="re-run to resume where it stopped"
        )
    _check_audio(part, url)
    os.replace(part, dest)
    return "resumed" if resumed else "fetched"


# ------------------------------------------------------------------------------------------------- feed items


@dataclass(frozen=True)
class FeedItem:
    """One usable item of the old feed, as the episode config will record it."""

    guid: str
    title: str
    summary: str
    publish_date: dt.datetime
    url: str
    length: int | None
    media_type: str
    number: int | None
    season: int | None
    episode_type: Literal["full", "trailer", "bonus"]
    explicit: bool | None
    link: str | None
    duration: float | None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the feed or an item: printed as one line; the other items are imported."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _text(html: str) -> str:
    """Plain text of an item's HTML description (feeds put markup in ``description``)."""
    if "<" not in html:
        return html.strip()
    import lxml.html

    try:
        return " ".join(lxml.html.fromstring(html).text_content().split())
    except Exception:  # lxml raises several types on odd fragments; the raw text is still a summary
        return re.sub(r"<[^>]+>", " ", html).strip()


def _int(v: Any) -> int | None:
    try:
        return int(str(v).strip())
    except (TypeError, ValueError):
        return None


def _count(v: Any, least: int) -> int | None:
    """An episode or season number, or ``None`` when the feed's is below ``least`` (Apple: both are positive)."""
    n = _int(v)
    return n if n is not None and n >= least else None


def _clean(text: str) -> str:
    """Feed text without the characters XML cannot carry (a numeric reference such as ``&#xFFFE;`` in the old
    feed); the config would refuse them, so the import drops them."""
    return XML_FORBIDDEN.sub("", text)


def _link(v: Any) -> str | None:
    # Only links the config accepts are kept (http(s), RFC 3986 characters): any other would fail `produce check`.
    try:
        return http_url(v) if isinstance(v, str) else None
    except ValueError:
        return None


def _explicit(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return {"yes": True, "true": True, "explicit": True, "no": False, "false": False, "clean": False}.get(
            v.strip().lower()
        )
    return None


def _duration(v: Any) -> float | None:
    # itunes:duration is seconds or [HH:]MM:SS (Apple's podcast RSS spec).
    if v is None or not str(v).strip():
        return None
    try:
        return timecode.parse(str(v).strip())
    except ValueError:
        return None


def _enclosure(entry: Any) -> tuple[str, int | None, str] | None:
    for enc in entry.get("enclosures", ()):
        href = enc.get("href") or enc.get("url")
        ctype = (enc.get("type") or "").split(";")[0].strip().lower()
        if href and (ctype.startswith("audio/") or not ctype):
            return href, (_int(enc.get("length")) or None), ctype or "audio/mpeg"
    return None


def _date(entry: Any) -> dt.datetime | None:
    t = entry.get("published_parsed") or entry.get("updated_parsed")
    if not t:
        return None
    y, mo, d, h, mi, s = t[:6]
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.timezone.utc)


def parse_feed(data: bytes, where: str) -> tuple[list[FeedItem], list[Problem], Any]:
    """Read an RSS feed with feedparser: the usable items (oldest first), the problems, and the channel.

    A document that is not a feed at all is an :class:`ArchiveError`; an item without an enclosure or a date, or
    with a guid an earlier item already has, is a :class:`Problem` and is left out.
    """
    import feedparser

    parsed = feedparser.parse(data)
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception") or "no RSS or Atom elements"
        raise ArchiveError(f"not a podcast feed: {reason}", where=where, hint="give the URL or file of the RSS feed")
    problems: list[Problem] = []
    if parsed.get("bozo") and parsed.get("bozo_exception"):
        problems.append(Problem(where, f"feed is not well-formed XML ({parsed.bozo_exception}); read what parsed"))
    items: list[FeedItem] = []
    seen: dict[str, str] = {}
    for n, entry in enumerate(parsed.entries, 1):
        title = _clean(entry.get("title") or "").strip()
        label = f"item {n} ({title!r})" if title else f"item {n}"
        enc = _enclosure(entry)
        if enc is None:
            problems.append(Problem(label, "has no audio enclosure: skipped"))
            continue
        url, length, media_type = enc
        # Items without a guid are known to players by their enclosure URL (the RSS 2.0 fallback).
        guid = (entry.get("id") or "").strip() or url
        if guid in seen:
            problems.append(Problem(label, f"guid {guid!r} is also {seen[guid]}'s: skipped (guids must be unique)"))
            continue
        seen[guid] = label
        when = _date(entry)
        if when is None:
            problems.append(Problem(label, "has no pubDate: skipped (add one to the old feed or import by hand)"))
            continue
        etype = str(entry.get("itunes_episodetype") or "full").lower()
        m = _NUMBER_IN_TITLE.search(title)
        items.append(
            FeedItem(
                guid=guid,
                title=title or guid,
                summary=_clean(_text(entry.get("summary") or "")) or title or guid,
                publish_date=when,
                url=url,
                length=length,
                media_type=media_type,
                number=_count(entry.get("itunes_episode"), 0) or (int(m.group(1)) if m else None),
                season=_count(entry.get("itunes_season"), 1),
                episode_type=etype if etype in ("full", "trailer", "bonus") else "full",  # type: ignore[arg-type]
                explicit=_explicit(entry.get("itunes_explicit")),
                link=_link(entry.get("link")),
                duration=_duration(entry.get("itunes_duration")),
            )
        )
    items.sort(key=lambda i: (i.publish_date, i.guid))
    return items, problems, parsed.feed


# --------------------------------------------------------------------------------------------------------- ids


def base_id(item: FeedItem) -> str:
    """The id an item gets from its number (``episode-12``, ``s2-episode-12``) or else its title."""
    if item.number is not None and item.episode_type == "full":
        return f"s{item.season}-episode-{item.number}" if item.season and item.season > 1 else f"episode-{item.number}"
    return slugify(item.title.lower(), default="episode", keep="a-z0-9", max_len=60)


def assign_ids(items: Iterable[FeedItem], known: dict[str, str], taken: set[str]) -> dict[str, str]:
    """guid -> id for every item: an imported guid keeps its id; a new one gets :func:`base_id`, with a short hash
    of its guid appended when another episode has that id already (stable: the same feed gives the same ids)."""
    out: dict[str, str] = {}
    used = set(taken)
    for item in items:
        if item.guid in known:
            out[item.guid] = known[item.guid]
            continue
        eid = base_id(item)
        if eid in used or not EPISODE_ID_RE.fullmatch(eid) or eid in COMMAND_NAMES:
            eid = f"{eid[:52]}-{hashlib.sha1(item.guid.encode()).hexdigest()[:6]}"
        used.add(eid)
        out[item.guid] = eid
    return out


def _known_guids(episodes_dir: Path) -> tuple[dict[str, str], set[str]]:
    """guid -> id of the configs already there (read as TOML: a config need not be valid to own its guid).

    A config that cannot be read stops the import: it may own the guid of an item, which would then be imported a
    second time under a new id, and subscribers would download that episode again."""
    known: dict[str, str] = {}
    ids: set[str] = set()
    for p in sorted(episodes_dir.glob("*.toml")):
        ids.add(p.stem)
        try:
            guid = tomllib.loads(p.read_bytes().decode("utf-8").removeprefix("\ufeff")).get("guid")
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"cannot be read ({e}), so the guid it may hold is unknown",
                where=p,
                hint="fix it (`produce check` says what is wrong) or move it out of episodes/, then import again",
            ) from None
        if isinstance(guid, str):
            known[guid] = p.stem
    return known, ids


# ------------------------------------------------------------------------------------------------------ import


def media_name(episode_id: str, item: FeedItem) -> str:
    """The media file's name: the id plus the URL's extension (else the type's)."""
    ext = Path(urllib.parse.urlparse(item.url).path).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{2,4}", ext):
        ext = AUDIO_EXTENSIONS.get(item.media_type, ".mp3")
    return f"{episode_id}{ext}"


def episode_toml(item: FeedItem, *, recording: str, hosts: tuple[Person, ...], remaster: bool) -> str:
    """The episode config for ``item`` (TOML text)."""
    doc: dict[str, Any] = {"guid": item.guid, "title": item.title}
    doc["number"] = item.number if item.number is not None else 0
    if item.season is not None:
        doc["season"] = item.season
    if item.episode_type != "full":
        doc["episode_type"] = item.episode_type
    doc["publish_date"] = item.publish_date
    doc["summary"] = item.summary
    if item.link:
        doc["link"] = item.link
    if item.explicit is not None:
        doc["explicit"] = item.explicit
    doc["recordings"] = [recording]
    doc["hosts"] = [p.model_dump(exclude_defaults=True) for p in hosts]
    archive: dict[str, Any] = {"url": item.url, "type": item.media_type, "remaster": remaster}
    if item.length:
        archive["length"] = item.length
    if item.duration is not None:
        archive["duration"] = item.duration
    doc["archive"] = archive
    head = f"# Imported by `produce import` from the item with guid {item.guid!r}; keep the guid forever.\n"
    return head + tomli_w.dumps(doc)


@dataclass(frozen=True)
class ImportedEpisode:
    """One item of the feed after the import. ``config``: ``added`` or ``kept`` (imported before; untouched);
    ``media``: ``fetched``, ``resumed``, ``present``, ``url`` (left at its URL) or ``failed``."""

    episode_id: str
    guid: str
    title: str
    config: Literal["added", "kept"]
    media: str
    media_path: Path


@dataclass(frozen=True)
class ImportResult:
    """The outcome of :func:`import_feed`: every item, and one problem per thing that went wrong."""

    source: str
    episodes: tuple[ImportedEpisode, ...]
    problems: tuple[Problem, ...] = field(default=())

    def summary(self) -> list[str]:
        """One line per item (``produce import``); problems are errors, printed apart."""
        return [f"{e.episode_id}: config {e.config}, media {e.media}" for e in self.episodes]

    def to_json(self) -> dict[str, Any]:
        """A machine-readable summary (``produce import --json``)."""
        return {
            "source": self.source,
            "episodes": [
                {
                    "episode": e.episode_id,
                    "guid": e.guid,
                    "title": e.title,
                    "config": e.config,
                    "media": e.media,
                    "media_path": str(e.media_path),
                }
                for e in self.episodes
            ],
            "problems": [str(p) for p in self.problems],
        }


def _read_source(source: str, allow_private: bool) -> bytes:
    if re.match(r"^https?://", source):
        return read_url(source, allow_private=allow_private)
    path = Path(source)
    try:
        return path.read_bytes()
    except OSError as e:
        raise ArchiveError(f"cannot read the feed: {e.strerror}", where=path, hint="give a feed URL or file") from None


def _recording_ref(media: Path, episodes_dir: Path) -> str:
    # Relative paths in an episode config resolve against its folder: keep the configs movable with the repo.
    try:
        return Path(os.path.relpath(media.resolve(), episodes_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return str(media.resolve())


def import_feed(
    source: str,
    configs_dir: Path,
    *,
    media_dir: Path,
    fetch: bool = True,
    remaster: bool = False,
    progress: ProgressFn = null_progress,
    allow_private: bool = False,
) -> ImportResult:
    """Import the feed at ``source`` (URL or file) into ``configs_dir/episodes`` and its media into ``media_dir``.

    New items get a config (with ``remaster`` as their ``[archive]`` choice); items imported before are left as they
    are. With ``fetch`` the media is downloaded (resumed, checked against the enclosure length), else it stays at
    its URL for the batch to fetch. Problems with single items are collected, not raised. ``allow_private`` lets
    the feed and media come from loopback and private addresses (keylime_prod.http).
    """
    configs_dir, media_dir = Path(configs_dir), Path(media_dir)
    show = load_show(configs_dir / "show.toml")
    items, problems, channel = parse_feed(_read_source(source, allow_private), source)
    if not items and not problems:
        problems.append(Problem(source, "the feed has no items"))
    episodes_dir = configs_dir / "episodes"
    episodes_dir.mkdir(parents=True, exist_ok=True)
    known, taken = _known_guids(episodes_dir)
    ids = assign_ids(items, known, taken)
    author = (channel.get("author") or channel.get("itunes_author") or show.show.author).strip()
    hosts = show.show.hosts or (Person(name=author),)
    out: list[ImportedEpisode] = []
    for item in items:
        eid = ids[item.guid]
        cfg = episodes_dir / f"{eid}.toml"
        media = media_dir / media_name(eid, item)
        action: Literal["added", "kept"] = "kept"
        if item.guid not in known:
            text = episode_toml(item, recording=_recording_ref(media, episodes_dir), hosts=hosts, remaster=remaster)
            try:  # never write a config that `produce check` would refuse (a guid with a line break, year 1901)
                episode_from_text(cfg, eid, text)
            except ConfigError as e:
                hint = "fix the item in the old feed, or write its config by hand"
                problems.append(Problem(eid, f"not imported: {e.message} ({hint})"))
                continue
            with atomic_path(cfg) as tmp:  # never over a file another import or a person wrote meanwhile
                tmp.write_text(text, encoding="utf-8")
                if cfg.exists():
                    raise ConfigError("appeared while importing", where=cfg, hint="re-run `produce import`")
            action = "added"
        else:
            media = _configured_media(cfg) or media
        state = "url"
        if fetch:
            try:
                state = fetch_media(item.url, media, length=item.length, progress=progress, allow_private=allow_private)
            except ArchiveError as e:
                problems.append(Problem(eid, f"media not fetched: {e}"))
                state = "failed"
        log.info("%s: config %s, media %s", eid, action, state)
        out.append(ImportedEpisode(eid, item.guid, item.title, action, state, media))
    return ImportResult(source, tuple(out), tuple(problems))


def _configured_media(cfg: Path) -> Path | None:
    """Where an imported config keeps its recording (the first one), resolved against its folder."""
    try:
        recs = tomllib.loads(cfg.read_text("utf-8")).get("recordings") or []
    except (OSError, ValueError):
        return None
    return (cfg.parent / recs[0]).resolve() if recs and isinstance(recs[0], str) else None
