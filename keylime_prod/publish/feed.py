"""The RSS feed, built from the per-episode manifests kept in the bucket.

A manifest (``<prefix>/episodes/<id>/manifest.json``) records, for one episode, what the feed says about it and
every file uploaded for it (key, byte size, SHA-256, Content-Type), written only after each of those files was
verified. :func:`build_feed` turns the show config plus the manifests into RSS 2.0 bytes, so a fresh CI runner needs
nothing but the repository and the bucket.

The feed is made with feedgen and its ``podcast`` extension (the ``itunes:`` tags Apple requires), plus
:class:`PodcastIndexExtension`, a small feedgen extension for the Podcasting 2.0 namespace
(https://podcastindex.org/namespace/1.0): ``podcast:guid``, ``podcast:person``, ``podcast:transcript`` and
``podcast:chapters``, ``podcast:locked``; and Podlove Simple Chapters (``psc:chapters``,
https://podlove.org/simple-chapters/), the only chapters Spotify reads besides timestamps in the description. lxml
does all escaping, so ``&``, ``<``, quotes and emoji in titles come out as valid XML; ``'`` and ``"`` stay literal in
element text (docs/platform.md: gPodder's podcastparser decodes no ``&#x27;``).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

# Order matters: feedgen.util uses lxml.etree without importing it; feedgen.feed imports it first.
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import Self

from .. import timecode
from ..config import MAX_DESCRIPTION_BYTES, XML_FORBIDDEN, FeedSettings, ShowInfo, describe_validation_error
from ..errors import FeedError

log = logging.getLogger(__name__)

PODCAST_NS = "https://podcastindex.org/namespace/1.0"
ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
#: Podlove Simple Chapters 1.2 (https://podlove.org/simple-chapters/).
PSC_NS = "http://podlove.org/simple-chapters"
MANIFEST_SCHEMA = "keylime-prod/publish-manifest/1"
SHOW_SCHEMA = "keylime-prod/publish-show/1"
#: Transcript formats that carry timings: Podcasting 2.0 marks them ``rel="captions"``.
TIMED_TRANSCRIPTS = ("vtt", "srt", "json")
#: Apple Podcasts: channel and episode descriptions up to 4000 bytes (UTF-8), the show's checked by its config.
MAX_DESCRIPTION = MAX_DESCRIPTION_BYTES
#: Spotify builds chapters from description timestamps only with at least 3 of them, the first at 00:00:00, and
#: titles under 40 characters (docs/platform.md, "Chapters by app").
SPOTIFY_MIN_STAMPS = 3
SPOTIFY_MAX_TITLE = 39


# ----------------------------------------------------------------------------------------------------- manifests


class _Doc(BaseModel):
    # Manifests are read back by later versions: keep unknown keys out of the way rather than failing.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Document(_Doc):
    """A JSON document kept in the bucket (an episode manifest, show.json): written and read back the same way."""

    _what: ClassVar[str] = "document"

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def parse(cls, data: bytes, where: str) -> Self:
        """Read one back; :class:`FeedError` naming ``where`` and the first bad field if it is not one."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as e:
            raise FeedError(
                f"not a valid {cls._what}: {describe_validation_error(e)}",
                where=where,
                hint="re-publish the episode with `produce publish EPISODE`",
            ) from None


class ManifestFile(_Doc):
    """One uploaded, verified object."""

    role: Literal["audio", "transcript", "chapters", "notes", "cover", "report"]
    format: str
    name: str
    key: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str
    cache_control: str = ""
    etag: str | None = None
    verified_by: str


class ManifestPerson(_Doc):
    """A ``podcast:person``."""

    name: str
    role: str = "host"
    group: str = "cast"
    img: str | None = None
    href: str | None = None


class ManifestChapter(_Doc):
    """A chapter start on the published file's timeline (for the description's timestamps)."""

    start: float
    title: str


