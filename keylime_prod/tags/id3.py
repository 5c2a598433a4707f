"""The one ID3 boundary: every mutagen call that builds, writes or reads an ID3 tag lives here.

mediafile wraps each mutagen call in one ``mutagen_call`` that turns mutagen's errors into its own; :func:`mutagen_call`
does the same here, so a broken or unreadable tag is always a one-line :class:`TagError` naming the file. The tag
stage decides *what* to write (a :class:`TagData`, plain values); this module decides *how*: frame classes, the
ID3v2.3/2.4 differences, chapter frames (ID3v2 Chapter Frame Addendum) and reading them back.

The frames: TIT2 title, TIT3 subtitle, TPE1 hosts (and guests), TPE2 author, TALB the show, TRCK episode number, date
(TDRC and XDOR in v2.3, TDRC/TDRL in v2.4: see :func:`_dates`), TCON genre, COMM and TDES description, APIC front
cover, TCOP, WOAR show website, WOAF/WXXX episode page, the iTunes podcast frames PCST/TGID/WFED, TENC/TSSE encoder,
TLEN length, USLT transcript, and the chapters as CHAP frames under one top-level, ordered CTOC (players ignore chapters
without it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
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
    TDES,
    TDRC,
    TDRL,
    TENC,
    TGID,
    TIT2,
    TIT3,
    TLEN,
    TPE1,
    TPE2,
    TRCK,
    TSSE,
    USLT,
    CTOCFlags,
    Frames,
    ID3NoHeaderError,
    ID3Tags,
    PictureType,
    TextFrame,
)
from mutagen.id3 import WOAF as _WOAF
from mutagen.id3 import WOAR as _WOAR
from mutagen.id3 import WXXX as _WXXX
from mutagen.id3 import delete as delete_id3
from mutagen.id3._specs import EncodedTextSpec, EncodingSpec, Latin1TextSpec

from .. import fsutil
from ..chapters.artefact import ChapterMark
from ..errors import TagError

#: ISO 639-1 -> ISO 639-2 for COMM/USLT, whose language field is three letters (ID3v2.3 section 4.11).
_LANG3 = {"en": "eng", "fr": "fra", "de": "deu", "es": "spa", "it": "ita", "pt": "por", "nl": "nld", "ja": "jpn"}
_UTF8 = 3  # ID3 text encoding; mutagen converts it to UTF-16 when saving v2.3, which has no UTF-8
_LATIN1 = 0


@contextlib.contextmanager
def mutagen_call(where: Path, action: str = "read", *, no_tag: str = "no ID3 tag") -> Iterator[None]:
    """Turn mutagen's and the OS's errors inside the block into one :class:`TagError` naming ``where``."""
    try:
        yield
    except ID3NoHeaderError:
        raise TagError(no_tag, where=where, hint="run `produce tag EPISODE`") from None
    except (MutagenError, OSError) as e:
        raise TagError(f"cannot {action} ID3 tags: {e}", where=where) from e


class WFED(TextFrame):
    """iTunes' podcast feed URL frame, as the *text* frame iTunes, TagLib and eyeD3 read: an encoding byte, then the
    URL (docs/platform.md, "ID3"). mutagen's own ``WFED`` is a URL frame with no encoding byte, which those readers
    show garbled (eyeD3: ``Unknown encoding value b'h'``, URL ``ttps://...``). mutagen names a frame by its
    class, so this class must be called ``WFED``; :func:`open_tag` reads it with this class too."""


class _Url(Latin1TextSpec):
    """A URL that runs to the end of its frame, with no terminating NUL: ID3v2.3 section 4.3 ("URL link frames")
    terminates only the description of WXXX. mutagen writes a NUL after every URL, and eyeD3 then hands it back as
    part of the URL. Read the same way as mutagen reads it (up to a NUL, or the end)."""

    def write(self, config: Any, data: Any, value: Any) -> bytes:
        return str(value).encode("latin1")


class WOAR(_WOAR):
    """Official artist (here: the show's) webpage, URL without a trailing NUL (see :class:`_Url`)."""

    _framespec = (_Url("url"),)


class WOAF(_WOAF):
    """Official audio file webpage, URL without a trailing NUL (see :class:`_Url`)."""

    _framespec = (_Url("url"),)


class WXXX(_WXXX):
    """User-defined URL: encoding, description (terminated), URL without a trailing NUL (see :class:`_Url`)."""

    _framespec = [EncodingSpec("encoding"), EncodedTextSpec("desc"), _Url("url")]  # noqa: RUF012  (mutagen's type)


class XDOR(TextFrame):
    """Original release time, full ``YYYY-MM-DDTHH:MM``: the v2.3 frame eyeD3 reads a full date from (its TORY holds
    only the year, and it parses TDAT/TIME as years, so ``0600`` is an "Invalid date" and the date keeps its year)."""


#: mutagen's frame classes with :class:`WFED` as a text frame, for reading our own tags back.
KNOWN_FRAMES = {**Frames, "WFED": WFED, "XDOR": XDOR}


def ascii_url(url: str) -> str:
    """``url`` with every non-ASCII character percent-encoded (RFC 3987, section 3.1): URL frames are Latin-1, and
    an ASCII URL reads the same in every encoding a reader may assume."""
    return urllib.parse.quote(url, safe="".join(chr(c) for c in range(0x21, 0x7F)))


def open_tag(mp3: Path, *, no_tag: str = "no ID3 tag") -> ID3:
    """The ID3 tag of ``mp3`` as written (no v2.3 -> v2.4 translation; ``WFED`` as the text frame it is)."""
    with mutagen_call(mp3, no_tag=no_tag):
        return ID3(mp3, translate=False, known_frames=KNOWN_FRAMES)


# ------------------------------------------------------------------------------------------------------ writing


@dataclass(frozen=True)
class TagData:
    """What the tag stage wants written, as plain values; :func:`build_tag` turns it into frames."""

    title: str
    people: str  # TPE1: hosts and guests
    author: str  # TPE2
    album: str  # TALB: the show
    track: str  # TRCK: episode number
    genre: str
    description: str  # COMM and TDES
    copyright: str
    website: str  # WOAR
    url: str  # WOAF and WXXX: the episode page
    guid: str  # TGID
    feed_url: str  # WFED
    encoded_by: str  # TENC
    encoder_settings: str  # TSSE
    length_ms: int  # TLEN
    cover_mime: str
    cover: bytes
    date: dt.datetime  # UTC
    language: str  # ISO 639-1 (COMM/USLT take ISO 639-2)
    version: int = 3  # 3 or 4
    subtitle: str = ""
    lyrics: str | None = None  # USLT
    chapters: tuple[ChapterMark, ...] = ()
    #: Chapter ``img`` value -> (mime, bytes) for images embedded in the CHAP frames.
    chapter_images: Mapping[str, tuple[str, bytes]] = field(default_factory=dict)


def _lang3(language: str) -> str:
    return _LANG3.get(language.split("-")[0].lower(), "und")  # "und": ISO 639-2 "undetermined"


def build_tag(d: TagData) -> ID3:
    """The complete ID3 tag in memory (pure: reads nothing but what it is given)."""
    tags = _ChapterOrderID3()
    lang = _lang3(d.language)
    when = d.date.strftime("%Y-%m-%dT%H:%M:%S")
    text: list[Any] = [
        TIT2(encoding=_UTF8, text=[d.title]),
        TPE1(encoding=_UTF8, text=[d.people]),
        TPE2(encoding=_UTF8, text=[d.author]),
        TALB(encoding=_UTF8, text=[d.album]),
        TRCK(encoding=_UTF8, text=[d.track]),
        TCON(encoding=_UTF8, text=[d.genre]),
        COMM(encoding=_UTF8, lang=lang, desc="", text=[d.description]),
        TDES(encoding=_UTF8, text=[d.description]),  # iTunes podcast description
        TCOP(encoding=_UTF8, text=[d.copyright]),
        WOAR(url=ascii_url(d.website)),
        WOAF(url=ascii_url(d.url)),
        WXXX(encoding=_UTF8, desc="", url=ascii_url(d.url)),
        PCST(value=1),  # iTunes: this file is a podcast episode
        TGID(encoding=_UTF8, text=[d.guid]),  # iTunes podcast (episode) id
        # A text frame (see WFED) in Latin-1, which needs no byte-order mark: an ASCII URL after one 0 byte.
        WFED(encoding=_LATIN1, text=[ascii_url(d.feed_url)]),
        TENC(encoding=_UTF8, text=[d.encoded_by]),
        TSSE(encoding=_UTF8, text=[d.encoder_settings]),
        TLEN(encoding=_UTF8, text=[str(d.length_ms)]),
        APIC(encoding=_UTF8, mime=d.cover_mime, type=PictureType.COVER_FRONT, desc="Cover", data=d.cover),
    ]
    if d.subtitle:
        text.append(TIT3(encoding=_UTF8, text=[d.subtitle]))
    if d.version == 4:
        # ID3v2.4 timestamps (section 4.2.5): recording time and release time.
        text += [TDRC(encoding=_UTF8, text=[when]), TDRL(encoding=_UTF8, text=[when])]
    if d.lyrics:
        text.append(USLT(encoding=_UTF8, lang=lang, desc="", text=d.lyrics))
    for frame in text:
        tags.add(frame)
    _add_chapters(tags, d.chapters, d.chapter_images)
    if d.version == 3:
        tags.update_to_v23()  # mutagen: required before saving v2.3 (converts frames, recurses into CHAP/CTOC)
        for frame in _dates(d.date):  # after update_to_v23, which would turn TDRC into TDAT/TIME
            tags.add(frame)
    return tags


def _dates(when: dt.datetime) -> list[Any]:
    """The v2.3 date frames every reader we test reads in full, without a warning.

    ID3v2.3's own frames are TYER (year), TDAT (DDMM) and TIME (HHMM), section 4.2.1, but eyeD3 parses TDAT and TIME
    as dates: ``0600`` or ``0312`` is an "Invalid date" on every read, and the episode keeps only its year. ffmpeg
    takes a 4-digit TYER over any other date, so TYER would cut its date to the year too. What all of them read in
    full: TDRC (the v2.4 timestamp, which mutagen, TagLib and ffmpeg read in a v2.3 tag) and XDOR (eyeD3's v2.3 full
    date). Latin-1: digits need no byte-order mark.
    """
    return [
        TDRC(encoding=_LATIN1, text=[when.strftime("%Y-%m-%dT%H:%M:%S")]),
        XDOR(encoding=_LATIN1, text=[when.strftime("%Y-%m-%dT%H:%M")]),
    ]


def _add_chapters(tags: ID3, marks: tuple[ChapterMark, ...], images: Mapping[str, tuple[str, bytes]]) -> None:
    if not marks:
        return
    ids = []
    for i, m in enumerate(marks):
        cid = f"chp{i}"
        ids.append(cid)
        subs: list[Any] = [TIT2(encoding=_UTF8, text=[m.title])]
        if m.url:
            subs.append(WXXX(encoding=_UTF8, desc="", url=ascii_url(m.url)))
        if m.img and m.img in images:
            mime, data = images[m.img]
            subs.append(APIC(encoding=_UTF8, mime=mime, type=PictureType.OTHER, desc=m.title[:64], data=data))
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


class _ChapterOrderID3(ID3):
    """An ID3 tag that writes its CHAP frames in chronological order.

    mutagen orders frames by a priority list and then by size. ffmpeg (and the players built on it) list ID3
    chapters in file order, not by time, so the CHAP frames go last, sorted by start time; everything else keeps
    mutagen's order.
    """

    # _write() is mutagen's private frame serialiser, called by ID3.save(): pyproject.toml bounds mutagen below the
    # next minor release and tests/test_security.py fails, naming it, when its signature or its caller changes.
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


def write_tag(
    src: Path, dest: Path, tag: ID3, *, version: int, check_file: Callable[[Path], None] | None = None
) -> None:
    """Write a copy of ``src`` carrying ``tag`` (and no other) to ``dest``, atomically.

    The copy is stripped of any old tag first, so tagging twice leaves one set of frames; ``check_file`` runs on
    the tagged temporary file before it takes ``dest``'s name, so a file that fails it never gets there.
    """
    with mutagen_call(dest, "write"), fsutil.atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        with contextlib.suppress(ID3NoHeaderError):
            delete_id3(tmp)  # old ID3v2 and ID3v1 tags: re-tagging must not duplicate frames
        # v1=0 removes any ID3v1 tag; its 30-byte fields would truncate titles and drop non-Latin-1 text.
        tag.save(tmp, v2_version=version, v1=0)
        if check_file is not None:
            check_file(tmp)


# ------------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class TagReadback:
    """What an MP3's ID3 tag holds, read back with mutagen as written (no v2.3 -> v2.4 translation)."""

    version: int  # 3 or 4
    frames: dict[str, list[str]]  # frame id (mutagen hash key) -> its text/URL values
    cover_mime: str | None
    cover: bytes | None
    chapter_ids: tuple[str, ...]


def frame_keys(mp3: Path) -> tuple[str, ...]:
    """The sorted frame keys of ``mp3``'s tag (mutagen hash keys, e.g. ``CHAP:chp0``)."""
    return tuple(sorted(open_tag(mp3).keys()))


def read_tags(mp3: Path) -> TagReadback:
    """Read an MP3's ID3 tag back: version, every frame's text, the front cover, the CTOC's chapter ids."""
    tags = open_tag(mp3)
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


def read_chapters(mp3: Path) -> tuple[ChapterMark, ...]:
    """Read the chapters of an MP3 in the order its top-level CTOC lists them.

    Players ignore CHAP frames that no top-level CTOC reaches, so a missing CTOC, a CTOC without the top-level
    and ordered flags, or a CHAP left out of it is an error here (ID3v2 Chapter Frame Addendum, section 4).
    """
    mp3 = Path(mp3)
    tags = open_tag(mp3, no_tag="no ID3 tag, so no chapters")
    chaps = {f.element_id: f for f in tags.getall("CHAP")}
    top = [t for t in tags.getall("CTOC") if t.flags & CTOCFlags.TOP_LEVEL]
    if chaps and not top:
        raise TagError("CHAP frames without a top-level CTOC (players ignore them)", where=mp3)
    if len(top) > 1:
        raise TagError(f"{len(top)} top-level CTOC frames, expected one", where=mp3)
    if not top:
        return ()
    toc = top[0]
    if not toc.flags & CTOCFlags.ORDERED:
        raise TagError("the top-level CTOC is not flagged as ordered", where=mp3)
    missing = [c for c in toc.child_element_ids if c not in chaps]
    if missing:
        raise TagError(f"the CTOC lists chapters with no CHAP frame: {', '.join(missing)}", where=mp3)
    orphans = sorted(set(chaps) - set(toc.child_element_ids))
    if orphans:
        raise TagError(f"CHAP frames not listed in the CTOC: {', '.join(orphans)}", where=mp3)
    marks = []
    for cid in toc.child_element_ids:
        f = chaps[cid]
        title = " ".join(str(t) for t in f.sub_frames["TIT2"].text) if "TIT2" in f.sub_frames else ""
        wxxx = f.sub_frames.getall("WXXX")
        apic = f.sub_frames.getall("APIC")
        marks.append(
            ChapterMark(
                title=title,
                start=f.start_time / 1000.0,
                end=f.end_time / 1000.0,
                url=wxxx[0].url if wxxx else None,
                img=f"embedded {apic[0].mime}" if apic else None,
            )
        )
    return tuple(marks)
