"""The publishing stage: upload every episode file, verify it, write the manifest, then rebuild the feed, last.

Layout in the bucket (or in ``public/``, the local default, exactly the same under ``local_dir``)::

    <prefix>/feed.xml                                  the RSS feed (short Cache-Control)
    <prefix>/show.json                                 podcast:guid, fixed on the first publish, and the cover art
    <prefix>/art/<name>.<sha256[:10]>.jpg              cover art, shared by the show and its episodes
    <prefix>/episodes/<id>/manifest.json               what the feed says about the episode + its verified files
    <prefix>/episodes/<id>/<name>.<sha256[:10]>.<ext>  the MP3, transcripts, chapters.json, show notes

Media keys carry a hash of their content, so an object never changes once written (a year of Cache-Control is
honest) and a half-finished re-publish never alters a file the live feed points to. The order of writes is the
safety argument: every file is uploaded and verified, then the episode's manifest, then ``show.json``, and the feed
only after all of that, rebuilt from every manifest in the bucket; any failure stops before the feed, so the live
feed stays as it was. A re-run finds each object already there and verified, and uploads nothing.

:func:`publish` is the stage. :func:`due` answers the scheduler's question: which episodes' dates have come but are
not yet in the live feed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import fsutil
from ..chapters.artefact import ChapterMark
from ..config import EpisodeConfig, ShowConfig
from ..errors import FeedError, PublishError
from ..guids import item_guid, podcast_guid
from ..notes.artefact import Article, Notes
from ..progress import ProgressFn, null_progress
from ..slug import slugify
from .feed import (
    LeftOut,
    Manifest,
    ManifestChapter,
    ManifestFile,
    ManifestItem,
    ManifestPerson,
    ShowManifest,
    build_feed,
    left_out_hint,
    live_enclosures,
    live_guids,
    screen,
)
from .storage import CHAPTERS_TYPE, FileDigest, Store, StoredObject, content_type_for, open_store

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
SHOW_MANIFEST_NAME = "show.json"
Role = Literal["audio", "transcript", "chapters", "notes", "cover", "report"]


# ------------------------------------------------------------------------------------------------------ inputs


def _manifest_entry(
    role: Role, fmt: str, name: str, key: str, digest: FileDigest, ctype: str, store: Store, obj: StoredObject
) -> ManifestFile:
    """The manifest line of one verified (or, in a dry run, planned) object."""
    return ManifestFile(
        role=role,
        format=fmt,
        name=name,
        key=key,
        size=digest.size,
        sha256=digest.sha256,
        content_type=ctype,
        cache_control=store.settings.media_cache_control,
        etag=obj.etag,
        verified_by=obj.verified_by or "planned",
    )


@dataclass(frozen=True)
class EpisodeFile:
    """One file of an episode's build to publish: its role in the feed, its path, and its format (extension)."""

    role: Role
    path: Path
    format: str


@dataclass(frozen=True)
class Release:
    """Everything :func:`publish` needs for one episode, gathered by the pipeline from the build folder."""

    episode: EpisodeConfig
    files: tuple[EpisodeFile, ...]
    duration: float
    transcript_language: str | None = None
    chapters: tuple[ChapterMark, ...] = ()
    #: Writes the show notes into a folder with their links to sibling files (file name -> published URL) and
    #: returns them (the files and the article, which the feed item carries): the notes stage makes its own links,
    #: nothing rewrites or parses its output.
    render_notes: Callable[[Mapping[str, str], Path], Notes] | None = None
    #: Writes the transcript web page into a folder with its player pointing at the published audio (file name ->
    #: URL) and returns its path; the notes link to that page, so it is rendered before them.
    render_page: Callable[[Mapping[str, str], Path], Path] | None = None
    #: Writes the production report (when the show publishes it) with its player and time links on the published
    #: audio (file name -> URL) and returns its path.
    render_report: Callable[[Mapping[str, str], Path], Path] | None = None


# ----------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PublishedFile:
    """One file of a release. ``action``: ``uploaded``, ``present`` (already there and verified), ``upload`` or
    ``keep`` (dry run: what would happen)."""

    role: str
    format: str
    key: str
    url: str
    size: int
    sha256: str
    content_type: str
    action: str
    verified_by: str | None