class ManifestItem(_Doc):
    """What the feed says about one episode."""

    title: str
    subtitle: str = ""
    summary: str
    notes_html: str | None = None
    link: str | None = None
    publish_date: dt.datetime
    duration: float = Field(gt=0)
    number: int | None = None
    season: int | None = None
    episode_type: Literal["full", "trailer", "bonus"] = "full"
    explicit: bool | None = None
    persons: tuple[ManifestPerson, ...] = ()
    chapters: tuple[ManifestChapter, ...] = ()
    transcript_language: str | None = None


class Manifest(_Document):
    """``<prefix>/episodes/<id>/manifest.json``: one episode's feed entry and its verified files."""

    _what: ClassVar[str] = "publish manifest"

    schema_: str = Field(default=MANIFEST_SCHEMA, alias="schema")
    episode_id: str
    guid: str
    first_published: dt.datetime
    updated: dt.datetime
    item: ManifestItem
    files: tuple[ManifestFile, ...]

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    def file(self, role: str, fmt: str | None = None) -> ManifestFile | None:
        """The first file with ``role`` (and ``format``)."""
        return next((f for f in self.files if f.role == role and (fmt is None or f.format == fmt)), None)


class ShowManifest(_Document):
    """``<prefix>/show.json``: the show's ``podcast:guid`` (fixed on the first publish) and its cover art."""

    _what: ClassVar[str] = "show manifest"

    schema_: str = Field(default=SHOW_SCHEMA, alias="schema")
    podcast_guid: str
    feed_url: str
    artwork: ManifestFile

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


# ------------------------------------------------------------------------------------------------------ left out


@dataclass(frozen=True)
class LeftOut:
    """A manifest in the bucket that cannot go into the feed, and so is left out of it while every other episode
    still goes in: ``episode_id`` (the folder's name when the manifest cannot be read), ``key`` (the manifest's
    key as :meth:`Store.describe_key` names it), ``reason`` and ``hint`` (what can be done about it)."""

    episode_id: str
    key: str
    reason: str
    hint: str

    def to_json(self) -> dict[str, str]:
        """A machine-readable line (``produce publish --json``)."""
        return {"episode": self.episode_id, "key": self.key, "reason": self.reason, "hint": self.hint}

    def __str__(self) -> str:
        return f"{self.key}: {self.episode_id} is left out of the feed: {self.reason} ({self.hint})"


def left_out_hint(episode_id: str, key: str) -> str:
    """What can be done about a manifest left out of the feed: publish the episode again (a new manifest replaces
    this one), or delete the manifest key to leave the episode out for good."""
    return f"re-publish it with `produce publish {episode_id}`, or delete {key} to leave it out"


