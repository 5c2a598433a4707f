"""Configuration: one pydantic model tree read from TOML.

``configs/show.toml`` holds the show (metadata, assets, and the settings of every stage); ``configs/episodes/<id>.toml``
holds one episode. Relative paths in a file are resolved against that file's folder. CLI options default to ``None``
and are laid on top with :func:`apply_overrides` (the fastapi-cli pattern), so we never have to guess whether an
option was set. Validation errors name the file and the dotted field.
"""

from __future__ import annotations

import datetime as dt
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import timecode
from .errors import ConfigError
from .layout import BuildLayout

#: Episode ids are file names, never paths: letters, digits, dot, dash, underscore; no leading dot. Always used with
#: ``fullmatch`` (``$`` would let a trailing newline through, which then ends up as ``%0A`` in published URLs).
EPISODE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: Characters XML 1.0 cannot carry (section 2.2, ``Char``): C0 controls other than tab, newline and carriage return,
#: surrogates (lone ones reach Python from JSON and from feeds) and the noncharacters U+FFFE and U+FFFF; DEL too. A
#: title holding one would fail only at the feed, after the upload. Rejected in every text of every config.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
XML_FORBIDDEN = _CONTROL
#: Commands of ``produce``: an episode of that name could not be built with ``produce ID`` (the command would run).
COMMAND_NAMES = frozenset(
    {"run", "master", "chapters", "tag", "transcribe", "notes", "models", "publish", "report", "verify", "check",
     "new", "upload-raw", "prune", "import", "batch", "version", "help", "review", "cuts"}
)  # fmt: skip
#: Publish dates outside this range are typos (year 1 reads as 2001 in feedparser; 9999 overflows time zones).
DATE_RANGE = (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc))


def _no_controls(v: Any) -> Any:
    texts = [v] if isinstance(v, str) else [t for t in v if isinstance(t, str)] if isinstance(v, tuple) else []
    for text in texts:
        m = _CONTROL.search(text)
        if m:
            what = "control character" if ord(m.group()) < 0x80 else "character XML cannot carry"
            raise ValueError(
                f"contains the {what} U+{ord(m.group()):04X} ({m.group()!r}) at position {m.start()}: remove it"
            )
    return v


def http_url(v: str | None) -> str | None:
    """An http(s) URL, or ``None``: ``javascript:``, ``data:``, ``file:`` and the like would reach the show notes,
    the feed, chapters.json and ID3 frames, where a player or browser may follow them."""
    if v is None:
        return None
    if not re.match(r"^https?://[^\s/]+\S*$", v):
        raise ValueError("must be an http(s) URL such as https://example.org/page")
    # RFC 3986 (section 2): a URL holds these characters only; '<', '>', '"', '`', '\\', '{', '}' and the like must be
    # percent-encoded, else they close the Markdown link or the HTML attribute they are written into.
    bad = re.search(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]", v)
    if bad:
        ch = bad.group()
        fix = f"write %{ord(ch):02X} instead" if ord(ch) < 128 else "percent-encode it"
        raise ValueError(f"holds {ch!r}, which a URL carries only percent-encoded (RFC 3986): {fix}")
    return v


HttpUrl = Annotated[str, AfterValidator(http_url)]


class _Model(BaseModel):
    # Unknown keys are errors: a typo such as ``taget_lufs`` must not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _text_is_printable(cls, v: Any) -> Any:
        return _no_controls(v)


# --------------------------------------------------------------------------------------------------------- show


class Person(_Model):
    """A host or guest, as Podcasting 2.0 ``podcast:person`` describes one."""

    name: str = Field(min_length=1)
    role: str = "host"
    group: str = "cast"
    img: HttpUrl | None = None
    href: HttpUrl | None = None


#: Apple Podcasts: a channel description of at most this many bytes (UTF-8).
MAX_DESCRIPTION_BYTES = 4000


class ShowInfo(_Model):
    """What the feed and the tags say about the show."""

    title: str = Field(min_length=1)
    description: str = Field(min_length=1)  # Apple: channel description <= 4000 bytes (checked below)
    author: str = Field(min_length=1)
    owner_name: str = Field(min_length=1)
    owner_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    category: str = "Health & Fitness"
    subcategory: str | None = "Medicine"
    explicit: bool = False
    show_type: Literal["episodic", "serial"] = "episodic"
    artwork: Path
    website: HttpUrl
    feed_url: HttpUrl
    copyright: str
    disclaimer_text: str = ""
    hosts: tuple[Person, ...] = ()
    #: Days between episodes: ``produce new`` dates the next episode this long after the latest one.
    cadence_days: int = Field(default=7, ge=1, le=366)

    @field_validator("description")
    @classmethod
    def _description_bytes(cls, v: str) -> str:
        # Apple counts bytes, as `produce verify` does: 4000 characters of accented or non-Latin text can be twice
        # that, and the feed would be refused after publishing instead of the config before any work.
        n = len(v.encode("utf-8"))
        if n > MAX_DESCRIPTION_BYTES:
            raise ValueError(f"{n} bytes in UTF-8, Apple Podcasts allows {MAX_DESCRIPTION_BYTES}: shorten it")
        return v


class Assets(_Model):
    """Audio stitched around every episode body."""

    intro: Path | None = None
    disclaimer: Path | None = None
    outro: Path | None = None


