"""Shared fixtures: real ffmpeg, generated audio at known levels, and throw-away show configs."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from keylime_prod import ffmpeg, fsutil
from keylime_prod.audio.artefact import Loudness, Master, TimelineSegment

#: Publishing fixtures (rclone serve s3, AWS env, fake builds) live in their own plugin module.
pytest_plugins = ["conftest_s3", "conftest_archive"]

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent


def run_ffmpeg(args: Sequence[str]) -> None:
    """Run the project's ffmpeg (tests generate their audio with lavfi, as yt-dlp's tests do)."""
    subprocess.run([ffmpeg.binary(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="session", autouse=True)
def _own_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's own TMPDIR (for this process and every produce it starts): locks and scratch files of other
    keylime-prod runs on the machine are never seen, nor ours by them."""
    import os
    import tempfile

    own = tmp_path_factory.mktemp("tmp")
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(own)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before
        tempfile.tempdir = None


@pytest.fixture(scope="session")
def jfk() -> Path:
    """11 s of real speech (whisper.cpp sample, MIT; see tests/data/README.md)."""
    return DATA / "jfk.wav"


@pytest.fixture
def make_speech(tmp_path: Path, jfk: Path) -> Callable[..., Path]:
    """Make a speech recording: jfk.wav at ``gain_db``, padded with lead/trail silence and a little room noise.

    Extra options: ``repeat`` (times to loop the speech), ``rate``, ``channels``, ``codec`` (ffmpeg encoder),
    ``name`` (file name, whose extension picks the container), ``filters`` (appended to the chain).
    """

    def make(
        name: str = "speech.wav",
        gain_db: float = 0.0,
        *,
        repeat: int = 1,
        lead: float = 1.5,
        trail: float = 1.5,
        rate: int = 48000,
        channels: int = 1,
        codec: str | None = None,
        noise_db: float = -65.0,
        filters: str = "",
    ) -> Path:
        out = tmp_path / name
        chain = (
            f"[0:a]aloop=loop={repeat - 1}:size=2147483647,aresample={rate},volume={gain_db}dB,"
            f"adelay={int(lead * 1000)}:all=1,apad=pad_dur={trail}[s];"
            f"anoisesrc=color=pink:amplitude={10 ** (noise_db / 20):.6f}:seed=7:r={rate}[n];"
            f"[s][n]amix=inputs=2:duration=first:normalize=0{',' + filters if filters else ''},"
            f"aformat=channel_layouts={'mono' if channels == 1 else 'stereo'}[o]"
        )
        args = ["-i", str(jfk), "-filter_complex", chain, "-map", "[o]", "-ar", str(rate)]
        if codec:
            args += ["-c:a", codec]
        run_ffmpeg([*args, str(out)])
        return out

    return make


@pytest.fixture
def make_tone(tmp_path: Path) -> Callable[..., Path]:
    """Make a sine tone file: ``make_tone("intro.mp3", freq=440, seconds=5, db=-20)``."""

    def make(name: str, freq: float = 440.0, seconds: float = 5.0, db: float = -20.0, channels: int = 2) -> Path:
        out = tmp_path / name
        amp = 10 ** (db / 20)
        layout = "mono" if channels == 1 else "stereo"
        run_ffmpeg(
            [
                "-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}:sample_rate=44100",
                "-af", f"volume={amp:.6f},aformat=channel_layouts={layout}", str(out),
            ]
        )  # fmt: skip
        return out

    return make


SHOW_TOML = """\
[show]
title = "Test Show"
description = "A show for tests."
author = "Test Author"
owner_name = "Test Owner"
owner_email = "owner@example.org"
artwork = "{artwork}"
website = "https://example.org/"
feed_url = "https://media.example.org/feed.xml"
copyright = "© 2026 Test"
disclaimer_text = "This is a test disclaimer."

[[show.hosts]]
name = "Lara Varpio"

[assets]
{assets}

[audio]
{audio}
"""

