"""The tag stage: ID3 tags, cover art and chapters written into the mastered MP3 with mutagen.

ID3v2.3 by default (the version most players read), v2.4 by config. The frames: TIT2 title, TIT3 subtitle, TPE1
hosts (and guests), TPE2 and TALB the show, TRCK episode number, date (TYER/TDAT/TIME in v2.3, TDRC/TDRL in v2.4),
TCON genre, COMM and TDES description, APIC front cover, TCOP, WOAR show website, WOAF/WXXX episode page, the
iTunes podcast frames PCST/TGID/WFED, TENC/TSSE encoder, TLEN length, USLT transcript, and the chapters as CHAP
frames under one top-level, ordered CTOC (ID3v2 Chapter Frame Addendum; players ignore chapters without the CTOC).

Artwork is checked, never trusted and never re-encoded (:func:`check_artwork`, Apple's artwork rules). The MP3 is
tagged atomically: copied to a temporary file beside it, stripped of any old tag (so writing twice leaves one set
of frames), tagged, optionally verified, and moved onto the original name with ``os.replace``.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mutagen import MutagenError
from mutagen.id3 import (
    APIC,
    CHAP,
    COMM,
    CTOC,
    ID3,
    PCST,
    TALB,
    TCON,
    TCOP,
    TDAT,
    TDES,
    TDRC,
    TDRL,
    TENC,
    TGID,
    TIME,
    TIT2,
    TIT3,
    TLEN,
    TPE1,
    TPE2,
    TRCK,
    TSSE,
    TYER,
    USLT,
    WFED,
    WOAF,
    WOAR,
    WXXX,
    CTOCFlags,
    ID3NoHeaderError,
    ID3Tags,
    PictureType,
)
from mutagen.id3 import delete as delete_id3
from PIL import Image, UnidentifiedImageError

from . import __version__, fsutil
from .artefacts import Chapters, Master, Tagged
from .config import EpisodeConfig, ShowInfo, TagSettings
from .errors import TagError

log = logging.getLogger(__name__)

REPORT_NAME = "tagged.json"

#: Apple Podcasts artwork rules (docs/platform.md): square, 1400-3000 px, JPEG or PNG, RGB, no alpha.
ARTWORK_MIN_PX = 1400
ARTWORK_MAX_PX = 3000
_FORMATS = {"JPEG": ("image/jpeg", (".jpg", ".jpeg")), "PNG": ("image/png", (".png",))}
_ARTWORK_HINT = "export it again as a square RGB JPEG or PNG, 1400-3000 px; keylime-prod never re-encodes artwork"

#: ISO 639-1 -> ISO 639-2 for COMM/USLT, whose language field is three letters (ID3v2.3 section 4.11).
_LANG3 = {"en": "eng", "fr": "fra", "de": "deu", "es": "spa", "it": "ita", "pt": "por", "nl": "nld", "ja": "jpn"}
_UTF8 = 3  # ID3 text encoding; mutagen converts it to UTF-16 when saving v2.3, which has no UTF-8


# ------------------------------------------------------------------------------------------------------ artwork


@dataclass(frozen=True)
class Artwork:
    """An image file that passed :func:`check_artwork`, read once, bytes untouched."""

    path: Path
    format: str  # "JPEG" or "PNG"
    mime: str
    width: int
    height: int
    data: bytes


def check_artwork(path: Path, *, cover: bool = True) -> Artwork:
    """Check an image against Apple's artwork rules and return its bytes unchanged.

    Rules, in this order: a JPEG or PNG file; the extension matches the content; no alpha channel; RGB colour;
    and for a ``cover``: square, 1400 to 3000 px. Chapter images (``cover=False``) skip the size rules. Each
    violation is a one-line :class:`TagError` naming the rule.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TagError("artwork file not found", where=path, hint="fix the artwork path in the config") from None
    except OSError as e:
        raise TagError(f"cannot read artwork: {e.strerror}", where=path) from e
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or "unknown"
            mode = img.mode
            width, height = img.size
            transparency = "transparency" in img.info
            if fmt in _FORMATS:
                img.load()  # a truncated or corrupt file fails here rather than in a player
    except UnidentifiedImageError:
        raise TagError("artwork rule: must be a JPEG or PNG image (not an image file)", where=path,
                       hint=_ARTWORK_HINT) from None  # fmt: skip
    except (OSError, ValueError, SyntaxError) as e:
        raise TagError(f"artwork is corrupt: {e}", where=path, hint=_ARTWORK_HINT) from e
    if fmt not in _FORMATS:
        raise TagError(f"artwork rule: must be JPEG or PNG, this is {fmt}", where=path, hint=_ARTWORK_HINT)
    mime, exts = _FORMATS[fmt]
    if path.suffix.lower() not in exts:
        raise TagError(
            f"artwork rule: the extension must match the content: this is {fmt} named {path.suffix or '(none)'}",
            where=path,
            hint=f"rename it to {path.stem}{exts[0]} (and update the config) or export it as the format its name says",
        )
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or transparency:
        raise TagError(f"artwork rule: no alpha channel (transparency), this image is {mode}", where=path,
                       hint=_ARTWORK_HINT)  # fmt: skip
    if mode != "RGB":
        raise TagError(f"artwork rule: colour must be RGB, this image is {mode}", where=path, hint=_ARTWORK_HINT)
    if cover:
        if width != height:
            raise TagError(f"artwork rule: must be square, this is {width}x{height} px", where=path,
                           hint=_ARTWORK_HINT)  # fmt: skip
        if not ARTWORK_MIN_PX <= width <= ARTWORK_MAX_PX:
            raise TagError(
                f"artwork rule: {ARTWORK_MIN_PX}-{ARTWORK_MAX_PX} px square, this is {width}x{height} px",
                where=path,
                hint=_ARTWORK_HINT,
            )
    return Artwork(path=path, format=fmt, mime=mime, width=width, height=height, data=data)