class LevelerSettings(_Model):
    """The adaptive speech leveler (``[audio.leveler]``): every stretch of speech to the same loudness."""

    enabled: bool = True
    strength: float = Field(default=1.0, ge=0.0, le=1.0)  # fraction of the measured difference that is corrected
    max_gain_db: float = Field(default=12.0, ge=0.0, le=30.0)  # most a quiet stretch is raised
    max_cut_db: float = Field(default=12.0, ge=0.0, le=30.0)  # most a loud stretch is lowered


class DenoiseSettings(_Model):
    """Noise and hum reduction (``[audio.denoise]``). ``auto``: only where the measured noise floor or
    mains hum calls for it, with the default engine; an engine name: that engine wherever there is noise or hum."""

    mode: Literal["auto", "off", "deepfilternet", "afftdn"] = "auto"
    # Maximum attenuation of the noise, dB (like Auphonic's). 30 by measurement (docs/audio.md): 40 cost a word of WER.
    strength: float = Field(default=30.0, ge=0.0, le=100.0)


class AudioSettings(_Model):
    """Mastering settings. Defaults follow Apple Podcasts / EBU R128 for speech (see docs/platform.md)."""

    target_lufs: float = Field(default=-16.0, ge=-40.0, le=-5.0)  # Apple: -16 LUFS +-1 LU
    true_peak_db: float = Field(default=-1.0, ge=-10.0, le=0.0)  # Apple: <= -1 dBTP
    tolerance_lu: float = Field(default=0.5, gt=0.0, le=2.0)
    sample_rate: Literal[44100, 48000] = 44100
    channels: Literal[1, 2] = 2
    bitrate_kbps: int = Field(default=128, ge=64, le=320)
    # Music beds sit this many LU relative to the speech target (negative: quieter than speech).
    music_offset_lu: float = Field(default=-2.0, ge=-20.0, le=6.0)
    silence_threshold_db: float = Field(default=-50.0, le=-20.0, ge=-90.0)
    keep_silence_ms: int = Field(default=250, ge=0, le=5000)
    intro_crossfade_ms: int = Field(default=1500, ge=0, le=10000)
    outro_crossfade_ms: int = Field(default=1500, ge=0, le=10000)
    gap_ms: int = Field(default=500, ge=0, le=5000)  # silence around the spoken disclaimer
    fade_in_ms: int = Field(default=50, ge=0, le=10000)
    fade_out_ms: int = Field(default=2000, ge=0, le=20000)
    leveler: LevelerSettings = LevelerSettings()
    denoise: DenoiseSettings = DenoiseSettings()


class WhisperSettings(_Model):
    """Transcription settings (see keylime_prod.transcript)."""

    engine: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    # A bundled name (base, tiny.en), a downloadable name, or a path. base int8 was chosen by measurement
    # (docs/transcripts.md): lowest WER at the speed of tiny.en float32, and it drops no passage.
    model: str = "base"
    compute_type: str = "int8"  # faster-whisper (CTranslate2) compute type; openai-whisper always runs float32
    beam_size: int = Field(default=5, ge=1, le=10)
    vad: bool = True
    language: str | None = "en"
    threads: int = Field(default=0, ge=0, le=64)  # 0: one per physical core
    glossary: tuple[str, ...] = ()  # names and terms to spell right; the episode's glossary is added
    transcribe_disclaimer: bool = False  # False: the disclaimer's known text (show.disclaimer_text) is its transcript
    # faster-whisper: 30 s windows decoded side by side, ``batch_size`` at a time by each of ``decoders``
    # CTranslate2 workers that share ``threads`` (two one-thread decoders beat one two-thread decoder on two cores).
    # Both chosen by measurement (docs/transcripts.md): 2 x 2 was the fastest; every window in flight holds its
    # encoder's attention buffers (~110 MiB for base), so 2 x 2 costs what one decoder of 4 did, +120 MiB.
    # batch_size 0: sequential decoding, each window conditioned on the previous one's text.
    batch_size: int = Field(default=2, ge=0, le=64)
    decoders: int = Field(default=2, ge=1, le=8)
    # Word timings (and probabilities) cut the captions and feed words.json; off only to compare with the old mode,
    # when words are spread over each segment by their share of characters.
    word_timestamps: bool = True


class TagSettings(_Model):
    """ID3 tagging and chapter settings (see docs/tags.md)."""

    id3_version: Literal[3, 4] = 3  # ID3v2.3 is what most players read; 4 where configured
    include_lyrics: bool = True  # write the transcript as USLT when one exists
    genre: str = Field(default="Podcast", min_length=1)
    encoded_by: str = Field(default="keylime-prod", min_length=1)  # TENC
    # Titles of the automatic chapters made from master.json's timeline; "" leaves that part without a chapter.
    intro_chapter: str = "Intro"
    disclaimer_chapter: str = "Disclaimer"
    outro_chapter: str = "Outro"
    # Title of the chapter that covers the body before the first configured chapter; "" means the episode title.
    body_chapter: str = ""