EPISODE_TOML = """\
number = 1
title = "Test episode"
publish_date = 2026-01-01
summary = "Testing."
recordings = [{recordings}]

[[hosts]]
name = "Lara Varpio"
"""


@pytest.fixture
def make_configs(tmp_path: Path) -> Callable[..., Path]:
    """Write ``configs/show.toml`` and ``configs/episodes/<id>.toml`` around given audio files; return the folder.

    ``assets`` maps intro/disclaimer/outro to files; ``audio`` holds [audio] overrides; ``episode_extra`` is TOML
    appended to the episode file.
    """

    def make(
        recordings: Sequence[Path],
        *,
        assets: dict[str, Path] | None = None,
        audio: dict[str, object] | None = None,
        episode_id: str = "ep-1",
        episode_extra: str = "",
        artwork: Path | None = None,
    ) -> Path:
        cfg = tmp_path / "configs"
        (cfg / "episodes").mkdir(parents=True, exist_ok=True)
        art = artwork or REPO / "configs" / "assets" / "cover.jpg"
        assets_toml = "\n".join(f'{k} = "{v}"' for k, v in (assets or {}).items())
        audio_toml = "\n".join(f"{k} = {v!r}" if not isinstance(v, bool) else f"{k} = {str(v).lower()}"
                               for k, v in (audio or {}).items())  # fmt: skip
        (cfg / "show.toml").write_text(SHOW_TOML.format(artwork=art, assets=assets_toml, audio=audio_toml))
        recs = ", ".join(f'"{r}"' for r in recordings)
        text = EPISODE_TOML.format(recordings=recs) + textwrap.dedent(episode_extra)
        (cfg / "episodes" / f"{episode_id}.toml").write_text(text)
        return cfg

    return make


def ebur128(path: Path) -> ffmpeg.EbuR128:
    """Independent loudness check: ffmpeg's own EBU R128 scanner with true peak on."""
    return ffmpeg.measure_ebur128(path)


def ebur128_curves(path: Path) -> tuple[list[float], list[float]]:
    """ffmpeg's own momentary and short-term loudness of ``path``, every 100 ms (its ``framelog``), to check the
    curves loudness.json records against a meter we did not write."""
    argv = ffmpeg.command(["-nostats", "-v", "verbose", "-i", str(path), "-af", "ebur128=framelog=verbose"])
    err = subprocess.run([*argv, "-f", "null", "-"], capture_output=True, check=True).stderr.decode()
    rows = [re.search(r"t: *[\d.]+ .* M: *(-?[\d.]+) S: *(-?[\d.]+)", ln) for ln in err.splitlines()]
    return [float(r.group(1)) for r in rows if r], [float(r.group(2)) for r in rows if r]


def copy_tree(src: Path, dest: Path) -> Path:
    """Copy a folder (fixtures are copied before anything writes to them)."""
    shutil.copytree(src, dest)
    return dest


def write_fake_master(
    build: Path, mp3: Path, duration: float, episode_id: str, segments: Sequence[TimelineSegment] | None = None
) -> Master:
    """A ``master.json`` beside ``mp3`` as the mastering stage writes it, for tests of later stages that need a
    master but not mastering (default timeline: one body segment over the whole file)."""
    loud = Loudness(integrated_lufs=-16.0, lra_lu=3.0, true_peak_dbtp=-1.5, sample_peak_dbfs=-1.8)
    master = Master(
        episode_id=episode_id,
        mp3=mp3,
        report=build / "master.json",
        duration=duration,
        sample_rate=44100,
        channels=2,
        bitrate_kbps=128,
        audio_sha256=fsutil.sha256_file(mp3),
        segments=tuple(segments) if segments is not None else (TimelineSegment("body", 0.0, duration),),
        input_loudness=loud,
        output_loudness=loud,
        method="gain",
        gain_db=0.0,
        tools={"ffmpeg": ffmpeg.version()},
    )
    fsutil.write_json(master.report, master.to_json())
    return master