@dataclass(frozen=True)
class PublishedEpisode:
    """One episode after :func:`publish`. ``live``: in the feed now; ``scheduled``: its date has not come yet."""

    episode_id: str
    guid: str
    publish_date: dt.datetime
    manifest_key: str
    manifest_written: bool
    files: tuple[PublishedFile, ...]
    live: bool
    scheduled: bool


@dataclass(frozen=True)
class Published:
    """The publishing stage's result. ``feed_updated``: the feed changed (in a dry run: would change).
    ``left_out``: manifests in the bucket that could not go into the feed (every other episode did)."""

    target: str
    dry_run: bool
    episodes: tuple[PublishedEpisode, ...]
    feed_key: str
    feed_url: str
    feed_updated: bool
    feed_items: int
    podcast_guid: str
    bytes_uploaded: int
    seconds: float
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    left_out: tuple[LeftOut, ...] = ()

    def left_out_of(self, episode_ids: Collection[str]) -> tuple[LeftOut, ...]:
        """The manifests of ``episode_ids`` that were left out of the feed."""
        return tuple(x for x in self.left_out if x.episode_id in episode_ids)

    def to_json(self) -> dict[str, Any]:
        """A machine-readable summary (``produce publish --json``)."""
        return {
            "target": self.target,
            "dry_run": self.dry_run,
            "now": self.now.isoformat(),
            "podcast_guid": self.podcast_guid,
            "feed": {
                "key": self.feed_key,
                "url": self.feed_url,
                "updated": self.feed_updated,
                "items": self.feed_items,
            },
            "bytes_uploaded": self.bytes_uploaded,
            "seconds": round(self.seconds, 3),
            "left_out": [x.to_json() for x in self.left_out],
            "episodes": [
                {
                    "episode": e.episode_id,
                    "guid": e.guid,
                    "publish_date": e.publish_date.isoformat(),
                    "live": e.live,
                    "scheduled": e.scheduled,
                    "manifest": {"key": e.manifest_key, "written": e.manifest_written},
                    "files": [
                        {
                            "role": f.role,
                            "format": f.format,
                            "key": f.key,
                            "url": f.url,
                            "size": f.size,
                            "sha256": f.sha256,
                            "content_type": f.content_type,
                            "action": f.action,
                            "verified_by": f.verified_by,
                        }
                        for f in e.files
                    ],
                }
                for e in self.episodes
            ],
        }


@dataclass(frozen=True)
class DueEpisode:
    """An episode whose publish date has come and that is not in the live feed."""

    episode_id: str
    publish_date: dt.datetime
    reason: str


# ------------------------------------------------------------------------------------------------------ naming


def _sniff_image(path: Path) -> str:
    """``jpg`` or ``png`` from the file's first bytes (Apple: the extension must match the content)."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    raise PublishError("cover art is neither JPEG nor PNG", where=path, hint="Apple accepts JPEG or PNG artwork only")


def _content_type(f: EpisodeFile) -> str:
    if f.role == "chapters":
        return CHAPTERS_TYPE
    return content_type_for(f"x.{f.format}")


def _feed_key(store: Store, show: ShowConfig) -> str:
    return store.key(show.feed.filename)


def _manifest_key(store: Store, episode_id: str) -> str:
    return store.key("episodes", episode_id, MANIFEST_NAME)


def _object_key(store: Store, f: EpisodeFile, digest: FileDigest, episode_id: str) -> str:
    name = f"{slugify(f.path.stem, default='file', max_len=80)}.{digest.sha256[:10]}.{f.format}"
    if f.role == "cover":
        return store.key("art", name)
    return store.key("episodes", episode_id, name)


# ------------------------------------------------------------------------------------------------------- stage


def _now(now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


def _read_manifest(store: Store, key: str) -> Manifest | None:
    data = store.get_bytes(key)
    return Manifest.parse(data, store.describe_key(key)) if data is not None else None


def _readable_manifest(store: Store, key: str) -> Manifest | None:
    """The manifest at ``key``, or ``None`` when there is none or it cannot be read (logged): publishing the episode
    again replaces an unreadable one, which is the way out the feed's hint names."""
    try:
        return _read_manifest(store, key)
    except FeedError as e:
        log.warning("%s; it is replaced by this publish", e.message if e.where is None else f"{e.where}: {e.message}")
        return None