class StorageSettings(_Model):
    """S3-compatible storage. Credentials never live here: only the standard AWS environment variables or profile."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    bucket: str | None = None
    prefix: str = ""
    public_base_url: str | None = None
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    profile: str | None = None
    local_dir: Path = Path("public")  # used when no endpoint is configured
    multipart_threshold_mb: int = Field(default=8, ge=5, le=5000)
    multipart_chunk_mb: int = Field(default=8, ge=5, le=5000)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    concurrency: int = Field(default=4, ge=1, le=64)  # parallel parts of one multipart upload
    # "auto": the server's SHA-256 checksum or an ETag equal to our MD5 proves the bytes, else read the object back;
    # "read-back": always GET the object and compare its SHA-256.
    verify: Literal["auto", "read-back"] = "auto"
    # Send Content-MD5 and x-amz-checksum-sha256 with single-part uploads, so the server rejects corrupt bodies.
    send_checksums: bool = True
    # Media keys carry a content hash, so they never change: cache them for a year. Manifests are read by us only.
    media_cache_control: str = "public, max-age=31536000, immutable"
    manifest_cache_control: str = "no-cache"
    #: Key prefix of the private inbox for raw recordings (``produce upload-raw``), outside ``prefix``: the public
    #: URL serves ``prefix`` only, so recordings are never public (docs/publishing.md, "Raw audio").
    inbox_prefix: str = "inbox"

    @field_validator("endpoint_url", "public_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http(s) URL such as https://s3.example.com")
        if re.match(r"^https?://[^/]*@", v):
            # A key in a URL ends up in logs and tracebacks (botocore prints the endpoint in its errors).
            raise ValueError(
                "must not carry credentials (user:secret@): put the keys in AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or an AWS profile), never in a URL"
            )
        return v.rstrip("/")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}", v):
            raise ValueError("must be a bucket name: letters, digits, '.', '-', '_', no '/' or spaces")
        return v

    @field_validator("prefix", "inbox_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        if any(part in ("", ".", "..") for part in v.split("/")) and v:
            raise ValueError("must be a key prefix such as podcast or shows/keylime (no '//', '.' or '..')")
        return v

    @model_validator(mode="after")
    def _inbox_outside_prefix(self) -> StorageSettings:
        inbox, public = self.inbox_prefix, self.prefix
        # With no prefix the public URL serves the whole bucket: `produce upload-raw` refuses to upload then.
        if not inbox or (public and (inbox == public or inbox.startswith(public + "/"))):
            raise ValueError(
                f"storage.inbox_prefix {inbox!r} must be a prefix of its own, outside storage.prefix {public!r} "
                "(whatever the public URL serves): raw recordings are private"
            )
        return self

    #: Environment variables that override the TOML (for CI), by field; credentials are never among them. The CLI
    #: declares an option for each (Typer ``envvar=``) and hands the values to :func:`load_settings`.
    ENV: ClassVar[dict[str, str]] = {
        "endpoint_url": "KEYLIME_S3_ENDPOINT_URL",
        "bucket": "KEYLIME_S3_BUCKET",
        "prefix": "KEYLIME_S3_PREFIX",
        "public_base_url": "KEYLIME_PUBLIC_BASE_URL",
    }


class FeedSettings(_Model):
    """RSS feed settings."""

    filename: str = "feed.xml"
    max_items: int = Field(default=0, ge=0)  # 0: all
    cache_control: str = "public, max-age=300"  # short: players should see a new episode within minutes
    # Podcasting 2.0 podcast:locked (owner: show.owner_email): other platforms must not import the feed without the
    # owner's consent. Validators expect it; set false only to let a new host import the feed.
    locked: bool = True
    # Podcasting 2.0 podcast:guid. Leave unset: it is derived from feed_url on the first publish and then kept in the
    # bucket (show.json) for the life of the show, even if the feed moves. Set it only to carry over an existing one.
    podcast_guid: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )

    @field_validator("filename")
    @classmethod
    def _filename(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.(xml|rss)", v):
            raise ValueError("must be a plain file name ending in .xml or .rss, such as feed.xml")
        return v


EditAction = Literal["cut", "mute", "propose"]


class EditSettings(_Model):
    """``[edit]``: what to do with each kind of cut candidate (docs/editing.md). ``cut``: applied without asking
    (a pause is shortened to ``natural_pause_s``); ``mute``: replaced by room tone, the timeline kept; ``propose``:
    listed for the producer, who accepts or rejects it in ``configs/episodes/<id>.cuts.toml``."""

    pauses: EditAction = "cut"
    hesitations: EditAction = "propose"
    retakes: EditAction = "propose"
    max_pause_s: float = Field(default=1.5, gt=0, le=30)  # a pause inside speech longer than this is a candidate
    natural_pause_s: float = Field(default=0.7, gt=0, le=10)  # what it is shortened to, at least the speaker's own
    rhythm_percentile: float = Field(default=90.0, ge=50, le=100)  # "the speaker's own": this percentile of pauses
    retake_window_s: float = Field(default=5.0, gt=0, le=30)  # a repeat further apart than this is not a retake
    fillers: tuple[str, ...] = ("uh", "um", "er", "erm")

    @model_validator(mode="after")
    def _natural_under_max(self) -> EditSettings:
        if self.natural_pause_s >= self.max_pause_s:
            raise ValueError("field edit.natural_pause_s must be shorter than edit.max_pause_s")
        return self


class SpeakerSettings(_Model):
    """``[speakers]``: who speaks when in a recording of several people (docs/speakers.md). ``voices``: a host's name
    and a sample of their speech (a few seconds to a minute, one voice alone); ``count``: how many people speak, or
    ``"auto"`` to estimate it. Off unless ``diarize = true``; never for ``[[tracks]]`` (a track names its speaker)."""

    diarize: bool = False
    voices: dict[str, Path] = {}
    count: int | Literal["auto"] = "auto"
    # Windows of 1.6 s every this many seconds: 1.6 lays them end to end (cheapest), 0.8 (default) half-overlaps
    # them, which halved the confusion on the real two-person call of tests/data/speakers (docs/speakers.md).
    window_step_s: float = Field(default=0.8, ge=0.4, le=1.6)
    # A voice is an enrolled host's when its centroid lies at least this close (cosine) to the host's sample.
    match_similarity: float = Field(default=0.80, ge=0.0, le=1.0)
    # Level each speaker's turns to the same loudness before the stretch-by-stretch leveler.
    level_speakers: bool = True

    @field_validator("count")
    @classmethod
    def _count(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 8:
            raise ValueError('count must be between 1 and 8, or "auto"')
        return v


class ReportSettings(_Model):
    """``[report]``: the production report (docs/report.md). It shows the recogniser's least-sure words and the
    master's internal figures, written for the producer: it is published with the episode only when ``publish``."""

    publish: bool = False