def _texts(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a manifest's JSON value, with its field path (``item.title``, ``files[2].key``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _texts(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _texts(v, f"{path}[{i}]")


def _unfit(m: Manifest) -> str | None:
    """Why one manifest cannot become a feed item on its own, or ``None``."""
    for path, text in _texts(m.model_dump(mode="json", by_alias=True), ""):
        bad = XML_FORBIDDEN.search(text)
        if bad:
            # XML 1.0 section 2.2 (Char): lxml refuses such a character, and it would fail the whole feed.
            return f"{path} holds U+{ord(bad.group()):04X}, a character XML cannot carry"
    if m.file("audio") is None:
        return "it lists no audio file"
    return None


def screen(
    manifests: Sequence[Manifest],
    *,
    where: Callable[[str], str] = str,
    live: Mapping[str, str] | None = None,
    url: Callable[[str], str] = str,
) -> tuple[list[Manifest], list[LeftOut]]:
    """The manifests that can go into the feed, and those left out with why: one holding characters XML cannot
    carry or listing no audio, and one whose guid another manifest has. A guid identifies one item (RSS 2.0), and
    of two manifests with one guid the one apps already know under it keeps it: the one whose audio the live feed's
    item with that guid encloses (``live``: guid -> enclosure URL, :func:`live_enclosures`; ``url`` maps a key to
    its URL), else the one published first. ``where`` names an episode's manifest key in the messages."""
    live = live or {}

    def known(m: Manifest) -> bool:
        audio = m.file("audio")
        return audio is not None and live.get(m.guid) == url(audio.key)

    fit: list[Manifest] = []
    out: list[LeftOut] = []
    for m in manifests:
        reason = _unfit(m)
        key = where(m.episode_id)
        if reason is None:
            fit.append(m)
        else:
            out.append(LeftOut(m.episode_id, key, reason, left_out_hint(m.episode_id, key)))
    owner: dict[str, Manifest] = {}
    for m in sorted(fit, key=lambda m: (not known(m), m.first_published, m.episode_id)):
        first = owner.setdefault(m.guid, m)
        if first is not m:
            key = where(m.episode_id)
            out.append(
                LeftOut(
                    m.episode_id,
                    key,
                    f"its guid {m.guid} is the guid of {first.episode_id}, "
                    + ("the item live under it" if known(first) else "published before it"),
                    f"give {m.episode_id} its own guid (or none) in its config and re-publish it with "
                    f"`produce publish {m.episode_id}`, or delete {key} to leave it out",
                )
            )
    left = {x.episode_id for x in out}
    return [m for m in fit if m.episode_id not in left], sorted(out, key=lambda x: x.episode_id)


# ----------------------------------------------------------------------------------------------------- extension


def _person(parent: Any, p: ManifestPerson) -> None:
    el = xml_elem(f"{{{PODCAST_NS}}}person", parent)
    el.text = p.name
    el.attrib["role"] = p.role
    el.attrib["group"] = p.group
    if p.img:
        el.attrib["img"] = p.img
    if p.href:
        el.attrib["href"] = p.href


class PodcastIndexExtension(BaseExtension):
    """Channel-level Podcasting 2.0 tags, and ``itunes:explicit`` as Apple now spells it (``true``/``false``).

    feedgen's own podcast extension only knows the old ``yes``/``no``/``clean`` values.
    """

    def __init__(self) -> None:
        self.guid: str | None = None
        self.persons: list[ManifestPerson] = []
        self.explicit: bool | None = None
        self.locked_owner: str | None = None

    def extend_ns(self) -> dict[str, str]:
        """Declare ``xmlns:podcast`` and ``xmlns:psc`` on the root: feedgen takes namespaces from the channel's
        extension only, and lxml would name an undeclared one ``ns16`` on each item (Podlove Simple Chapters 1.2
        spells it ``psc``)."""
        return {"podcast": PODCAST_NS, "psc": PSC_NS}

    def extend_rss(self, rss_feed: Any) -> Any:
        """Add the tags to ``<channel>``."""
        channel = rss_feed[0]
        if self.guid:
            xml_elem(f"{{{PODCAST_NS}}}guid", channel).text = self.guid
        if self.locked_owner:
            # Podcasting 2.0 podcast:locked: "yes" tells other platforms not to import the feed without the owner,
            # whose email (the itunes:owner one) they check against.
            el = xml_elem(f"{{{PODCAST_NS}}}locked", channel)
            el.text = "yes"
            el.attrib["owner"] = self.locked_owner
        for p in self.persons:
            _person(channel, p)
        if self.explicit is not None:
            xml_elem(f"{{{ITUNES_NS}}}explicit", channel).text = "true" if self.explicit else "false"
        return rss_feed


class PodcastIndexEntryExtension(BaseEntryExtension):
    """Item-level Podcasting 2.0 tags: transcripts, chapters, persons; ``itunes:explicit``; ``psc:chapters``."""

    def __init__(self) -> None:
        self.transcripts: list[dict[str, str]] = []
        self.chapters: dict[str, str] | None = None
        self.persons: list[ManifestPerson] = []
        self.explicit: bool | None = None
        self.simple_chapters: list[ManifestChapter] = []

    def extend_ns(self) -> dict[str, str]:
        """Declare ``xmlns:podcast`` and ``xmlns:psc``."""
        return {"podcast": PODCAST_NS, "psc": PSC_NS}

    def extend_rss(self, entry: Any) -> Any:
        """Add the tags to ``<item>``."""
        for t in self.transcripts:
            el = xml_elem(f"{{{PODCAST_NS}}}transcript", entry)
            for k, v in t.items():
                el.attrib[k] = v
        if self.chapters:
            el = xml_elem(f"{{{PODCAST_NS}}}chapters", entry)
            for k, v in self.chapters.items():
                el.attrib[k] = v
        for p in self.persons:
            _person(entry, p)
        if self.explicit is not None:
            xml_elem(f"{{{ITUNES_NS}}}explicit", entry).text = "true" if self.explicit else "false"
        if self.simple_chapters:
            psc = xml_elem(f"{{{PSC_NS}}}chapters", entry)
            psc.attrib["version"] = "1.2"
            for c in self.simple_chapters:
                el = xml_elem(f"{{{PSC_NS}}}chapter", psc)
                # Normal Play Time, HH:MM:SS.mmm (Podlove Simple Chapters 1.2).
                el.attrib["start"] = timecode.hms_ms(c.start)
                el.attrib["title"] = c.title
        return entry


# ---------------------------------------------------------------------------------------------------------- feed


def _short(title: str, limit: int) -> str:
    title = " ".join(title.split())
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def description_stamps(chapters: Sequence[ManifestChapter]) -> list[str]:
    """One ``(HH:MM:SS) Title`` line per chapter, the way Spotify and Apple read chapters from a description.

    Spotify's rules (docs/platform.md): the first timestamp is 00:00:00 (the first chapter covers the file from its
    start, so it is written as 00:00:00 even if it was marked a moment later) and titles are under 40 characters
    (longer ones are shortened with an ellipsis). Spotify needs at least :data:`SPOTIFY_MIN_STAMPS` of them.
    """
    return [
        f"({timecode.hms(0.0 if i == 0 else c.start)}) {_short(c.title, SPOTIFY_MAX_TITLE)}"
        for i, c in enumerate(chapters)
    ]


_ENTITY_QUOTES = {"&#x27;": "'", "&#39;": "'", "&apos;": "'", "&quot;": '"', "&#34;": '"', "&#x22;": '"'}
_ENTITY_QUOTES_RE = re.compile("|".join(re.escape(k) for k in _ENTITY_QUOTES), flags=re.I)


def literal_quotes(fragment: str) -> str:
    """``fragment`` (HTML) with quote entities in its text written as the characters themselves.

    gPodder's podcastparser decodes only named and decimal entities in the HTML it reads and drops ``&#x27;``
    ("Im a loser, baby!"); ``'`` and ``"`` need no escaping in HTML text. Tags and their attribute values
    are left exactly as they are.
    """
    parts = re.split(r"(<[^>]*>)", fragment)
    return "".join(
        p if i % 2 else _ENTITY_QUOTES_RE.sub(lambda m: _ENTITY_QUOTES[m.group(0).lower()], p)
        for i, p in enumerate(parts)
    )


def _description(summary: str, stamps: Sequence[str]) -> str:
    paragraphs = [p.strip() for p in summary.split("\n\n") if p.strip()]
    out = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    if stamps:
        out += "<p>" + "<br/>".join(html.escape(x, quote=False) for x in stamps) + "</p>"
    return out


def description_html(item: ManifestItem) -> str:
    """The item ``<description>``: the summary, then one ``(HH:MM:SS) Title`` line per chapter, as HTML.

    RSS readers treat ``<description>`` as HTML, so the plain-text summary is HTML-escaped first (``quote=False``:
    quotes stay literal): a title such as ``<live>`` shows as written instead of vanishing as an unknown tag. Spotify
    builds chapters only from such timestamps in the description (:func:`description_stamps`). The whole HTML stays
    within Apple's 4000 bytes (UTF-8, markup included: what ``produce verify`` measures) by shortening the summary,
    never the timestamps.
    """
    stamps = description_stamps(item.chapters)
    summary = item.summary.strip()
    out = _description(summary, stamps)
    if len(out.encode("utf-8")) <= MAX_DESCRIPTION:
        return out

    def cut(keep: int) -> str:
        return _description(summary[:keep].rstrip() + "…", stamps)

    # The longest prefix that fits: escapes and non-ASCII make bytes and characters differ, so search for it.
    lo, hi = 0, len(summary)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(cut(mid).encode("utf-8")) <= MAX_DESCRIPTION:
            lo = mid
        else:
            hi = mid - 1
    return cut(lo)


def build_feed(
    show: ShowInfo,
    manifests: Sequence[Manifest],
    *,
    show_manifest: ShowManifest,
    url: Callable[[str], str],
    settings: FeedSettings | None = None,
    now: dt.datetime | None = None,
    keep: Collection[str] = (),
) -> bytes:
    """RSS 2.0 bytes for ``show`` with one item per manifest whose publish date has come (newest first).

    A manifest that cannot go into the feed (:func:`screen`) is left out and logged, never the whole feed refused:
    callers that report it call :func:`screen` themselves.

    ``keep`` holds guids already in the live feed: they stay even when re-dated into the future, because a live
    episode leaves the feed only on an explicit request (the caller leaves it out of ``keep``).

    ``url`` maps an object key to its public URL. The output is deterministic: ``lastBuildDate`` is the newest
    item's date, so rebuilding from unchanged manifests gives identical bytes and nothing is uploaded again.
    """
    settings = settings or FeedSettings()
    now = now or dt.datetime.now(dt.timezone.utc)
    fit, left_out = screen(manifests)
    for x in left_out:
        log.warning("%s", x)
    live = sorted(
        (m for m in fit if m.item.publish_date <= now or m.guid in keep),
        key=lambda m: (m.item.publish_date, m.episode_id),
        reverse=True,
    )
    if settings.max_items:
        live = live[: settings.max_items]

    try:
        fg = FeedGenerator()
        fg.load_extension("podcast")
        fg.register_extension("podcastindex", PodcastIndexExtension, PodcastIndexEntryExtension)
        fg.title(show.title)
        # feedgen takes the RSS <link> from the last link given: the self link (atom:link) first, the website last.
        fg.link(href=show.feed_url, rel="self", type="application/rss+xml")
        fg.link(href=show.website, rel="alternate")
        fg.description(show.description)
        fg.language(show.language)
        fg.copyright(show.copyright)
        fg.generator("keylime-prod")
        image = url(show_manifest.artwork.key)
        fg.image(url=image, title=show.title, link=show.website)
        fg.podcast.itunes_author(show.author)
        fg.podcast.itunes_owner(name=show.owner_name, email=show.owner_email)
        fg.podcast.itunes_image(image)
        category: dict[str, str] = {"cat": show.category}
        if show.subcategory:
            category["sub"] = show.subcategory
        fg.podcast.itunes_category(category)
        fg.podcast.itunes_type(show.show_type)
        fg.podcast.itunes_summary(show.description)
        ext = fg.podcastindex
        ext.guid = show_manifest.podcast_guid
        ext.explicit = show.explicit
        channel_persons = [ManifestPerson.model_validate(h.model_dump()) for h in show.hosts]
        ext.persons = channel_persons
        if settings.locked:
            ext.locked_owner = show.owner_email
        newest = max((max(m.item.publish_date, m.updated) for m in live), default=None)
        fg.lastBuildDate(newest or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))

        # feedgen prepends each entry: add the oldest first so the newest ends up on top.
        for m in reversed(live):
            _add_item(fg, m, url=url, channel_persons=channel_persons, channel_explicit=show.explicit)
        return bytes(fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True))
    except FeedError:
        raise
    except ValueError as e:
        # lxml refuses control characters and the like; feedgen refuses malformed values.
        raise FeedError(
            f"cannot build the feed: {e}", where=show.feed_url, hint="fix the offending title or field"
        ) from e