def _check_release(r: Release) -> None:
    audio = [f for f in r.files if f.role == "audio"]
    if len(audio) != 1:
        raise PublishError(
            f"{r.episode.id}: expected one audio file, got {len(audio)}", hint=f"run `produce {r.episode.id}` first"
        )
    for f in r.files:
        if not f.path.is_file():
            raise PublishError(
                f"the build of {r.episode.id} is incomplete: {f.role} file missing",
                where=f.path,
                hint=f"run `produce {r.episode.id}` to build it",
            )
    if r.duration <= 0:
        raise PublishError(f"{r.episode.id}: the audio has no duration", hint=f"run `produce master {r.episode.id}`")


class _Uploader:
    """Uploads (or, in a dry run, plans) objects and keeps the tally."""

    def __init__(self, store: Store, *, dry_run: bool, progress: ProgressFn) -> None:
        self.store = store
        self.dry_run = dry_run
        self.progress = progress
        self.bytes_uploaded = 0

    def file(
        self, key: str, path: Path, digest: FileDigest, content_type: str, cache_control: str, known_etag: str | None
    ) -> StoredObject:
        if self.dry_run:
            found = self.store.existing(
                key, digest, content_type=content_type, cache_control=cache_control, known_etag=known_etag
            )
            if found is not None:
                return found
            return StoredObject(
                key, self.store.url(key), digest.size, digest.sha256, content_type, cache_control, None, "", False
            )
        obj = self.store.upload_file(
            key,
            path,
            content_type=content_type,
            cache_control=cache_control,
            digest=digest,
            known_etag=known_etag,
            progress=self.progress,
        )
        if obj.uploaded:
            self.bytes_uploaded += obj.size
            log.debug("uploaded %s (%d bytes, verified by %s)", self.store.describe_key(key), obj.size, obj.verified_by)
        else:
            log.debug("present %s (verified by %s)", self.store.describe_key(key), obj.verified_by)
        return obj

    def data(self, key: str, data: bytes, content_type: str, cache_control: str) -> None:
        if self.dry_run:
            return
        obj = self.store.put_bytes(key, data, content_type=content_type, cache_control=cache_control)
        self.bytes_uploaded += obj.size
        log.debug("wrote %s (%d bytes, verified by %s)", self.store.describe_key(key), obj.size, obj.verified_by)


def _action(obj: StoredObject, dry_run: bool) -> str:
    if dry_run:
        return "keep" if obj.verified_by else "upload"
    return "uploaded" if obj.uploaded else "present"


def _stable(m: Manifest) -> Any:
    """The parts of a manifest that matter: rewrite it only when they change (keeps the feed byte-stable)."""
    files = [f.model_dump(exclude={"etag", "verified_by"}) for f in m.files]
    return (m.guid, m.item.model_dump(mode="json"), files)


def _show_manifest(show: ShowConfig, store: Store, up: _Uploader) -> tuple[ShowManifest, bool]:
    """Upload the show's cover art and return ``show.json`` (and whether it changed)."""
    key = store.key(SHOW_MANIFEST_NAME)
    data = store.get_bytes(key)
    old = ShowManifest.parse(data, store.describe_key(key)) if data is not None else None
    art = show.show.artwork
    if not Path(art).is_file():
        raise PublishError("the show's cover art is missing", where=art, hint="fix show.artwork in show.toml")
    fmt = _sniff_image(art)
    f = EpisodeFile("cover", Path(art), fmt)
    digest = store.digest(f.path)
    akey = _object_key(store, f, digest, "")
    ctype = _content_type(f)
    known = old.artwork.etag if old and old.artwork.key == akey and old.artwork.sha256 == digest.sha256 else None
    obj = up.file(akey, f.path, digest, ctype, store.settings.media_cache_control, known)
    # podcast:guid is assigned once for the life of the show: keep the one in the bucket, even if the feed moved.
    guid = show.feed.podcast_guid or (old.podcast_guid if old else podcast_guid(show.show.feed_url))
    if old and old.podcast_guid != guid:
        log.warning("feed.podcast_guid %s replaces %s recorded in %s", guid, old.podcast_guid, key)
    new = ShowManifest(
        podcast_guid=guid,
        feed_url=show.show.feed_url,
        artwork=_manifest_entry("cover", fmt, f.path.name, akey, digest, ctype, store, obj),
    )
    changed = old is None or (
        old.podcast_guid,
        old.feed_url,
        old.artwork.key,
        old.artwork.sha256,
    ) != (new.podcast_guid, new.feed_url, new.artwork.key, new.artwork.sha256)
    return (new if changed or old is None else old), changed