class ShowConfig(_Model):
    """The whole ``show.toml``."""

    show: ShowInfo
    assets: Assets = Assets()
    audio: AudioSettings = AudioSettings()
    whisper: WhisperSettings = WhisperSettings()
    tags: TagSettings = TagSettings()
    storage: StorageSettings = StorageSettings()
    feed: FeedSettings = FeedSettings()
    edit: EditSettings = EditSettings()
    report: ReportSettings = ReportSettings()
    speakers: SpeakerSettings = SpeakerSettings()


# ------------------------------------------------------------------------------------------------------ episode


class Paper(_Model):
    """The paper an episode discusses."""

    title: str = Field(min_length=1)
    authors: str = Field(min_length=1)
    journal: str = ""
    year: int | None = None
    citation: str = ""
    # Crossref's pattern for the DOIs it issues, '<', '>', '"' and '`' excluded: they never occur in a DOI and would
    # leave the https://doi.org/ link they are written into.
    doi: str | None = Field(default=None, pattern=r"^10\.\d{4,9}/[^\s<>\"`\\{}|^]+$")
    pmid: str | None = Field(default=None, pattern=r"^\d{1,9}$")
    url: HttpUrl | None = None


class Chapter(_Model):
    """A chapter; ``start`` is relative to the start of the episode body (the raw recordings), in seconds."""

    title: str = Field(min_length=1)
    start: float = Field(ge=0)
    url: HttpUrl | None = None
    img: str | None = None  # an http(s) URL or a local image file

    @field_validator("img")
    @classmethod
    def _img(cls, v: str | None) -> str | None:
        # Anything with a scheme must be http(s); the rest is a path to a local image (embedded in ID3 only).
        return http_url(v) if v is not None and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", v) else v

    @field_validator("start", mode="before")
    @classmethod
    def _parse_clock(cls, v: Any) -> Any:
        return timecode.parse(v) if isinstance(v, str) else v


class ArchiveSource(_Model):
    """Where an episode imported from an existing feed came from (``produce import``, docs/archive.md).

    ``url`` and ``length`` are the old item's enclosure; the media is fetched from there (resumable, checked against
    ``length``) when the recording file is not on disk. ``remaster = false`` keeps the published MP3 as the master:
    measured and reported, never re-encoded; ``true`` runs it through the full audio path like a new episode.
    """

    url: str = Field(pattern=r"^https?://[^\s/]+")  # the old enclosure
    length: int | None = Field(default=None, ge=0)
    type: str = "audio/mpeg"
    duration: float | None = Field(default=None, ge=0)
    remaster: bool = False


class RawSource(_Model):
    """Where a raw recording lives when it is not in git: an object in the bucket's private inbox (``key``) or an
    https URL (``url``), with the size and SHA-256 it must have. ``file`` is the recording as ``recordings`` or
    ``[[tracks]]`` names it; the pipeline fetches it there once when it is missing (``produce upload-raw`` writes
    these tables)."""

    file: Path
    key: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    url: HttpUrl | None = None
    size: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _one_source(self) -> RawSource:
        if (self.key is None) == (self.url is None):
            raise ValueError("give the recording's key (in the bucket's inbox) or its https url, not both or neither")
        if self.url is not None and not self.url.startswith("https://"):
            raise ValueError(f"url {self.url!r}: raw audio is fetched over https only")
        if self.key is not None and ".." in self.key.split("/"):
            raise ValueError(f"key {self.key!r}: no '..' in a key")
        return self


class Track(_Model):
    """One speaker's own recording of a multitrack session: tracks play at the same time and are mixed.

    ``offset`` (seconds, may be negative) is where this track's first sample sits relative to the first track's.
    Leave it out: it is found by cross-correlating the tracks (the bleed, or a clap); a given value is the fallback
    when that match is weak.
    """

    file: Path
    speaker: str = Field(min_length=1)
    offset: float | None = Field(default=None, ge=-3600.0, le=3600.0)


