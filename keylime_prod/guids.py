"""Permanent identities of the show and its episodes (Podcasting 2.0 ``podcast:guid`` and item guids).

Both are UUIDv5, so the same inputs always give the same guid: the tag stage writes them into ID3 (TGID) and
publishing into the feed without either asking the other (docs/platform.md, "RSS feed").
"""

from __future__ import annotations

import uuid

#: Podcasting 2.0 ``podcast:guid``: UUIDv5 in this namespace of the feed URL without scheme and trailing slash
#: (the Podcasting 2.0 namespace specification, tag `<podcast:guid>`; linked from docs/platform.md, "The RSS feed").
PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")


def podcast_guid(feed_url: str) -> str:
    """The Podcasting 2.0 ``podcast:guid`` for ``feed_url``: UUIDv5 of the URL without scheme and trailing slashes."""
    bare = feed_url.split("://", 1)[-1].rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, bare))


def item_guid(show_guid: str, episode_id: str) -> str:
    """A permanent item guid: UUIDv5 of the episode id in the show's ``podcast:guid`` namespace.

    Written into the manifest on the first publish and read back from it ever after, so it never changes.
    """
    return str(uuid.uuid5(uuid.UUID(show_guid), episode_id))
