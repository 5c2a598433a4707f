"""Shared fixtures for the tag, chapter and artwork tests: a short real MP3, its master.json, configs, artwork.

The MP3 is made with ffmpeg's lavfi sources (a few seconds), the artwork with Pillow. Every test gets copies in its
own tmp folder, so the pristine inputs are never modified.
"""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from pathlib import Path

from conftest import write_fake_master
from PIL import Image

from keylime_prod import ffmpeg
from keylime_prod.audio.artefact import Master, TimelineSegment
from keylime_prod.config import EpisodeConfig, Settings, load_episode, load_settings

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


def sha256(path: Path) -> str:
    """SHA-256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_mp3(dest: Path, seconds: float = DURATION) -> Path:
    """A stereo 44.1 kHz 128 kbps CBR MP3 without tags, as the mastering stage writes it."""
    ffmpeg.run(
        ["-v", "error", "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={seconds}",
         "-af", "volume=-18dB", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "1",
         "-id3v2_version", "0", "-map_metadata", "-1", "-y", str(dest)]
    )  # fmt: skip
    return dest


def make_image(dest: Path, size: tuple[int, int] = (1400, 1400), mode: str = "RGB", fmt: str | None = None) -> Path:
    """An image with real content (a gradient) in ``mode``, saved as ``fmt`` (default: from the extension)."""
    w, h = size
    grad = Image.linear_gradient("L").resize((w, h))
    if mode == "RGB":
        img = Image.merge("RGB", (grad, grad.transpose(Image.Transpose.FLIP_TOP_BOTTOM), Image.new("L", (w, h), 90)))
    elif mode == "RGBA":
        img = Image.merge("RGBA", (grad, grad, grad, Image.new("L", (w, h), 128)))
    else:
        img = Image.merge("RGB", (grad, grad, grad)).convert(mode)
    img.save(dest, format=fmt)
    return dest


def write_configs(
    root: Path, *, chapters: str | None = None, title: str = EMOJI_TITLE, id3_version: int = 3, extra_show: str = ""
) -> Path:
    """A configs folder with show.toml (artwork ``assets/cover.jpg``) and ``episodes/ep-7.toml``; returns it."""
    cfg = root / "configs"
    (cfg / "episodes").mkdir(parents=True, exist_ok=True)
    (cfg / "assets").mkdir(exist_ok=True)
    if not (cfg / "assets" / "cover.jpg").exists():
        make_image(cfg / "assets" / "cover.jpg")
    (cfg / "show.toml").write_text(
        textwrap.dedent(
            f"""\
            [show]
            title = "Test Show ✓"
            description = "A show used by the tests."
            author = "Test Network"
            owner_name = "Owner"
            owner_email = "owner@example.org"
            artwork = "assets/cover.jpg"
            website = "https://show.example.org/"
            feed_url = "https://media.example.org/podcast/feed.xml"
            copyright = "2019 Test Network"

            [tags]
            id3_version = {id3_version}
            {extra_show}
            """
        ),
        encoding="utf-8",
    )
    if chapters is None:
        chapters = textwrap.dedent(
            """\
            [[chapters]]
            title = "Welcome 👋"
            start = "00:00"

            [[chapters]]
            title = "Part two: naïve café"
            start = "00:02"
            url = "https://example.org/part-two"

            [[chapters]]
            title = "Part three"
            start = "00:03.5"
            """
        )
    (cfg / "episodes" / f"{EPISODE_ID}.toml").write_text(
        textwrap.dedent(
            f"""\
            number = 7
            title = "{title}"
            publish_date = 2019-11-26T06:00:00Z
            link = "https://show.example.org/episodes/7"
            summary = "An episode about failure, with ümlauts and 🎙️."
            recordings = ["../raw/part-1.flac"]

            [[hosts]]
            name = "Lara Varpio"

            [[guests]]
            name = "Zoë Guest"
            role = "guest"

            """
        )
        + chapters,
        encoding="utf-8",
    )
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
    import re

    err = ffmpeg.run(["-i", str(mp3)], quiet=True).stderr.decode("utf-8", "replace")
    m = re.search(r"Duration: [^,]+, start: (\d+\.\d+)", err)
    assert m, err
    return float(m.group(1))


def decode_pcm(mp3: Path) -> bytes:
    """Decode with ffmpeg to raw s16le; asserts ffmpeg says nothing at ``-v error``."""
    proc = ffmpeg.run(["-v", "error", "-i", str(mp3), "-map", "0:a:0", "-f", "s16le", "-"], where=mp3)
    assert proc.stderr == b"", proc.stderr
    return proc.stdout
