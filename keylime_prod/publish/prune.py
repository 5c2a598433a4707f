"""``produce prune``: delete the published objects nothing refers to any more.

Media keys carry their content's hash, so a re-dated or re-titled episode is published as new objects (a new MP3
when its tags change, new notes and transcripts) and the old ones stay: the live feed never points at a half-written
file. Once the new feed is live they are garbage. An object is kept when the episode manifests, ``show.json`` or the
live feed name it; everything else under ``<prefix>/episodes/`` and ``<prefix>/art/`` is listed, and deleted only
when asked (a dry run by default). Nothing outside those two folders is ever touched: not the feed, not the
manifests, not the raw recordings' inbox.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from .. import fsutil
from ..config import ShowConfig
from . import MANIFEST_NAME, SHOW_MANIFEST_NAME, _all_manifests, _feed_key
from .feed import ShowManifest
from .storage import Store, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune` found (and, unless ``dry_run``, deleted)."""

    target: str
    dry_run: bool
    kept: int
    unreferenced: tuple[tuple[str, int], ...]  # (key, size)
    seconds: float

    @property
    def bytes(self) -> int:
        """The size of the unreferenced objects."""
        return sum(size for _, size in self.unreferenced)

    def describe(self) -> str:
        """One closing line."""
        verb = "would delete" if self.dry_run else "deleted"
        more = " (run with --yes to delete them)" if self.dry_run and self.unreferenced else ""
        return (
            f"{self.target}: {verb} {len(self.unreferenced)} unreferenced object(s), {self.bytes / 1e6:.1f} MB; "
            f"{self.kept} kept{more}"
        )

    def to_json(self) -> dict[str, Any]:
        """``produce prune --json``."""
        return {
            "target": self.target,
            "dry_run": self.dry_run,
            "kept": self.kept,
            "bytes": self.bytes,
            "unreferenced": [{"key": k, "size": s} for k, s in self.unreferenced],
            "seconds": round(self.seconds, 3),
        }


def _feed_urls(xml: bytes | None) -> set[str]:
    """Every URL the live feed names (enclosures, transcripts, chapters, images)."""
    if not xml:
        return set()
    from lxml import etree

    try:
        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return set()
    urls = set()
    for el in root.iter():
        for attr in ("url", "href"):
            if el.get(attr):
                urls.add(el.get(attr))
        if etree.QName(el).localname == "url" and el.text:
            urls.add(el.text.strip())
    return urls


def prune(show: ShowConfig, *, store: Store | None = None, dry_run: bool = True) -> Pruned:
    """List (``dry_run``) or delete the objects under ``episodes/`` and ``art/`` that no manifest, ``show.json``
    or the live feed refers to. Runs under the publish target's lock, so it never races a publish."""
    t0 = time.perf_counter()
    store = store or open_store(show.storage)
    store.check()
    with fsutil.hold_lock(store.lock_path("feed"), f"the publish target {store.description}"):
        manifests, unreadable = _all_manifests(store, {})
        keep: set[str] = set()
        # An unreadable manifest may name any object in its folder: the whole folder stays until it is fixed.
        held = tuple(store.key("episodes", x.episode_id) + "/" for x in unreadable)
        for x in unreadable:
            log.warning("%s: unreadable, so nothing under it is pruned (%s)", x.key, x.reason)
        for m in manifests.values():
            keep.update(f.key for f in m.files)
            keep.add(store.key("episodes", m.episode_id, MANIFEST_NAME))
        data = store.get_bytes(store.key(SHOW_MANIFEST_NAME))
        if data is not None:
            keep.add(ShowManifest.parse(data, store.describe_key(store.key(SHOW_MANIFEST_NAME))).artwork.key)
        in_feed = _feed_urls(store.get_bytes(_feed_key(store, show)))
        found = store.list_keys(store.key("episodes") + "/") + store.list_keys(store.key("art") + "/")
        gone: list[tuple[str, int]] = []
        for key in found:
            if key in keep or key.startswith(held) or store.url(key) in in_feed:
                continue
            head = store.head(key)
            gone.append((key, head.size if head is not None else 0))
        if gone and not dry_run:
            store.delete([k for k, _ in gone])
            for k, size in gone:
                log.info("deleted %s (%d bytes)", store.describe_key(k), size)
    return Pruned(store.description, dry_run, len(found) - len(gone), tuple(gone), time.perf_counter() - t0)
