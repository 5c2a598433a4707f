"""``produce check``: configs, every episode, the files they name, and ffmpeg, checked without building anything."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import ffmpeg
from ..config import EpisodeConfig, ShowConfig, episode_path, list_episodes, load_episode, load_show
from ..errors import AudioError, ConfigError, FFmpegError, KeylimeError
from ..guids import item_guid, podcast_guid
from ..tags import check_artwork

log = logging.getLogger(__name__)


@dataclass
class CheckReport:
    """What passed (one line each) and what failed (errors, each one line)."""

    lines: list[str] = field(default_factory=list)
    errors: list[KeylimeError] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary for ``--json``."""
        return {"ok": not self.errors, "passed": self.lines, "errors": [str(e) for e in self.errors]}


def _audio(path: Path | None, what: str, report: CheckReport) -> None:
    if path is None:
        return
    if not path.is_file():
        # A FIFO or a device exists: "not found" would send the user looking for a file that is there.
        wrong = path.exists() and not path.is_dir()
        message = f"{what} is not a regular file" if wrong else f"{what} not found"
        hint = "name the recording itself, not a pipe or device" if wrong else "check the path in the config"
        report.errors.append(AudioError(message, where=path, hint=hint))
        return
    try:
        info = ffmpeg.probe(path)
    except FFmpegError as e:
        report.errors.append(AudioError(f"{what} is not readable audio ({e.message})", where=path))
        return
    dur = f"{info.duration:.1f} s" if info.duration else "unknown length"
    report.lines.append(f"{what}: {path.name} ({info.codec}, {info.sample_rate} Hz, {info.channels} ch, {dur})")


def _artwork(path: Path, what: str, report: CheckReport) -> None:
    # The tag stage's own rules (Apple's), so a cover that would stop `produce` stops `produce check` too.
    try:
        art = check_artwork(path)
    except KeylimeError as e:
        report.errors.append(e)
        return
    report.lines.append(f"{what}: {path.name} ({art.format}, {art.width}x{art.height} px)")


def check_all(configs_dir: Path) -> CheckReport:
    """Check ffmpeg, ``show.toml``, every episode config and every file they name. Never raises for a failed
    check: each failure is collected so the user sees all of them at once."""
    report = CheckReport()
    try:
        exe = ffmpeg.binary()
        ver = ffmpeg.version()
        # A real encode proves libmp3lame is there, not only that a binary answers -version.
        args = ["-v", "error", "-f", "lavfi", "-i", "sine=d=0.1", "-c:a", "libmp3lame", "-f", "null", "-"]
        ffmpeg.run(args, timeout=ffmpeg.limits.EXCERPT_TIMEOUT_S)  # a tenth of a second of audio
        report.lines.append(f"ffmpeg {ver} with libmp3lame ({exe})")
    except KeylimeError as e:
        report.errors.append(e)
    configs_dir = Path(configs_dir)
    try:
        show = load_show(configs_dir / "show.toml")
    except KeylimeError as e:
        report.errors.append(e)
        return report
    report.lines.append(f"show.toml: {show.show.title}")
    _artwork(show.show.artwork, "artwork", report)
    for name in ("intro", "disclaimer", "outro"):
        _audio(getattr(show.assets, name), f"{name} asset", report)
    ids = list_episodes(configs_dir)
    if not ids:
        report.errors.append(KeylimeError("no episode configs", where=configs_dir / "episodes"))
    episodes: list[EpisodeConfig] = []
    for eid in ids:
        try:
            ep = load_episode(configs_dir, eid)
        except KeylimeError as e:
            report.errors.append(e)
            continue
        episodes.append(ep)
        audio = f"{len(ep.tracks)} track(s)" if ep.tracks else f"{len(ep.recordings)} recording(s)"
        demo = " (demo: local folder only, never published to a bucket)" if ep.demo else ""
        report.lines.append(f"{eid} ({ep.publish_date:%Y-%m-%d}, {audio}): {ep.title}{demo}")
        remote = {r.file: r for r in ep.raw}
        for i, r in enumerate(ep.recordings):
            _audio_or_remote(r, remote, f"{eid} recording {i + 1}", report)
        for i, t in enumerate(ep.tracks):
            _audio_or_remote(t.file, remote, f"{eid} tracks[{i}] ({t.speaker})", report)
        if ep.artwork is not None:
            _artwork(ep.artwork, f"{eid} artwork", report)
    report.errors.extend(duplicates(episodes, show, configs_dir))
    return report


def _audio_or_remote(path: Path, remote: dict[Path, Any], what: str, report: CheckReport) -> None:
    # A recording kept in the bucket's inbox (or at a URL) is fetched by the build; until then only its record shows.
    if not path.is_file() and path in remote:
        src = remote[path]
        report.lines.append(f"{what}: {path.name} not fetched yet ({src.key or src.url}, {src.size:,} bytes)")
        return
    _audio(path, what, report)


def effective_guid(ep: EpisodeConfig, show: ShowConfig) -> str:
    """The item ``<guid>`` ``ep`` gets when first published: its config's, else one derived from the show's
    ``podcast:guid`` (``feed.podcast_guid``, else the one ``show.feed_url`` gives)."""
    return ep.guid or item_guid(show.feed.podcast_guid or podcast_guid(show.show.feed_url), ep.id)


def duplicates(episodes: list[EpisodeConfig], show: ShowConfig, configs_dir: Path) -> list[ConfigError]:
    """One error per episode that shares its number (in its season) or its item guid with an earlier one.

    Apps list two items with one number as twins, and keep only one of two items with one guid. Demo episodes
    (``demo = true``) never reach a bucket's feed, so only their guids are compared.
    """
    errors: list[ConfigError] = []
    numbers: dict[tuple[int | None, int], str] = {}
    guids: dict[str, str] = {}
    for ep in sorted(episodes, key=lambda e: (e.publish_date, e.id)):
        where = episode_path(configs_dir, ep.id)
        if not ep.demo:
            slot = (ep.season, ep.number)
            if slot in numbers:
                season = f"season {ep.season}, " if ep.season is not None else ""
                errors.append(
                    ConfigError(
                        f"field number: {season}number {ep.number} is also {numbers[slot]}'s",
                        where=where,
                        hint="give each episode its own number (`produce new` picks the next one)",
                    )
                )
            else:
                numbers[slot] = ep.id
        guid = effective_guid(ep, show)
        if guid in guids:
            errors.append(
                ConfigError(
                    f"field guid: {guid!r} is also {guids[guid]}'s item guid: apps would keep only one of them",
                    where=where,
                    hint="remove the guid line of the episode it does not belong to",
                )
            )
        else:
            guids[guid] = ep.id
    return errors
