"""``produce new``: the next episode's config, written from the show and the latest episode.

A producer starts each week here instead of copying last week's file by hand: the next number, the date one
cadence (``show.cadence_days``, a week by default) after the latest episode, the season, the hosts, and an empty
``recordings`` list with a comment on how to fill it (``produce upload-raw`` fills it from the bucket's inbox). The
file does not load until it names its audio, so an unfinished episode can never be built or published by accident.
Demo episodes (``demo = true``) are not counted.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import fsutil
from ..config import check_episode_id, episode_path, list_episodes, load_episode, load_show, peek_episode
from ..errors import ConfigError, KeylimeError

#: Episodes are dated at this hour (UTC) when there is no earlier one to follow: the workflow runs at 06:17.
DEFAULT_HOUR_UTC = 6


@dataclass(frozen=True)
class NewEpisode:
    """What :func:`new_episode` wrote."""

    episode_id: str
    path: Path
    number: int
    season: int | None
    publish_date: dt.datetime
    after: str | None  # the episode it follows

    def to_json(self) -> dict[str, Any]:
        """``produce new --json``."""
        return {
            "episode": self.episode_id,
            "config": str(self.path),
            "number": self.number,
            "season": self.season,
            "publish_date": self.publish_date.isoformat(),
            "after": self.after,
        }

    def describe(self) -> str:
        """One line for people."""
        after = f", {self.after} + cadence" if self.after else ""
        return f"{self.episode_id}: number {self.number}, {self.publish_date:%Y-%m-%d %H:%M} UTC{after} -> {self.path}"


@dataclass(frozen=True)
class _Known:
    id: str
    number: int
    season: int | None
    publish_date: dt.datetime


def _known(configs_dir: Path, eid: str) -> _Known | None:
    """An episode's id, number, season and date; from the raw TOML when the config does not load yet (one that
    ``produce new`` wrote and nobody has filled in still holds its number)."""
    try:
        ep = load_episode(configs_dir, eid)
    except KeylimeError:
        raw = peek_episode(configs_dir, eid)
        if raw is None or raw["demo"]:
            return None  # `produce check` reports it
        return _Known(eid, raw["number"], raw["season"], raw["publish_date"])
    return None if ep.demo else _Known(ep.id, ep.number, ep.season, ep.publish_date)


def _latest(configs_dir: Path) -> _Known | None:
    found = [k for k in (_known(configs_dir, eid) for eid in list_episodes(configs_dir)) if k is not None]
    return max(found, key=lambda k: (k.publish_date, k.number), default=None)


def _next_id(latest: _Known | None, number: int) -> str:
    # Follow the show's naming: episode-258 -> episode-259; anything else -> episode-<number>.
    if latest is not None:
        m = re.fullmatch(r"(.*?)(\d+)", latest.id)
        if m and int(m.group(2)) == latest.number:
            return f"{m.group(1)}{number}"
    return f"episode-{number}"


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _people(table: str, people: Any) -> str:
    out = []
    for p in people:
        lines = [f"[[{table}]]", f"name = {_toml_str(p.name)}", f"role = {_toml_str(p.role)}"]
        for key in ("group", "img", "href"):
            value = getattr(p, key)
            if value and not (key == "group" and value == "cast"):
                lines.append(f"{key} = {_toml_str(value)}")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def new_episode(configs_dir: Path, episode_id: str | None = None, *, now: dt.datetime | None = None) -> NewEpisode:
    """Write ``configs/episodes/<id>.toml`` for the next episode and return what was written.

    ``episode_id`` defaults to the latest episode's id with the next number (``episode-259`` after ``episode-258``).
    Raises :class:`ConfigError` if that file exists (it is never overwritten) or the show cannot be read.
    """
    configs_dir = Path(configs_dir)
    show = load_show(configs_dir / "show.toml")
    latest = _latest(configs_dir)
    number = latest.number + 1 if latest else 1
    season = latest.season if latest else None
    if latest is not None:
        date = latest.publish_date.astimezone(dt.timezone.utc) + dt.timedelta(days=show.show.cadence_days)
    else:
        now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        date = (now + dt.timedelta(days=show.show.cadence_days)).replace(
            hour=DEFAULT_HOUR_UTC, minute=0, second=0, microsecond=0
        )
    eid = check_episode_id(episode_id or _next_id(latest, number))
    path = episode_path(configs_dir, eid)
    if path.exists():
        raise ConfigError(
            "already exists: produce new never overwrites a config", where=path, hint="edit it, or give another id"
        )
    hosts = show.show.hosts
    if not hosts:
        raise ConfigError(
            "the show has no hosts to start the episode with",
            where=configs_dir / "show.toml",
            hint="add [[show.hosts]] tables",
        )
    when = date.strftime("%Y-%m-%dT%H:%M:%SZ")
    season_line = f"season = {season}\n" if season is not None else ""
    text = f"""\
# {show.show.title} episode {number}, written by `produce new`. Relative paths resolve against this folder.
# Fill in the title, summary and recordings, then `produce check` and `produce {eid}` (README, "A week").
number = {number}
{season_line}title = "TODO: the episode's title"
episode_type = "full"
# {show.show.cadence_days} day(s) after {latest.id if latest else "today"} (show.cadence_days); UTC.
publish_date = {when}
summary = \"\"\"TODO: two or three sentences for the feed, the tags and the show notes.\"\"\"
key_points = []
glossary = []
# The raw recordings, in order. `produce upload-raw {eid} FILE...` puts them in the bucket's private inbox and
# writes this list and their [[raw]] tables (size and SHA-256); local files work too: "../raw/{eid}/part-1.flac".
# The episode does not load (nor build, nor publish) until it names its audio.
recordings = []

# The hosts of the show: remove who is not on this episode; add [[guests]] tables for guests.
{_people("hosts", hosts)}
"""
    fsutil.write_text(path, text)
    return NewEpisode(eid, path, number, season, date, latest.id if latest else None)
