"""The tag stage: a tagged copy of the master, with ID3 text, cover art and chapters.

This module decides *what* the tag says (:func:`tag_data`, from the episode and show config);
:mod:`keylime_prod.tags.id3` (the one ID3 boundary) decides how it is written: ID3v2.3 by default (the version most
players read), v2.4 by config, chapters as CHAP frames under one top-level, ordered CTOC.

Artwork is checked, never trusted and never re-encoded (:func:`check_artwork`, Apple's artwork rules). The master is
only read: the tagged MP3 is written atomically to its own path (``BuildLayout.tagged_mp3``), stripped of any old tag
(so writing twice leaves one set of frames), optionally checked, then moved into place with ``os.replace``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path

from .. import __version__, fsutil
from ..audio.artefact import Master
from ..chapters.artefact import Chapters
from ..config import EpisodeConfig, ShowInfo, TagSettings
from ..errors import TagError
from ..guids import item_guid, podcast_guid
from ..layout import BuildLayout
from . import id3
from .artefact import Tagged
from .artwork import Artwork, check_artwork

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------------ frames


def episode_url(episode: EpisodeConfig, show: ShowInfo) -> str:
    """The episode's web page: its ``link``, else the show website."""
    return episode.link or show.website


def episode_guid(episode: EpisodeConfig, show: ShowInfo, show_guid: str | None = None) -> str:
    """The iTunes podcast id (TGID): the item ``<guid>`` the feed gives the episode, so apps that match the two see one
    episode. That is the episode config's ``guid``, else the UUIDv5 of the episode id in the show's
    ``podcast:guid`` (``show_guid``: ``[feed] podcast_guid``, else derived from ``feed_url``), as publishing assigns.
    """
    return episode.guid or item_guid(show_guid or podcast_guid(show.feed_url), episode.id)


def tag_data(
    master: Master,
    episode: EpisodeConfig,
    show: ShowInfo,
    settings: TagSettings,
    artwork: Artwork,
    *,
    chapters: Chapters | None = None,
    transcript: str | None = None,
    chapter_images: dict[str, Artwork] | None = None,
    show_guid: str | None = None,
) -> id3.TagData:
    """What the tag says, from the config and the artefacts (pure: reads nothing but what it is given)."""
    url = episode_url(episode, show)
    return id3.TagData(
        title=episode.title,
        people=", ".join(p.name for p in (*episode.hosts, *episode.guests)),
        author=show.author,
        album=show.title,
        track=str(episode.number),
        genre=settings.genre,
        description=episode.summary,
        copyright=show.copyright,
        website=show.website,
        url=url,
        guid=episode_guid(episode, show, show_guid),
        feed_url=show.feed_url,
        encoded_by=settings.encoded_by,
        encoder_settings=_encoder_settings(master),
        length_ms=int(master.duration * 1000),
        cover_mime=artwork.mime,
        cover=artwork.data,
        date=episode.publish_date.astimezone(dt.timezone.utc),
        language=show.language,
        version=settings.id3_version,
        subtitle=episode.subtitle,
        lyrics=transcript if settings.include_lyrics else None,
        chapters=chapters.marks if chapters is not None else (),
        chapter_images={k: (a.mime, a.data) for k, a in (chapter_images or {}).items()},
    )


def _encoder_settings(master: Master) -> str:
    ff = master.tools.get("ffmpeg")
    via = f" via ffmpeg {ff}" if ff else ""
    return f"LAME{via}, {master.bitrate_kbps} kbps CBR, {master.sample_rate} Hz; keylime-prod {__version__}"


# ------------------------------------------------------------------------------------------------------ stage


def write_tags(
    master: Master,
    episode: EpisodeConfig,
    show: ShowInfo,
    settings: TagSettings,
    layout: BuildLayout | None = None,
    *,
    chapters: Chapters | None = None,
    transcript: str | None = None,
    check_file: Callable[[Path], None] | None = None,
    show_guid: str | None = None,
) -> Tagged:
    """Write a tagged copy of the master to ``layout.tagged_mp3``, atomically, and ``layout.tagged_json``.

    The master MP3 is only read, so its ``audio_sha256`` stays true; the tagged file is its own artefact with its
    own hash. ``layout`` defaults to the folder of ``master.json``. The cover is the episode's artwork, else the
    show's, checked by :func:`check_artwork`. ``transcript`` becomes USLT when ``settings.include_lyrics``.
    ``check_file`` is called on the tagged temporary file before it takes its final name (the pipeline passes the
    chapter check), so a file that fails it never gets there. Writing twice leaves one set of frames. ``show_guid``
    is the show's ``podcast:guid`` when configured (``TGID`` is the feed's item guid: :func:`episode_guid`).
    """
    layout = layout or BuildLayout(master.report.parent, master.episode_id)
    art_path = episode.artwork or show.artwork
    artwork = check_artwork(art_path)
    chapter_images: dict[str, Artwork] = {}
    for m in chapters.marks if chapters else ():
        if m.img and not m.img.startswith(("http://", "https://")):
            chapter_images[m.img] = check_artwork(Path(m.img), cover=False)
    data = tag_data(
        master, episode, show, settings, artwork, chapters=chapters, transcript=transcript,
        chapter_images=chapter_images, show_guid=show_guid,
    )  # fmt: skip
    if not master.mp3.is_file():
        raise TagError("the mastered MP3 is missing", where=master.mp3, hint=f"run `produce master {episode.id}`")
    mp3 = layout.tagged_mp3
    id3.write_tag(master.mp3, mp3, id3.build_tag(data), version=settings.id3_version, check_file=check_file)
    frames = id3.frame_keys(mp3)
    result = Tagged(
        mp3=mp3,
        id3_version=settings.id3_version,
        frames=frames,
        chapters=len(chapters.marks) if chapters else 0,
        sha256=fsutil.sha256_file(mp3),
        size_bytes=os.path.getsize(mp3),
        artwork=artwork.path.name,
        report=layout.tagged_json,
    )
    fsutil.write_json(layout.tagged_json, result.to_json())
    log.info(
        "%s: tagged ID3v2.%d, %d frames, %d chapters, cover %dx%d %s",
        episode.id, settings.id3_version, len(frames), result.chapters, artwork.width, artwork.height, artwork.format,
    )  # fmt: skip
    return result


def load_tagged(layout: BuildLayout) -> Tagged | None:
    """The tag stage's result, or ``None`` when it is missing or the tagged MP3 changed since."""
    if not layout.tagged_json.is_file():
        return None
    tagged = Tagged.load(layout.tagged_json)
    if not tagged.mp3.is_file() or fsutil.sha256_file(tagged.mp3) != tagged.sha256:
        return None  # deleted or edited since: tag again
    return tagged