def _add_item(
    fg: Any,
    m: Manifest,
    *,
    url: Callable[[str], str],
    channel_persons: list[ManifestPerson],
    channel_explicit: bool,
) -> None:
    item = m.item
    audio = m.file("audio")
    where = f"manifest of {m.episode_id}"
    if audio is None:
        raise FeedError("no audio file in the manifest", where=where, hint=f"re-publish {m.episode_id}")
    try:
        fe = fg.add_entry()
        fe.title(item.title)
        fe.guid(m.guid, permalink=False)
        fe.pubDate(item.publish_date)
        if item.link:
            fe.link(href=item.link)
        fe.description(description_html(item))
        if item.notes_html:
            # CDATA keeps the HTML readable; a "]]>" inside would end it early, so such notes are escaped instead.
            notes = literal_quotes(item.notes_html)
            fe.content(content=notes, type="CDATA" if "]]>" not in notes else None)
        # RSS enclosure: length is the object's exact byte size, as verified on upload.
        fe.enclosure(url(audio.key), str(audio.size), audio.content_type)
        fe.podcast.itunes_duration(str(round(item.duration)))
        fe.podcast.itunes_episode_type(item.episode_type)
        if item.number is not None:
            fe.podcast.itunes_episode(item.number)
        if item.season is not None:
            fe.podcast.itunes_season(item.season)
        if item.subtitle:
            fe.podcast.itunes_subtitle(item.subtitle)
        # Validators expect an item itunes:title (the title without show name or number) and itunes:explicit.
        fe.podcast.itunes_title(item.title)
        cover = m.file("cover")
        if cover is not None:
            fe.podcast.itunes_image(url(cover.key))
        ext = fe.podcastindex
        ext.explicit = channel_explicit if item.explicit is None else item.explicit
        ext.simple_chapters = list(item.chapters)
        for f in m.files:
            if f.role == "transcript":
                t = {"url": url(f.key), "type": f.content_type.split(";")[0]}
                if item.transcript_language:
                    t["language"] = item.transcript_language
                if f.format in TIMED_TRANSCRIPTS:
                    t["rel"] = "captions"
                ext.transcripts.append(t)
        chapters = m.file("chapters")
        if chapters is not None:
            ext.chapters = {"url": url(chapters.key), "type": chapters.content_type}
        # An item-level person list replaces the channel's (Podcasting 2.0): only add one when it differs, and then
        # it re-states the hosts along with any guests.
        if item.persons and list(item.persons) != channel_persons:
            ext.persons = list(item.persons)
    except ValueError as e:
        raise FeedError(f"cannot add the episode to the feed: {e}", where=where) from e


def live_enclosures(feed_xml: bytes | None) -> dict[str, str]:
    """The enclosure URL of each item guid of a feed we built earlier (empty for ``None`` or unreadable XML)."""
    if not feed_xml:
        return {}
    from lxml import etree

    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        root = etree.fromstring(feed_xml, parser=parser)
    except etree.XMLSyntaxError:
        return {}
    out: dict[str, str] = {}
    for item in root.iterfind("./channel/item"):
        guid, enclosure = item.find("guid"), item.find("enclosure")
        if guid is not None and enclosure is not None:
            out[(guid.text or "").strip()] = enclosure.get("url", "")
    return out


def live_guids(feed_xml: bytes | None) -> set[str]:
    """The item guids of a feed we built earlier (empty for ``None`` or an unreadable feed)."""
    if not feed_xml:
        return set()
    from lxml import etree

    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        root = etree.fromstring(feed_xml, parser=parser)
    except etree.XMLSyntaxError as e:
        log.warning("the live feed is not readable XML (%s): every due episode counts as not live", e)
        return set()
    return {(g.text or "").strip() for g in root.iterfind("./channel/item/guid")}
