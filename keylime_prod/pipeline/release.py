"""Publishing several episodes at once: ``produce publish EPISODE...`` and ``produce publish --due``.

The pipeline (:mod:`keylime_prod.pipeline`) is the one orchestrator of an episode's stages; this module only decides
*which* episodes go out and hands each one's :func:`~keylime_prod.pipeline.release_of` to the publishing stage, so
the feed changes once for all of them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import publish
from ..config import EpisodeConfig, Settings, list_episodes, load_episode, peek_episode
from ..errors import FeedError, KeylimeError, PublishError
from ..progress import ProgressFn, null_progress
from ..publish import storage
from . import STAGE_BY_NAME, STAGES, Run, release_of, run_episode, stale_stages

log = logging.getLogger(__name__)


def publish_episodes(
    settings: Settings,
    episode_ids: Sequence[str],
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    progress: ProgressFn | None = None,
    update_feed: bool = True,
    withdraw: bool = False,
) -> publish.Published:
    """Publish what the build folders of ``episode_ids`` hold (``produce publish EPISODE``); the feed changes once
    (not at all with ``update_feed=False``: a batch task leaves the feed to its driver). ``withdraw`` is the explicit
    request that lets these episodes leave the live feed when they are dated in the future.

    Nothing is built here: an episode without a build is a :class:`PublishError` that says how to make it. One bad
    episode never blocks the others: one that cannot be loaded or is not built, or whose manifest is left out of
    the feed, is raised only after every other one is published.
    """
    releases = []
    problems: list[KeylimeError] = []
    for episode_id in episode_ids:
        try:
            releases.append(_release(settings, episode_id, progress))
        except KeylimeError as e:
            if len(episode_ids) > 1:
                log.error("%s", e)
            problems.append(e)
    if not releases:
        raise problems[0]
    published = publish.publish(
        releases, settings.show, now=now, dry_run=dry_run, progress=progress or null_progress, update_feed=update_feed,
        withdraw=episode_ids if withdraw else (),
    )  # fmt: skip
    left = published.left_out_of(episode_ids)
    if left:
        raise _left_out_error(left)
    if problems:
        raise problems[0]
    return published


def _left_out_error(left: Sequence[publish.LeftOut]) -> FeedError:
    """The one line for requested episodes left out of the feed (the others were published)."""
    first = left[0]
    more = f" (and {', '.join(x.episode_id for x in left[1:])})" if len(left) > 1 else ""
    return FeedError(
        f"{first.episode_id} is left out of the feed{more}: {first.reason}; every other episode is in it",
        where=first.key,
        hint=first.hint,
    )


def _release(settings: Settings, episode_id: str, progress: ProgressFn | None) -> publish.Release:
    """The release of one built, up-to-date episode."""
    episode = load_episode(settings.configs_dir, episode_id)
    layout = settings.layout(episode_id)
    stale = stale_stages(settings, episode_id) if layout.root.is_dir() else []
    if stale:
        # Never mix: a new title in the feed over an MP3 and notes that still carry the old one.
        raise PublishError(
            f"the build of {episode_id} is out of date ({', '.join(stale)}: the config or an input changed since)",
            where=layout.root,
            hint=f"run `produce {episode_id}` to bring it up to date and publish it",
        )
    if not layout.root.is_dir():
        raise PublishError(
            f"{episode_id} has not been built", where=layout.root, hint=f"run `produce {episode_id}` to build it"
        )
    return release_of(Run(settings, episode, layout, STAGES, progress=progress or null_progress))


@dataclass(frozen=True)
class DueFailure:
    """An episode ``--due`` could not build or read; the others are published regardless."""

    episode_id: str
    error: KeylimeError


@dataclass(frozen=True)
class DueResult:
    """The outcome of :func:`publish_due`. ``unbuilt`` (dry run only): due episodes that would be built first."""

    now: dt.datetime
    due: tuple[publish.DueEpisode, ...]
    published: publish.Published | None
    failures: tuple[DueFailure, ...]
    unbuilt: tuple[str, ...] = ()
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        """A machine-readable summary for CI (``produce publish --due --json``)."""
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "due": [
                {"episode": d.episode_id, "publish_date": d.publish_date.isoformat(), "reason": d.reason}
                for d in self.due
            ],
            "unbuilt": list(self.unbuilt),
            "published": self.published.to_json() if self.published else None,
            "failures": [
                {"episode": f.episode_id, "error": str(f.error), "exit_code": f.error.exit_code} for f in self.failures
            ],
        }


def publish_due(
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
    on_stage: Callable[[str, str, str], None] | None = None,
) -> DueResult:
    """``produce publish --due``: every episode whose date has come and that is not live gets built (the stages
    whose cached result is missing or stale), uploaded and verified; then the feed is rebuilt once.

    The bucket is the only state consulted, so a fresh CI runner does the right thing. An episode that fails to
    load or build is reported in ``failures`` and the others still go out. ``on_stage`` gets
    ``(episode, stage, "start" | "done" | "cached")``. With ``dry_run`` nothing is built or written.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    store = storage.open_store(settings.show.storage)
    failures: list[DueFailure] = []
    episodes: list[EpisodeConfig] = []
    for episode_id in list_episodes(settings.configs_dir):
        try:
            episodes.append(load_episode(settings.configs_dir, episode_id))
        except KeylimeError as e:
            peek = peek_episode(settings.configs_dir, episode_id)
            if peek is not None and peek["publish_date"] > now:
                # Not due yet (say, a config `produce new` wrote, still without audio): no failure today.
                log.warning("%s (dated %s, not due yet): %s", episode_id, peek["publish_date"].isoformat(), e)
                continue
            log.error("%s: %s", episode_id, e)
            failures.append(DueFailure(episode_id, e))
    due = publish.due(episodes, settings.show, store=store, now=now)
    by_id = {e.id: e for e in episodes}
    releases: list[publish.Release] = []
    unbuilt: list[str] = []
    for d in due:
        try:
            if not dry_run:
                cb = (lambda stage, what, _id=d.episode_id: on_stage(_id, stage, what)) if on_stage else None
                needs = STAGE_BY_NAME["publish"].needs
                run_episode(settings, d.episode_id, upto=needs, progress=progress, on_stage=cb)
            run = Run(
                settings, by_id[d.episode_id], settings.layout(d.episode_id), STAGES, progress=progress or null_progress
            )
            releases.append(release_of(run))
        except PublishError as e:
            if dry_run:  # not built yet: a real run would build it first
                unbuilt.append(d.episode_id)
            else:
                log.error("%s: %s", d.episode_id, e)
                failures.append(DueFailure(d.episode_id, e))
        except KeylimeError as e:
            log.error("%s: %s", d.episode_id, e)
            failures.append(DueFailure(d.episode_id, e))
    published = None
    if releases:
        published = publish.publish(
            releases, settings.show, store=store, now=now, dry_run=dry_run, progress=progress or null_progress
        )
        # A due episode whose manifest was left out of the feed is not live: a failure, beside the published ones.
        for x in published.left_out_of({r.episode.id for r in releases}):
            failures.append(DueFailure(x.episode_id, _left_out_error([x])))
    return DueResult(now, due, published, tuple(failures), tuple(unbuilt), dry_run)