@dataclass(frozen=True)
class _EpisodeResult:
    release: Release
    key: str
    written: bool
    files: list[PublishedFile]
    manifest: Manifest


def _publish_episode(
    r: Release, show: ShowConfig, store: Store, up: _Uploader, show_guid: str, *, now: dt.datetime, scratch: Path
) -> _EpisodeResult:
    """Upload (or plan) one release's files, then its manifest; the feed is left to the caller."""
    ep = r.episode
    mkey = _manifest_key(store, ep.id)
    old = _readable_manifest(store, mkey)
    if old is not None and old.episode_id != ep.id:
        raise FeedError(f"the manifest is for {old.episode_id}, not {ep.id}", where=store.describe_key(mkey))
    # The item guid never changes: the episode config's (carried over from an old host) wins, else the one the
    # manifest recorded on the first publish, else a new one.
    guid = ep.guid or (old.guid if old else item_guid(show_guid, ep.id))
    if old is not None and old.guid != guid:
        log.warning(
            "%s: the guid changes from %s to %s (episode config): apps see a new episode", ep.id, old.guid, guid
        )

    # Keys carry content hashes, so the notes link to the published URLs of their sibling files (transcript.html,
    # ...): they are written again with those links, then hashed and uploaded after everything they may link to.
    # The transcript page's player plays the published MP3 the same way, and is itself one of the notes' links; so
    # does a published report's player.
    sources = {i: f.path for i, f in enumerate(r.files)}
    page = next((i for i, f in enumerate(r.files) if f.role == "transcript" and f.format == "html"), None)
    report = next((i for i, f in enumerate(r.files) if f.role == "report"), None)
    late = {i for i, f in enumerate(r.files) if f.role == "notes" or (i == page and r.render_page)}
    late |= {report} if report is not None and r.render_report else set()
    digests = {i: store.digest(f.path) for i, f in enumerate(r.files) if i not in late}

    def url(i: int) -> str:
        return store.url(_object_key(store, r.files[i], digests[i], ep.id))

    links = {r.files[i].path.name: url(i) for i in digests}
    if page is not None and r.render_page:
        sources[page] = r.render_page(links, scratch)
        digests[page] = store.digest(sources[page])
        links[r.files[page].path.name] = url(page)
    if report is not None and r.render_report:
        sources[report] = r.render_report(links, scratch)
        digests[report] = store.digest(sources[report])
    notes = r.render_notes(links, scratch) if r.render_notes else None
    linked = {"md": notes.markdown, "html": notes.html} if notes else {}
    for i, f in enumerate(r.files):
        if f.role == "notes":
            sources[i] = linked.get(f.format, f.path)
            digests[i] = store.digest(sources[i])
    stored: dict[int, tuple[str, StoredObject]] = {}
    for i in sorted(sources, key=lambda i: (r.files[i].role == "notes", i)):
        f, digest = r.files[i], digests[i]
        key = _object_key(store, f, digest, ep.id)
        prev = next((o for o in old.files if o.key == key and o.sha256 == digest.sha256), None) if old else None
        cc = store.settings.media_cache_control
        stored[i] = key, up.file(key, sources[i], digest, _content_type(f), cc, prev.etag if prev else None)
    done: list[PublishedFile] = []
    entries: list[ManifestFile] = []
    for i, f in enumerate(r.files):  # in the release's order
        (key, obj), digest, ctype = stored[i], digests[i], _content_type(f)
        done.append(
            PublishedFile(
                f.role, f.format, key, obj.url, digest.size, digest.sha256, ctype, _action(obj, up.dry_run),
                obj.verified_by or None,
            )
        )  # fmt: skip
        if not any(e.key == key for e in entries):
            entries.append(_manifest_entry(f.role, f.format, f.path.name, key, digest, ctype, store, obj))
    manifest = Manifest(
        episode_id=ep.id,
        guid=guid,
        first_published=old.first_published if old else now,
        updated=now,
        item=_item(r, show, notes=notes.article if notes else None),
        files=tuple(entries),
    )
    # Rewrite the manifest only when something in it changed: the feed (built from it) then stays byte-identical.
    written = old is None or _stable(old) != _stable(manifest)
    if written:
        up.data(mkey, _json_bytes(manifest.to_json()), "application/json", store.settings.manifest_cache_control)
    else:
        assert old is not None
        manifest = old
    return _EpisodeResult(r, mkey, written and not up.dry_run, done, manifest)