# ------------------------------------------------------------------------------------------------------ frames


def _lang3(language: str) -> str:
    return _LANG3.get(language.split("-")[0].lower(), "und")  # "und": ISO 639-2 "undetermined"


def episode_url(episode: EpisodeConfig, show: ShowInfo) -> str:
    """The episode's web page: its ``link``, else the show website."""
    return episode.link or show.website


def episode_guid(episode: EpisodeConfig, show: ShowInfo) -> str:
    """The iTunes podcast id (TGID): the episode page, else ``<website>#<episode id>``; stable for the show's life."""
    return episode.link or f"{show.website.rstrip('/')}#{episode.id}"


def build_id3(
    master: Master,
    episode: EpisodeConfig,
    show: ShowInfo,
    settings: TagSettings,
    artwork: Artwork,
    *,
    chapters: Chapters | None = None,
    transcript: str | None = None,
    chapter_images: dict[str, Artwork] | None = None,
) -> ID3:
    """Build the complete ID3 tag in memory (pure: reads nothing but what it is given)."""
    tags = _ChapterOrderID3()
    lang = _lang3(show.language)
    url = episode_url(episode, show)
    people = ", ".join(p.name for p in (*episode.hosts, *episode.guests))
    utc = episode.publish_date.astimezone(dt.timezone.utc)
    when = utc.strftime("%Y-%m-%dT%H:%M:%S")
    text: list[Any] = [
        TIT2(encoding=_UTF8, text=[episode.title]),
        TPE1(encoding=_UTF8, text=[people]),
        TPE2(encoding=_UTF8, text=[show.author]),
        TALB(encoding=_UTF8, text=[show.title]),
        TRCK(encoding=_UTF8, text=[str(episode.number)]),
        TCON(encoding=_UTF8, text=[settings.genre]),
        COMM(encoding=_UTF8, lang=lang, desc="", text=[episode.summary]),
        TDES(encoding=_UTF8, text=[episode.summary]),  # iTunes podcast description
        TCOP(encoding=_UTF8, text=[show.copyright]),
        WOAR(url=show.website),
        WOAF(url=url),
        WXXX(encoding=_UTF8, desc="", url=url),
        PCST(value=1),  # iTunes: this file is a podcast episode
        TGID(encoding=_UTF8, text=[episode_guid(episode, show)]),  # iTunes podcast (episode) id
        WFED(encoding=_UTF8, url=show.feed_url),
        TENC(encoding=_UTF8, text=[settings.encoded_by]),
        TSSE(encoding=_UTF8, text=[_encoder_settings(master)]),
        TLEN(encoding=_UTF8, text=[str(int(master.duration * 1000))]),
        APIC(encoding=_UTF8, mime=artwork.mime, type=PictureType.COVER_FRONT, desc="Cover", data=artwork.data),
    ]
    if episode.subtitle:
        text.append(TIT3(encoding=_UTF8, text=[episode.subtitle]))
    if settings.id3_version == 4:
        # ID3v2.4 timestamps (section 4.2.5): recording time and release time.
        text += [TDRC(encoding=_UTF8, text=[when]), TDRL(encoding=_UTF8, text=[when])]
    else:
        # ID3v2.3 has no TDRC: year, DDMM and HHMM frames (ID3v2.3 section 4.2.1). Written here rather than left to
        # mutagen's update_to_v23(), which drops TIME when the minute is 0.
        text += [
            TYER(encoding=_UTF8, text=[utc.strftime("%Y")]),
            TDAT(encoding=_UTF8, text=[utc.strftime("%d%m")]),
            TIME(encoding=_UTF8, text=[utc.strftime("%H%M")]),
        ]
    if transcript and settings.include_lyrics:
        text.append(USLT(encoding=_UTF8, lang=lang, desc="", text=transcript))
    for frame in text:
        tags.add(frame)
    if chapters is not None and chapters.marks:
        ids = []
        for i, m in enumerate(chapters.marks):
            cid = f"chp{i}"
            ids.append(cid)
            subs: list[Any] = [TIT2(encoding=_UTF8, text=[m.title])]
            if m.url:
                subs.append(WXXX(encoding=_UTF8, desc="", url=m.url))
            if m.img and chapter_images and m.img in chapter_images:
                pic = chapter_images[m.img]
                subs.append(APIC(encoding=_UTF8, mime=pic.mime, type=PictureType.OTHER, desc=m.title[:64],
                                 data=pic.data))  # fmt: skip
            tags.add(
                CHAP(
                    element_id=cid,
                    start_time=round(m.start * 1000),
                    end_time=round(m.end * 1000),
                    # 0xFFFFFFFF: byte offsets unused, players use the times (Chapter Frame Addendum 3.1).
                    start_offset=0xFFFFFFFF,
                    end_offset=0xFFFFFFFF,
                    sub_frames=subs,
                )
            )
        tags.add(
            CTOC(
                element_id="toc",
                flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                child_element_ids=ids,
                sub_frames=[TIT2(encoding=_UTF8, text=["Chapters"])],
            )
        )
    if settings.id3_version == 3:
        tags.update_to_v23()  # mutagen: required before saving v2.3 (converts frames, recurses into CHAP/CTOC)
    return tags


