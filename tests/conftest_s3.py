"""Fixtures for publishing tests: a real ``rclone serve s3``, AWS credentials in the environment, a fake build.

Loaded from tests/conftest.py through ``pytest_plugins``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from s3server import ACCESS_KEY, SECRET_KEY, RcloneS3

from keylime_prod import fsutil
from keylime_prod.chapters.artefact import ChapterMark
from keylime_prod.config import FeedSettings, Person, ShowConfig, ShowInfo, StorageSettings

if TYPE_CHECKING:
    from keylime_prod.publish import Release

# keylime_prod.publish is imported inside the fixtures, so a broken publish module cannot break other tests.
REPO = Path(__file__).resolve().parent.parent
COVER = REPO / "configs" / "assets" / "cover.jpg"
BUCKET = "podcasts"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The test server's keys in the standard AWS variables, and no stray profile or config file."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    for var in ("KEYLIME_S3_ENDPOINT_URL", "KEYLIME_S3_BUCKET", "KEYLIME_S3_PREFIX", "KEYLIME_PUBLIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def s3_server(tmp_path: Path, aws_env: dict[str, str]) -> Iterator[RcloneS3]:
    """A running ``rclone serve s3`` over ``tmp_path/s3`` with one bucket, stopped by its pid afterwards."""
    server = RcloneS3(tmp_path / "s3")
    server.make_bucket(BUCKET)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def storage_settings(endpoint_url: str | None, **kw: Any) -> StorageSettings:
    """Settings for the test bucket (small multipart sizes so tests can cross the threshold cheaply)."""
    base: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "bucket": BUCKET if endpoint_url else None,
        "prefix": "podcast",
        "multipart_threshold_mb": 5,
        "multipart_chunk_mb": 5,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 10.0,
        "max_attempts": 4,
    }
    base.update(kw)
    return StorageSettings(**base)


def make_show(storage: StorageSettings, *, title: str = "Test Show", artwork: Path = COVER, **info: Any) -> ShowConfig:
    """A complete show config for publishing tests."""
    fields: dict[str, Any] = {
        "title": title,
        "description": "A show for tests & checks <with markup>.",
        "author": "Test Author",
        "owner_name": "Test Owner",
        "owner_email": "owner@example.org",
        "artwork": artwork,
        "website": "https://example.org/",
        "feed_url": "https://media.example.org/podcast/feed.xml",
        "copyright": "© 2026 Test",
        "hosts": (Person(name="Lara Varpio"), Person(name="Jason Frank")),
    }
    fields.update(info)
    return ShowConfig(show=ShowInfo(**fields), storage=storage, feed=FeedSettings())


def sha256(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def make_release(tmp_path: Path, make_tone: Callable[..., Path]) -> Callable[..., Release]:
    """Build a fake episode build folder (a short lavfi MP3, transcripts, chapters, notes) and its :class:`Release`.

    ``make_release("ep-1", title=..., publish_date=..., audio=Path, seconds=3)``.
    """
    from keylime_prod.config import EpisodeConfig
    from keylime_prod.publish import EpisodeFile, Release

    def make(
        episode_id: str = "ep-1",
        *,
        title: str = "Test episode",
        summary: str = "Testing the publish stage.",
        publish_date: dt.datetime | str = "2026-01-01T06:00:00Z",
        number: int = 1,
        audio: Path | None = None,
        seconds: float = 3.0,
        freq: float = 440.0,
        guests: tuple[Person, ...] = (),
        artwork: Path | None = None,
        with_extras: bool = True,
        guid: str | None = None,
    ) -> Release:
        build = tmp_path / "build" / episode_id
        build.mkdir(parents=True, exist_ok=True)
        mp3 = audio or make_tone(f"{episode_id}-{freq:g}.mp3", freq=freq, seconds=seconds)
        if audio is None:
            mp3 = mp3.replace(build / f"{episode_id}.mp3")
        episode = EpisodeConfig(
            id=episode_id,
            number=number,
            season=1,
            title=title,
            publish_date=publish_date,
            hosts=(Person(name="Lara Varpio"),),
            guests=guests,
            summary=summary,
            recordings=(Path("raw.wav"),),
            artwork=artwork,
            guid=guid,
        )
        files = [EpisodeFile("audio", mp3, "mp3")]
        marks = (ChapterMark("Welcome", 0.0, 1.0), ChapterMark("The paper & its <claims>", 1.0, seconds))
        if with_extras:
            cues = [(0.0, 1.0, "Hello & welcome."), (1.0, seconds, 'The paper <claims> "much" 🎧.')]
            vtt = "WEBVTT\n\n" + "\n".join(
                f"00:00:{a:06.3f} --> 00:00:{b:06.3f}\n<v Lara Varpio>{t}\n" for a, b, t in cues
            )
            srt = "\n".join(
                f"{i}\n00:00:{a:06.3f} --> 00:00:{b:06.3f}\n{t}\n".replace(".", ",", 2)
                for i, (a, b, t) in enumerate(cues, 1)
            )
            tj = {"version": "1.0.0", "segments": [{"startTime": a, "endTime": b, "body": t} for a, b, t in cues]}
            paths = {
                "vtt": fsutil.write_text(build / f"{episode_id}.vtt", vtt),
                "srt": fsutil.write_text(build / f"{episode_id}.srt", srt),
                "json": fsutil.write_json(build / f"{episode_id}.json", tj),
                "txt": fsutil.write_text(build / f"{episode_id}.txt", "\n".join(t for _, _, t in cues) + "\n"),
            }
            files += [EpisodeFile("transcript", p, fmt) for fmt, p in paths.items()]
            chapters = {"version": "1.2.0", "chapters": [{"startTime": m.start, "title": m.title} for m in marks]}
            files.append(EpisodeFile("chapters", fsutil.write_json(build / "chapters.json", chapters), "json"))

            # Relative links to sibling files, as the notes stage writes them; publishing asks for them again with
            # the published URLs (Release.render_notes).
            def render(links: Mapping[str, str], folder: Path) -> tuple[Path, Path]:
                vtt = links.get(f"{episode_id}.vtt", f"{episode_id}.vtt")
                md = fsutil.write_text(folder / "show-notes.md", f"# {title}\n\n{summary}\n\n[Captions](<{vtt}>)\n")
                page = fsutil.write_text(
                    folder / "show-notes.html",
                    f"<!DOCTYPE html><html><body><article><h1>{title}</h1><p>Notes &amp; more</p>"
                    f'<p><a href="{html.escape(vtt)}">Captions</a></p></article></body></html>',
                )
                return md, page

            md, page = render({}, build)
            files += [EpisodeFile("notes", md, "md"), EpisodeFile("notes", page, "html")]
        files.append(EpisodeFile("cover", artwork or COVER, "jpg" if (artwork or COVER).suffix == ".jpg" else "png"))
        return Release(
            episode=episode,
            files=tuple(files),
            duration=seconds,
            transcript_language="en",
            chapters=marks if with_extras else (),
            render_notes=render if with_extras else None,
        )

    return make


def read_json(data: bytes) -> Any:
    """Parse JSON bytes."""
    return json.loads(data.decode("utf-8"))
