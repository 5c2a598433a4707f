"""The tagged-episode setup of the tag, chapter and ID3 reader tests: episode 7 of a test show, a short MP3 and
its master.json on a known timeline, configs with unicode everywhere, artwork.

The MP3 is made with ffmpeg's lavfi sources (a few seconds), the artwork with Pillow. Every test gets copies in its
own tmp folder, so the pristine inputs are never modified.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from keylime_prod import ffmpeg
from keylime_prod.audio.artefact import Master, TimelineSegment
from keylime_prod.config import EpisodeConfig, Settings, ShowConfig, ShowInfo, TagSettings, load_episode, load_settings
from support.configs import write_episode, write_show
from support.media import make_image, sha256, write_fake_master
from support.media import make_mp3 as _make_mp3

__all__ = ["make_image", "sha256"]  # with the names below: the tag tests make covers and compare files with these

EPISODE_ID = "ep-7"
DURATION = 12.0
#: intro, a disclaimer after it, the body (0.25 s of leading silence trimmed), an outro crossfaded over the body end.
SEGMENTS = (
    TimelineSegment("intro", 0.0, 3.0, sources=("intro.mp3",)),
    TimelineSegment("disclaimer", 3.0, 5.0, sources=("disclaimer.flac",)),
    TimelineSegment("body", 5.0, 10.0, source_start=0.25, sources=("part-1.flac",)),
    TimelineSegment("outro", 9.5, 12.0, sources=("outro.ogg",)),
)
EMOJI_TITLE = "Ça marche? 🎧 Failure, fear & résumé 失敗"
#: The configured chapters, with clock strings as a user types them and a URL on one.
CHAPTERS: tuple[dict[str, str], ...] = (
    {"title": "Welcome 👋", "start": "00:00"},
    {"title": "Part two: naïve café", "start": "00:02", "url": "https://example.org/part-two"},
    {"title": "Part three", "start": "00:03.5"},
)


def make_mp3(dest: Path, seconds: float = DURATION) -> Path:
    """The episode's untagged MP3 (a 330 Hz tone), as the mastering stage writes it."""
    return _make_mp3(dest, seconds)


def write_configs(
    root: Path,
    *,
    chapters: Sequence[Mapping[str, Any]] = CHAPTERS,
    title: str = EMOJI_TITLE,
    id3_version: int = 3,
    tags: Mapping[str, Any] | None = None,
    **episode: Any,
) -> Path:
    """A configs folder with show.toml (artwork ``assets/cover.jpg``; ``[tags]`` from ``id3_version`` and ``tags``)
    and ``episodes/ep-7.toml`` (``chapters`` written as given, other fields from ``episode``); returns it."""
    cfg = root / "configs"
    (cfg / "assets").mkdir(parents=True, exist_ok=True)
    if not (cfg / "assets" / "cover.jpg").exists():
        make_image(cfg / "assets" / "cover.jpg")
    show = ShowConfig(
        show=ShowInfo.model_validate(
            {
                "title": "Test Show ✓",
                "description": "A show used by the tests.",
                "author": "Test Network",
                "owner_name": "Owner",
                "owner_email": "owner@example.org",
                "artwork": "assets/cover.jpg",
                "website": "https://show.example.org/",
                "feed_url": "https://media.example.org/podcast/feed.xml",
                "copyright": "2019 Test Network",
            }
        ),
        tags=TagSettings.model_validate({"id3_version": id3_version, **(tags or {})}),
    )
    write_show(cfg, show, tags={"id3_version": id3_version})  # written even at its default: the show's choice
    ep = EpisodeConfig.model_validate(
        {
            "id": EPISODE_ID,
            "number": 7,
            "title": title,
            "publish_date": dt.datetime(2019, 11, 26, 6, tzinfo=dt.timezone.utc),
            "link": "https://show.example.org/episodes/7",
            "summary": "An episode about failure, with ümlauts and 🎙️.",
            "recordings": ["../raw/part-1.flac"],
            "hosts": [{"name": "Lara Varpio"}],
            "guests": [{"name": "Zoë Guest", "role": "guest"}],
            **episode,
        }
    )
    write_episode(cfg, ep, **({"chapters": [dict(c) for c in chapters]} if chapters else {}))
    return cfg


def make_master(build_dir: Path, pristine_mp3: Path | None = None) -> Master:
    """Copy (or make) the MP3 into ``build_dir`` and write a matching ``master.json`` there."""
    build_dir.mkdir(parents=True, exist_ok=True)
    mp3 = build_dir / f"{EPISODE_ID}.mp3"
    if pristine_mp3 is not None:
        shutil.copyfile(pristine_mp3, mp3)
    else:
        make_mp3(mp3)
    master = write_fake_master(build_dir, mp3, DURATION, EPISODE_ID, SEGMENTS)
    return Master.load(master.report)


def load(cfg: Path, build_root: Path) -> tuple[Settings, EpisodeConfig]:
    """Settings and the episode from a configs folder made by :func:`write_configs`."""
    return load_settings(cfg, build_root), load_episode(cfg, EPISODE_ID)


def ffmpeg_start_offset(mp3: Path) -> float:
    """The ``start:`` ffmpeg reports for an MP3 (the encoder delay it exposes, e.g. 0.025057 s).

    The ffmpeg command line shifts chapters by minus this start so its output starts at zero; chapter times in
    ``-f ffmetadata`` output are therefore ``ID3 time - start``.
    """
    err = ffmpeg.run(["-i", str(mp3)], quiet=True).stderr.decode("utf-8", "replace")
    m = re.search(r"Duration: [^,]+, start: (\d+\.\d+)", err)
    assert m, err
    return float(m.group(1))


def decode_pcm(mp3: Path) -> bytes:
    """Decode with ffmpeg to raw s16le; asserts ffmpeg says nothing at ``-v error``."""
    proc = ffmpeg.run(["-v", "error", "-i", str(mp3), "-map", "0:a:0", "-f", "s16le", "-"], where=mp3)
    assert proc.stderr == b"", proc.stderr
    return proc.stdout


def tagged_build(tmp_path: Path) -> tuple[Path, Path]:
    """Configs and a build of episode 7 in ``tmp_path``: a real short MP3 as its master, marked up to date, and
    chapters and tags made through the CLI. Returns ``(configs, build)``."""
    from typer.testing import CliRunner

    from keylime_prod.cli import app
    from keylime_prod.pipeline import mark_up_to_date

    cfg = write_configs(tmp_path)
    build = tmp_path / "build"
    make_master(build / EPISODE_ID, make_mp3(tmp_path / "pristine.mp3"))
    mark_up_to_date(load_settings(cfg, build), EPISODE_ID, "master")
    tagged = CliRunner().invoke(app, ["tag", EPISODE_ID, "--configs", str(cfg), "--build-dir", str(build), "-q"])
    assert tagged.exit_code == 0, tagged.output
    return cfg, build