class _ChapterOrderID3(ID3):
    """An ID3 tag that writes its CHAP frames in chronological order.

    mutagen orders frames by a priority list and then by size. ffmpeg (and the players built on it) list ID3
    chapters in file order, not by time, so the CHAP frames go last, sorted by start time; everything else keeps
    mutagen's order.
    """

    def _write(self, config: Any) -> bytearray:
        rest = ID3Tags()
        for f in self.values():
            if f.FrameID != "CHAP":
                rest.add(f)
        data = rest._write(config)
        for chap in sorted(self.getall("CHAP"), key=lambda f: (f.start_time, f.element_id)):
            one = ID3Tags()
            one.add(chap)
            data += one._write(config)
        return data


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
    *,
    chapters: Chapters | None = None,
    transcript: str | None = None,
    verify: Callable[[Path], None] | None = None,
) -> Tagged:
    """Tag ``master.mp3`` in place, atomically, and write ``tagged.json`` beside it.

    The cover is the episode's artwork, else the show's, checked by :func:`check_artwork`. ``transcript`` becomes
    USLT when ``settings.include_lyrics``. ``verify`` is called on the tagged temporary file before it replaces the
    original (the pipeline passes the chapter check), so a file that fails it never reaches the final name.
    Any old ID3 tag is removed first: writing twice leaves one set of frames.
    """
    art_path = episode.artwork or show.artwork
    artwork = check_artwork(art_path)
    chapter_images: dict[str, Artwork] = {}
    for m in chapters.marks if chapters else ():
        if m.img and not m.img.startswith(("http://", "https://")):
            chapter_images[m.img] = check_artwork(Path(m.img), cover=False)
    tags = build_id3(
        master, episode, show, settings, artwork, chapters=chapters, transcript=transcript,
        chapter_images=chapter_images,
    )  # fmt: skip
    mp3 = master.mp3
    if not mp3.is_file():
        raise TagError("the mastered MP3 is missing", where=mp3, hint=f"run `produce master {episode.id}`")
    try:
        with fsutil.atomic_path(mp3) as tmp:
            shutil.copyfile(mp3, tmp)
            try:
                delete_id3(tmp)  # old ID3v2 and ID3v1 tags: re-tagging must not duplicate frames
            except ID3NoHeaderError:
                pass
            # v1=0 removes any ID3v1 tag; its 30-byte fields would truncate titles and drop non-Latin-1 text.
            tags.save(tmp, v2_version=settings.id3_version, v1=0)
            if verify is not None:
                verify(tmp)
    except (MutagenError, OSError) as e:
        raise TagError(f"cannot write ID3 tags: {e}", where=mp3) from e
    frames = tuple(sorted(ID3(mp3, translate=False).keys()))
    report = mp3.parent / REPORT_NAME
    result = Tagged(
        mp3=mp3,
        id3_version=settings.id3_version,
        frames=frames,
        chapters=len(chapters.marks) if chapters else 0,
        sha256=fsutil.sha256_file(mp3),
        size_bytes=os.path.getsize(mp3),
        artwork=artwork.path,
        report=report,
    )
    fsutil.write_json(report, result.to_json())
    log.info(
        "%s: tagged ID3v2.%d, %d frames, %d chapters, cover %dx%d %s",
        episode.id, settings.id3_version, len(frames), result.chapters, artwork.width, artwork.height, artwork.format,
    )  # fmt: skip
    return result