def publish(
    releases: Sequence[Release],
    show: ShowConfig,
    *,
    store: Store | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    progress: ProgressFn = null_progress,
    update_feed: bool = True,
    withdraw: Collection[str] = (),
) -> Published:
    """Publish ``releases``: upload and verify their files, write their manifests, then rebuild the feed once.

    ``update_feed=False`` (a batch task) stops after the manifests: show.json and the feed are left to one later
    call (``publish([], show)`` rebuilds the feed from every manifest in the bucket).

    ``store`` defaults to the one ``show.storage`` describes (the local folder without an endpoint). Episodes dated
    after ``now`` are uploaded but stay out of the feed until a later run (``produce publish --due``) on or after
    their date; an episode already in the live feed stays there even if re-dated into the future, unless its id is in
    ``withdraw`` (the explicit request, logged). With ``dry_run`` nothing is written: the result says what would be
    uploaded. One run at a time per publish target (a lock, :func:`fsutil.hold_lock`). Raises
    :class:`StorageError` / :class:`FeedError` / :class:`PublishError`; the live feed is never touched on failure.
    """
    t0 = time.perf_counter()
    now = _now(now)
    for r in releases:
        _check_release(r)
    # The producer's report lists the recogniser's least-sure words and the master's internal figures: it goes out
    # with the episode only when the show asks ([report] publish = true, docs/report.md).
    if not show.report.publish:
        releases = [dataclasses.replace(r, files=tuple(f for f in r.files if f.role != "report")) for r in releases]
    # Cover art keys end in the extension its content has (Apple: .jpg or .png matching the image).
    releases = [
        dataclasses.replace(
            r,
            files=tuple(EpisodeFile(f.role, f.path, _sniff_image(f.path)) if f.role == "cover" else f for f in r.files),
        )
        for r in releases
    ]
    ids = [r.episode.id for r in releases]
    if len(set(ids)) != len(ids):
        raise PublishError(f"episode listed twice: {', '.join(sorted({i for i in ids if ids.count(i) > 1}))}")
    store = store or open_store(show.storage)
    demos = sorted(r.episode.id for r in releases if r.episode.demo)
    if demos and not store.is_local:
        raise PublishError(
            f"{', '.join(demos)}: a demo episode (demo = true) is never published to a bucket",
            where=store.description,
            hint="publish it into the local folder (no storage endpoint or bucket), or remove demo = true from its "
            "config if it is a real episode",
        )
    store.check()
    # One run per publish target at a time: two would race on the manifests and the feed. The lock is the target's
    # own (endpoint, bucket and prefix; a local folder holds its lock), so other shows and other stores never wait.
    # A batch task (update_feed=False) writes only its own episodes' objects and manifests, never the feed: it
    # locks those episodes, so a cluster's tasks on one machine publish side by side.
    scope = "feed" if update_feed else "episodes-" + hashlib.sha256(" ".join(sorted(ids)).encode()).hexdigest()[:16]
    what = f"the publish target {store.description}" + ("" if update_feed else f" (episodes {' '.join(sorted(ids))})")
    with fsutil.hold_lock(store.lock_path(scope), what):
        return _publish_locked(releases, show, store, now, dry_run, progress, update_feed, withdraw, t0)