class EpisodeConfig(_Model):
    """One ``configs/episodes/<id>.toml``. ``id`` comes from the file name."""

    id: str
    number: int = Field(ge=0)
    season: int | None = Field(default=None, ge=1)
    title: str = Field(min_length=1)
    subtitle: str = ""
    episode_type: Literal["full", "trailer", "bonus"] = "full"
    publish_date: dt.datetime
    hosts: tuple[Person, ...] = Field(min_length=1)
    guests: tuple[Person, ...] = ()
    paper: Paper | None = None
    summary: str = Field(min_length=1)
    key_points: tuple[str, ...] = ()
    #: Recordings played one after the other; or ``tracks`` (one per speaker, played at the same time), not both.
    recordings: tuple[Path, ...] = ()
    tracks: tuple[Track, ...] = ()
    #: Who speaks in each recording (same order), for transcript voice tags; empty: the first host throughout.
    speakers: tuple[str, ...] = ()
    chapters: tuple[Chapter, ...] = ()
    glossary: tuple[str, ...] = ()
    artwork: Path | None = None
    explicit: bool | None = None
    link: HttpUrl | None = None
    #: The item <guid> this episode keeps forever. Leave unset for new episodes (one is derived from the show's
    #: podcast:guid); set it to the guid an old host gave the episode, or every subscriber downloads it again.
    guid: str | None = Field(default=None, min_length=1, max_length=500, pattern=r"^\S(.*\S)?$")
    #: Set for episodes imported from an existing feed.
    archive: ArchiveSource | None = None
    #: Recordings kept out of git: where each is fetched from, and its size and SHA-256.
    raw: tuple[RawSource, ...] = ()
    #: A demo or example: built and published into the local folder only, never to a configured bucket (``produce
    #: publish --due`` and ``produce batch --all`` leave it out), so it can never reach the live feed.
    demo: bool = False

    @field_validator("publish_date", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        # TOML gives date / datetime objects; a bare date means midnight UTC. Strings must be ISO 8601.
        if isinstance(v, dt.datetime):
            return v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
        if isinstance(v, dt.date):
            return dt.datetime(v.year, v.month, v.day, tzinfo=dt.timezone.utc)
        if isinstance(v, str):
            try:
                d = dt.datetime.fromisoformat(v)
            except ValueError:
                raise ValueError(f"{v!r} is not an ISO 8601 date such as 2019-11-26 or 2019-11-26T06:00:00Z") from None
            return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)
        return v

    @field_validator("publish_date", mode="after")
    @classmethod
    def _date_in_range(cls, v: dt.datetime) -> dt.datetime:
        lo, hi = DATE_RANGE
        try:
            ok = lo <= v.astimezone(dt.timezone.utc) < hi
        except OverflowError:  # 9999-12-31T23:59:59-12:00 is past datetime.max in UTC
            ok = False
        if not ok:
            raise ValueError(f"{v.isoformat()} is outside {lo.year}-{hi.year - 1}: a typo?")
        return v

    @model_validator(mode="after")
    def _recordings_or_tracks(self) -> EpisodeConfig:
        if self.recordings and self.tracks:
            raise ValueError(
                "recordings and [[tracks]] are both given: use recordings for files played one after the other, "
                "or [[tracks]] for one file per speaker played at the same time, not both"
            )
        if not self.recordings and not self.tracks:
            raise ValueError("no audio: give recordings = [...] or one [[tracks]] table per speaker")
        if self.tracks and self.speakers:
            raise ValueError("speakers names the people of recordings; with [[tracks]] each track names its speaker")
        people = [p.name for p in (*self.hosts, *self.guests)]
        for i, t in enumerate(self.tracks):
            if t.speaker not in people:
                raise ValueError(
                    f"tracks[{i}].speaker: {t.speaker!r} is not a host or guest of this episode "
                    f"({', '.join(people)}): add them to [[guests]] or fix the name"
                )
        return self

    @model_validator(mode="after")
    def _one_speaker_per_recording(self) -> EpisodeConfig:
        if self.speakers and len(self.speakers) != len(self.recordings):
            raise ValueError(
                f"speakers names {len(self.speakers)} people for {len(self.recordings)} recordings: give one name "
                "per recording, in the same order, or leave it out"
            )
        return self

    @model_validator(mode="after")
    def _chapters_ordered(self) -> EpisodeConfig:
        starts = [c.start for c in self.chapters]
        for i in range(1, len(starts)):
            if starts[i] <= starts[i - 1]:
                raise ValueError(
                    f"chapters must be in increasing order of start: chapter {i + 1} "
                    f"({self.chapters[i].title!r}) starts at {starts[i]:g}s, not after {starts[i - 1]:g}s"
                )
        return self


class Correction(_Model):
    """One ``[[corrections]]`` entry of ``configs/episodes/<id>.corrections.toml``: at ``at`` (the published
    timeline, as the transcript files show it) the recogniser wrote ``heard``; the producer ``meant`` this."""

    at: float = Field(ge=0)
    heard: str = Field(min_length=1, pattern=r"\w")
    meant: str = Field(min_length=1, pattern=r"\S")

    @field_validator("at", mode="before")
    @classmethod
    def _parse_clock(cls, v: Any) -> Any:
        return timecode.parse(v) if isinstance(v, str) else v