def load_tagged(build_dir: Path) -> Tagged | None:
    """The tag stage's result from ``build_dir``, or ``None`` when it is missing or the MP3 changed since."""
    report = Path(build_dir) / REPORT_NAME
    if not report.is_file():
        return None
    tagged = Tagged.load(report)
    if not tagged.mp3.is_file() or fsutil.sha256_file(tagged.mp3) != tagged.sha256:
        return None  # re-mastered (untagged) or edited since: tag again
    return tagged


# ------------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class TagReadback:
    """What an MP3's ID3 tag holds, read back with mutagen as written (no v2.3 -> v2.4 translation)."""

    version: int  # 3 or 4
    frames: dict[str, list[str]]  # frame id (mutagen hash key) -> its text/URL values
    cover_mime: str | None
    cover: bytes | None
    chapter_ids: tuple[str, ...]


def read_tags(mp3: Path) -> TagReadback:
    """Read an MP3's ID3 tag back: version, every frame's text, the front cover, the CTOC's chapter ids."""
    try:
        tags = ID3(mp3, translate=False)
    except ID3NoHeaderError:
        raise TagError("no ID3 tag", where=mp3, hint="run `produce tag EPISODE`") from None
    except (MutagenError, OSError) as e:
        raise TagError(f"cannot read ID3 tags: {e}", where=mp3) from e
    frames: dict[str, list[str]] = {}
    for key, f in tags.items():
        if hasattr(f, "text"):
            frames[key] = [str(t) for t in (f.text if isinstance(f.text, list) else [f.text])]
        elif hasattr(f, "url"):
            frames[key] = [f.url]
        elif hasattr(f, "value"):
            frames[key] = [str(f.value)]
        else:
            frames[key] = []
    covers = [f for f in tags.getall("APIC") if f.type == PictureType.COVER_FRONT]
    tocs = tags.getall("CTOC")
    return TagReadback(
        version=tags.version[1],
        frames=frames,
        cover_mime=covers[0].mime if covers else None,
        cover=covers[0].data if covers else None,
        chapter_ids=tuple(tocs[0].child_element_ids) if tocs else (),
    )