def _publish_locked(
    releases: Sequence[Release],
    show: ShowConfig,
    store: Store,
    now: dt.datetime,
    dry_run: bool,
    progress: ProgressFn,
    update_feed: bool,
    withdraw: Collection[str],
    t0: float,
) -> Published:
    up = _Uploader(store, dry_run=dry_run, progress=progress)
    show_manifest, show_changed = _show_manifest(show, store, up)

    manifests: dict[str, Manifest] = {}
    results: list[_EpisodeResult] = []
    with fsutil.temporary_folder("publish") as scratch:
        for r in releases:
            res = _publish_episode(r, show, store, up, show_manifest.podcast_guid, now=now, scratch=scratch)
            manifests[r.episode.id] = res.manifest
            results.append(res)

    feed_key = _feed_key(store, show)
    left_out: tuple[LeftOut, ...] = ()
    if not update_feed:
        # A batch task: objects and manifest only. The driver rebuilds the feed once, last.
        xml = store.get_bytes(feed_key) or b""
        feed_changed = False
    else:
        # Only now, with every file and manifest verified, does the show manifest change and the feed get rebuilt.
        if show_changed:
            up.data(
                store.key(SHOW_MANIFEST_NAME),
                _json_bytes(show_manifest.to_json()),
                "application/json",
                store.settings.manifest_cache_control,
            )
        everything, unreadable = _all_manifests(store, manifests)
        # One bad manifest never blocks the others: it is left out of the feed, reported, and the rest go in.
        live_feed = store.get_bytes(feed_key)
        fit, unfit = screen(
            list(everything.values()),
            where=lambda i: store.describe_key(_manifest_key(store, i)),
            live=live_enclosures(live_feed),
            url=store.url,
        )
        left_out = tuple(sorted((*unreadable, *unfit), key=lambda x: x.episode_id))
        for x in left_out:
            log.warning("%s", x)
        keep = _kept_live(live_feed, fit, now, withdraw)
        xml = build_feed(
            show.show,
            fit,
            show_manifest=show_manifest,
            url=store.url,
            settings=show.feed,
            now=now,
            keep=keep,
        )
        current = store.get_bytes(feed_key)
        feed_changed = current != xml
        if feed_changed:
            up.data(feed_key, xml, "application/rss+xml; charset=utf-8", show.feed.cache_control)
    feed_url = store.url(feed_key)
    if feed_url != show.show.feed_url:
        log.warning("the feed is served at %s but show.feed_url says %s", feed_url, show.show.feed_url)
    in_feed = live_guids(xml)
    episodes = tuple(
        PublishedEpisode(
            episode_id=r.episode.id,
            guid=m.guid,
            publish_date=r.episode.publish_date,
            manifest_key=mkey,
            manifest_written=changed,
            files=tuple(done),
            live=m.guid in in_feed and not dry_run,
            scheduled=r.episode.publish_date > now,
        )
        for r, mkey, changed, done, m in ((x.release, x.key, x.written, x.files, x.manifest) for x in results)
    )
    for e in episodes:
        sent = [f for f in e.files if f.action == "uploaded"]
        log.info(
            "%s: %d file(s) uploaded (%d bytes), %d already there, all verified; %s",
            e.episode_id,
            len(sent),
            sum(f.size for f in sent),
            len(e.files) - len(sent),
            "live" if e.live else f"joins the feed on {e.publish_date.isoformat()}" if e.scheduled else "not live",
        )
    return Published(
        target=store.description,
        dry_run=dry_run,
        episodes=episodes,
        feed_key=feed_key,
        feed_url=feed_url,
        feed_updated=feed_changed,
        feed_items=len(in_feed),
        podcast_guid=show_manifest.podcast_guid,
        bytes_uploaded=up.bytes_uploaded,
        seconds=time.perf_counter() - t0,
        now=now,
        left_out=left_out,
    )