class Replacement(_Model):
    """One ``[[replace]]`` entry: ``heard`` becomes ``meant`` everywhere in the episode's transcript."""

    heard: str = Field(min_length=1, pattern=r"\w")
    meant: str = Field(min_length=1, pattern=r"\S")


class Corrections(_Model):
    """``configs/episodes/<id>.corrections.toml``: what the producer decided the transcript says (docs/transcripts.md,
    "Corrections"). Kept beside the episode's config, readable and diffable; applied to the recognised words, so a
    correction never runs the recogniser again."""

    corrections: tuple[Correction, ...] = ()
    replace: tuple[Replacement, ...] = ()


class Settings(_Model):
    """What a pipeline run needs: the show config plus where things live."""

    show: ShowConfig
    configs_dir: Path
    build_root: Path = Path("build")

    def layout(self, episode_id: str) -> BuildLayout:
        """Where every file of one episode's build lives (``<build_root>/<id>/...``)."""
        return BuildLayout.of(self.build_root, episode_id)


class OwnCut(_Model):
    """A stretch the producer cuts by time (seconds or ``"MM:SS.s"`` on the file the candidates were found in)."""

    start: float = Field(ge=0)
    end: float = Field(gt=0)
    note: str = ""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse_clock(cls, v: Any) -> Any:
        return timecode.parse(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _ordered(self) -> OwnCut:
        if self.end <= self.start:
            raise ValueError(f"end {self.end:g} s is not after start {self.start:g} s")
        return self


class CutDecisions(_Model):
    """``configs/episodes/<id>.cuts.toml``: the producer's word on the cut candidates (ids from ``cuts.json``),
    and cuts of their own. Kept beside the episode config so it is read, diffed and committed like it."""

    accept: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()
    cut: tuple[OwnCut, ...] = ()

    @model_validator(mode="after")
    def _not_both(self) -> CutDecisions:
        both = sorted(set(self.accept) & set(self.reject))
        if both:
            raise ValueError(f"field reject: {both[0]!r} is also in accept; keep it in one of them")
        return self


#: An episode's cut decisions sit beside its config: ``configs/episodes/<id>.cuts.toml``.
CUTS_SUFFIX = ".cuts.toml"


def cut_decisions_path(configs_dir: Path, episode_id: str) -> Path:
    """Where an episode's cut decisions live: ``configs/episodes/<id>.cuts.toml``."""
    return Path(configs_dir) / "episodes" / f"{check_episode_id(episode_id)}{CUTS_SUFFIX}"


def load_cut_decisions(path: Path) -> CutDecisions:
    """Read a decisions file (none yet: no decisions); errors name the file and the field."""
    path = Path(path)
    if not path.exists():
        return CutDecisions()
    try:
        return CutDecisions.model_validate(_read_toml(path))
    except ValidationError as e:
        raise _validation_error(path, e) from None


class SpeakerNames(_Model):
    """``configs/episodes/<id>.speakers.toml``: the person behind each speaker label the transcript shows
    (docs/review.md, "The speakers file"). ``[names]`` maps a label (a recording's speaker, or a voice the
    recogniser numbered, ``"Speaker 2"``) to a name; the transcript is rendered with the names, the recogniser never
    runs again."""

    names: dict[str, str] = Field(default_factory=dict)

    @field_validator("names")
    @classmethod
    def _non_empty(cls, v: dict[str, str]) -> dict[str, str]:
        for label, name in v.items():
            if not label.strip() or not name.strip():
                raise ValueError(f"names: {label!r} = {name!r}: neither a label nor a name may be empty")
        return v


#: An episode's speaker names sit beside its config: ``configs/episodes/<id>.speakers.toml``.
SPEAKERS_SUFFIX = ".speakers.toml"


def speakers_path(configs_dir: Path, episode_id: str) -> Path:
    """Where an episode's speaker names live: ``configs/episodes/<id>.speakers.toml`` (the file may not exist)."""
    return Path(configs_dir) / "episodes" / f"{check_episode_id(episode_id)}{SPEAKERS_SUFFIX}"


def load_speaker_names(configs_dir: Path, episode_id: str) -> SpeakerNames:
    """Read and validate an episode's speaker names; no file means no renames."""
    path = speakers_path(configs_dir, episode_id)
    if not path.is_file():
        return SpeakerNames()
    try:
        return SpeakerNames.model_validate(_read_toml(path))
    except ValidationError as e:
        raise _validation_error(path, e) from None


# ------------------------------------------------------------------------------------------------------ loading


def check_episode_id(episode_id: str) -> str:
    """Return ``episode_id`` if it is a plain name; raise :class:`ConfigError` for paths, ``..`` and the like."""
    if not EPISODE_ID_RE.fullmatch(episode_id) or ".." in episode_id:
        raise ConfigError(
            f"invalid episode id {episode_id!r}",
            hint="use a plain name such as episode-258: letters, digits, '.', '-', '_', no path separators or '..'",
        )
    if episode_id.lower() in COMMAND_NAMES:
        raise ConfigError(
            f"invalid episode id {episode_id!r}: it is the name of a produce command",
            hint=f"rename configs/episodes/{episode_id}.toml, e.g. to episode-{episode_id}.toml",
        )
    return episode_id


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("config file not found", where=path, hint="check the path or create it")
    try:
        # A UTF-8 byte-order mark (Windows editors write one) is not TOML; it carries no meaning, so it is dropped.
        return tomllib.loads(path.read_bytes().decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text ({e.reason} at byte {e.start})", where=path, hint="save it as UTF-8") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", where=path) from e
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", where=path) from e


def _fmt_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def describe_validation_error(err: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """The one-line text of a pydantic error: the first bad field and what is wrong with it.

    The one formatter for every pydantic model here (configs, command-line options, the bucket's JSON documents).
    ``names`` maps a dotted field to what the user set it with (an environment variable or an option), so the line
    names that instead of the field.
    """
    first = err.errors()[0]
    field = _fmt_loc(tuple(first["loc"])) or "(file)"
    msg = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for our validators' own words
    if first["type"] == "missing":
        msg = "required field is missing"
    elif first["type"] == "extra_forbidden":
        msg = "unknown field (a typo?)"
    elif first["type"] == "value_error" and not first["loc"]:
        # A check across fields (a model validator) names its fields in its own message.
        more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
        return msg.removeprefix("Value error, ") + more
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    label = (names or {}).get(field)
    return f"{label}: {msg}{more}" if label else f"field {field}: {msg}{more}"


def _validation_error(path: Path, err: ValidationError) -> ConfigError:
    return ConfigError(describe_validation_error(err), where=path, hint="fix the field and run `produce check`")


def _resolve(base: Path, p: Path | None) -> Path | None:
    if p is None:
        return None
    p = Path(p).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def load_show(path: Path) -> ShowConfig:
    """Read and validate ``show.toml``; relative paths become absolute against its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "show.toml not found",
            where=path,
            hint="run produce in the folder that holds configs/ (the repository root), or give --configs DIR or set "
            "KEYLIME_CONFIGS to the folder with show.toml and episodes/",
        )
    data = _read_toml(path)
    try:
        cfg = ShowConfig.model_validate(data)
    except ValidationError as e:
        raise _validation_error(path, e) from None
    base = path.parent.resolve()
    show = cfg.show.model_copy(update={"artwork": _resolve(base, cfg.show.artwork)})
    assets = Assets(
        intro=_resolve(base, cfg.assets.intro),
        disclaimer=_resolve(base, cfg.assets.disclaimer),
        outro=_resolve(base, cfg.assets.outro),
    )
    storage = cfg.storage.model_copy(update={"local_dir": _resolve(base.parent, cfg.storage.local_dir)})
    voices = {name: _resolve(base, p) or p for name, p in cfg.speakers.voices.items()}
    speakers = cfg.speakers.model_copy(update={"voices": voices})
    return cfg.model_copy(update={"show": show, "assets": assets, "storage": storage, "speakers": speakers})


def episode_path(configs_dir: Path, episode_id: str) -> Path:
    """Where the config of ``episode_id`` lives."""
    return Path(configs_dir) / "episodes" / f"{check_episode_id(episode_id)}.toml"


def list_episodes(configs_dir: Path) -> list[str]:
    """Ids of every episode config, sorted (an episode's cut decisions, ``<id>.cuts.toml``, transcript
    corrections, ``<id>.corrections.toml``, and speaker names, ``<id>.speakers.toml``, are not episodes)."""
    paths = (Path(configs_dir) / "episodes").glob("*.toml")
    return sorted(
        p.stem
        for p in paths
        if EPISODE_ID_RE.fullmatch(p.stem) and not p.name.endswith((CUTS_SUFFIX, CORRECTIONS_SUFFIX, SPEAKERS_SUFFIX))
    )


#: The producer's transcript corrections sit beside the episode's config: ``configs/episodes/<id>.corrections.toml``.
CORRECTIONS_SUFFIX = ".corrections.toml"


def corrections_path(configs_dir: Path, episode_id: str) -> Path:
    """Where the transcript corrections of ``episode_id`` live (the file may not exist)."""
    return Path(configs_dir) / "episodes" / f"{check_episode_id(episode_id)}{CORRECTIONS_SUFFIX}"


def load_corrections(configs_dir: Path, episode_id: str) -> Corrections:
    """Read and validate an episode's corrections file; no file means no corrections."""
    path = corrections_path(configs_dir, episode_id)
    if not path.is_file():
        return Corrections()
    try:
        return Corrections.model_validate(_read_toml(path))
    except ValidationError as e:
        raise _validation_error(path, e) from None


def load_episode(configs_dir: Path, episode_id: str) -> EpisodeConfig:
    """Read and validate ``configs/episodes/<id>.toml``; recordings and artwork resolve against its folder."""
    path = episode_path(configs_dir, episode_id)
    if not path.is_file():
        known = ", ".join(list_episodes(configs_dir)[:10]) or "none"
        raise ConfigError(f"unknown episode {episode_id!r}", where=path, hint=f"known episodes: {known}")
    return episode_from_data(path, episode_id, _read_toml(path))


def peek_episode(configs_dir: Path, episode_id: str) -> dict[str, Any] | None:
    """``number``, ``season``, ``publish_date`` (UTC) and ``demo`` of an episode config that may not validate yet (one
    ``produce new`` wrote and nobody has filled in); ``None`` when even those cannot be read."""
    try:
        data = tomllib.loads(episode_path(configs_dir, episode_id).read_text("utf-8"))
        date = EpisodeConfig._date(data["publish_date"])
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return None
    number, season = data.get("number"), data.get("season")
    if not isinstance(date, dt.datetime) or not isinstance(number, int):
        return None
    return {
        "number": number,
        "season": season if isinstance(season, int) else None,
        "publish_date": date,
        "demo": data.get("demo") is True,
    }


def episode_from_text(path: Path, episode_id: str, text: str) -> EpisodeConfig:
    """The episode ``text`` would be as ``path`` (to check an edit before it is written)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", where=path) from e
    return episode_from_data(path, episode_id, data)


def episode_from_data(path: Path, episode_id: str, data: dict[str, Any]) -> EpisodeConfig:
    """Validate an episode config's TOML ``data`` read from ``path``; paths resolve against its folder."""
    if "id" in data and data["id"] != episode_id:
        raise ConfigError(f"field id: {data['id']!r} does not match the file name {episode_id!r}", where=path)
    data["id"] = episode_id
    try:
        ep = EpisodeConfig.model_validate(data)
    except ValidationError as e:
        raise _validation_error(path, e) from None
    base = path.parent.resolve()
    ep = ep.model_copy(
        update={
            "recordings": tuple(_resolve(base, r) for r in ep.recordings),
            "tracks": tuple(t.model_copy(update={"file": _resolve(base, t.file)}) for t in ep.tracks),
            "artwork": _resolve(base, ep.artwork),
            "raw": tuple(r.model_copy(update={"file": _resolve(base, r.file)}) for r in ep.raw),
        }
    )
    seen: dict[Path | None, int] = {}
    for i, t in enumerate(ep.tracks):
        if t.file in seen:
            # One file mixed twice would double that speaker and cancel the offset search (it matches itself).
            raise ConfigError(
                f"field tracks[{i}].file: {t.file} is also tracks[{seen[t.file]}].file",
                where=path,
                hint="give each speaker's track its own file",
            )
        seen[t.file] = i
    audio = {*ep.recordings, *(t.file for t in ep.tracks)}
    for i, r in enumerate(ep.raw):
        if r.file not in audio:
            raise ConfigError(
                f"field raw[{i}].file: {r.file} is not one of the episode's recordings or tracks",
                where=path,
                hint="name the file exactly as recordings (or [[tracks]] file) does",
            )
    return ep


def load_settings(
    configs_dir: Path | None,
    build_root: Path | None = None,
    *,
    sources: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Load ``<configs_dir>/show.toml`` (default ``./configs``) and lay the overrides on it (``None`` is ignored).

    ``overrides`` are dotted section keys, e.g. ``{"audio.target_lufs": -19.0, "storage.bucket": "b"}``: command-line
    options and the environment variables the CLI reads with them. ``sources`` names where each came from (an
    option or a variable) for the error message. This is the only place TOML, options and environment meet.
    """
    configs_dir = Path(configs_dir or "configs")
    show = load_show(configs_dir / "show.toml")
    show = apply_overrides(show, overrides, source=configs_dir / "show.toml", names=sources)
    return Settings(show=show, configs_dir=configs_dir.resolve(), build_root=Path(build_root or "build"))


def storage_sources() -> dict[str, str]:
    """``storage.<field>`` -> its environment variable, for :func:`load_settings`'s ``sources``."""
    return {f"storage.{f}": var for f, var in StorageSettings.ENV.items()}


def whisper_settings(configs_dir: Path | None, overrides: Mapping[str, Any]) -> WhisperSettings:
    """``[whisper]`` from show.toml when there is one (else the defaults), with non-``None`` options laid on top.

    For ``produce transcribe FILE``, which needs no show: a ``configs_dir`` given explicitly must hold a show.toml.
    """
    show_toml = Path(configs_dir or "configs") / "show.toml"
    base = load_show(show_toml).whisper if (configs_dir is not None or show_toml.is_file()) else WhisperSettings()
    data = {**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return WhisperSettings.model_validate(data)
    except ValidationError as e:
        names = {k: f"option for whisper.{k}" for k in overrides}
        raise ConfigError(describe_validation_error(e, names), hint="see `produce transcribe --help`") from None


def apply_overrides(
    cfg: ShowConfig, overrides: Mapping[str, Any], *, source: Path, names: Mapping[str, str] | None = None
) -> ShowConfig:
    """Lay non-``None`` dotted overrides on ``cfg`` and re-validate; ``names`` as in :func:`load_settings`."""
    items = {k: v.strip() if isinstance(v, str) else v for k, v in overrides.items() if v is not None}
    if not items:
        return cfg
    data = cfg.model_dump()
    for key, value in items.items():
        section, _, field = key.partition(".")
        if section not in data or not isinstance(data[section], dict) or field not in data[section]:
            raise ConfigError(f"unknown setting {key!r}")
        data[section][field] = value
    try:
        return ShowConfig.model_validate(data)
    except ValidationError as e:
        label = (names or {}).get(_fmt_loc(tuple(e.errors()[0]["loc"])))
        if label:
            raise ConfigError(
                describe_validation_error(e, names), where="environment", hint=f"fix or unset {label}"
            ) from None
        raise _validation_error(Path(f"{source} (with command-line options)"), e) from None