def _kept_live(
    feed: bytes | None, manifests: Iterable[Manifest], now: dt.datetime, withdraw: Collection[str]
) -> set[str]:
    """Guids of the live feed that stay in it: all of them, except episodes named in ``withdraw``."""
    live = live_guids(feed)
    keep = set()
    for m in manifests:
        if m.guid not in live:
            continue
        if m.episode_id in withdraw:
            log.warning("%s: withdrawn from the feed on request (its files stay in the bucket)", m.episode_id)
            continue
        keep.add(m.guid)
        if m.item.publish_date > now:
            log.warning(
                "%s is live but now dated %s, in the future: it stays in the feed (publish it with --withdraw to take "
                "it out)", m.episode_id, m.item.publish_date.isoformat(),
            )  # fmt: skip
    return keep


def _json_bytes(obj: Any) -> bytes:
    import json

    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _item(r: Release, show: ShowConfig, *, notes: Article | None) -> ManifestItem:
    ep = r.episode
    persons = tuple(ManifestPerson.model_validate(p.model_dump()) for p in (*ep.hosts, *ep.guests))
    return ManifestItem(
        title=ep.title,
        subtitle=ep.subtitle,
        summary=ep.summary,
        # Apps show the item's <title> above content:encoded: the article's own title would repeat it.
        notes_html=notes.html(title=False) if notes else None,
        link=ep.link,
        publish_date=ep.publish_date,
        duration=r.duration,
        number=ep.number,
        season=ep.season,
        episode_type=ep.episode_type,
        explicit=ep.explicit,
        persons=persons,
        chapters=tuple(ManifestChapter(start=c.start, title=c.title) for c in r.chapters),
        transcript_language=r.transcript_language or show.show.language,
    )


def _all_manifests(store: Store, fresh: dict[str, Manifest]) -> tuple[dict[str, Manifest], list[LeftOut]]:
    """Every episode manifest in the bucket (this run's from memory), keyed by episode id, and the ones that cannot
    be read (not JSON, not a manifest), each named by its folder: one corrupt manifest never hides the others.

    One listing of the episode folders, then the manifests fetched in parallel (boto3 clients are thread-safe).
    """
    from concurrent.futures import ThreadPoolExecutor

    under = store.key("episodes") + "/"
    names = [name for name in store.list_folders(under) if name not in fresh]

    def read(name: str) -> Manifest | LeftOut | None:
        key = f"{under}{name}/{MANIFEST_NAME}"
        try:
            return _read_manifest(store, key)
        except FeedError as e:
            where = store.describe_key(key)
            return LeftOut(name, where, e.message, left_out_hint(name, where))

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(read, names))
    out = dict(fresh)
    unreadable: list[LeftOut] = []
    for m in found:
        if isinstance(m, LeftOut):
            unreadable.append(m)
        elif m is not None and m.episode_id not in out:
            out[m.episode_id] = m
    return out, unreadable


# --------------------------------------------------------------------------------------------------------- due


def due(
    episodes: Sequence[EpisodeConfig],
    show: ShowConfig,
    *,
    store: Store | None = None,
    now: dt.datetime | None = None,
) -> tuple[DueEpisode, ...]:
    """The episodes whose publish date is at or before ``now`` and that are not live, oldest first.

    Live means: the bucket holds the episode's manifest and the live feed lists its guid. The bucket is the only
    state, so a fresh CI runner gets the same answer as the machine that published last.
    """
    now = _now(now)
    store = store or open_store(show.storage)
    store.check()
    live = live_guids(store.get_bytes(_feed_key(store, show)))
    out: list[DueEpisode] = []
    for ep in sorted(episodes, key=lambda e: (e.publish_date, e.id)):
        if ep.publish_date > now:
            continue
        if ep.demo and not store.is_local:
            log.info("%s is a demo (demo = true): never due for %s", ep.id, store.description)
            continue
        try:
            m = _read_manifest(store, _manifest_key(store, ep.id))
        except FeedError as e:
            # Publishing it again writes a readable manifest: the way out of an unreadable one.
            out.append(DueEpisode(ep.id, ep.publish_date, f"its manifest cannot be read ({e.message})"))
            continue
        if m is None:
            out.append(DueEpisode(ep.id, ep.publish_date, "not published yet"))
        elif m.guid not in live:
            out.append(DueEpisode(ep.id, ep.publish_date, "uploaded but not in the live feed"))
    return tuple(out)
