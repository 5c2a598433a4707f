"""Hostile and clumsy inputs (issue 13): each test reproduces one case and checks the outcome a user gets.

docs/reliability.md lists every case with its expected outcome and the test that covers it: add to both.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from support import tagging as tf
from support.media import ebur128
from typer.testing import CliRunner

from keylime_prod import fsutil
from keylime_prod.cli import app
from keylime_prod.config import EPISODE_ID_RE, check_episode_id, list_episodes, load_episode, load_settings, load_show
from keylime_prod.errors import AudioError, ConfigError, KeylimeError, PublishError, TagError, redact
from keylime_prod.pipeline import run_episode
from keylime_prod.pipeline.release import publish_episodes
from keylime_prod.tags import check_artwork

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def configs(demo_configs: Path) -> Path:
    """The demo configs, copied for editing (``demo_configs`` in tests/support/fixtures/media.py)."""
    return demo_configs


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _episode(configs: Path) -> Path:
    return configs / "episodes" / "episode-258.toml"


def _cli(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env)


# --------------------------------------------------------------------------------------------- 2: URL schemes


@pytest.mark.parametrize(
    ("where", "old", "new", "field"),
    [
        ("episode", 'link = "https:', 'link = "javascript:', "field link"),
        ("episode", "[paper]\n", '[paper]\nurl = "javascript:alert(8)"\n', "field paper.url"),
        ("episode", "[[chapters]]\n", '[[chapters]]\nurl = "javascript:alert(8)"\n', "field chapters[0].url"),
        ("episode", "[[chapters]]\n", '[[chapters]]\nimg = "data:image/png;base64,AAAA"\n', "field chapters[0].img"),
        ("episode", "[[hosts]]\n", '[[hosts]]\nhref = "javascript:alert(8)"\n', "field hosts[0].href"),
        ("show", "[[show.hosts]]\n", '[[show.hosts]]\nimg = "file:///etc/passwd"\n', "field show.hosts[0].img"),
        ("show", 'website = "', 'website = "javascript:', "field show.website"),
    ],
)
def test_non_http_urls_are_config_errors_naming_the_field(
    configs: Path, where: str, old: str, new: str, field: str
) -> None:
    path = _episode(configs) if where == "episode" else configs / "show.toml"
    _edit(path, old, new)
    with pytest.raises(ConfigError) as e:
        load_show(configs / "show.toml") if where == "show" else load_episode(configs, "episode-258")
    assert field in str(e.value) and "http(s) URL" in str(e.value) and path.name in str(e.value)


# ---------------------------------------------------------------------------------------------- 3: date range


@pytest.mark.parametrize("date", ["9999-12-31T23:59:59-12:00", "0001-01-01", "1969-12-31"])
def test_publish_dates_outside_a_sane_range_are_rejected_at_config_time(configs: Path, date: str) -> None:
    _edit(_episode(configs), "publish_date = 2019-11-26T06:00:00Z", f"publish_date = {date}")
    with pytest.raises(ConfigError, match=r"field publish_date: .*outside 1970-2199"):
        load_episode(configs, "episode-258")
    result = _cli("check", "--configs", str(configs))
    assert result.exit_code == 2 and "publish_date" in result.stderr and "Traceback" not in result.output


# ------------------------------------------------------------------------------------------- 4: huge artwork


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` (Pillow reads the size before any pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_a_20000px_cover_is_an_artwork_rule_error_and_produce_check_fails(configs: Path, tmp_path: Path) -> None:
    bomb = _png_header(tmp_path / "huge.png", 20000, 20000)
    with pytest.raises(TagError, match=r"artwork rule: at most 3000 px square, this image is far larger"):
        check_artwork(bomb)
    _edit(configs / "show.toml", 'artwork = "assets/cover.jpg"', f'artwork = "{bomb}"')
    result = _cli("check", "--configs", str(configs))
    assert result.exit_code == 6 and "huge.png" in result.stderr and "Traceback" not in result.output


# ------------------------------------------------------------------------------------------ 6: secrets in URLs


def test_credentials_in_the_endpoint_url_are_refused_and_never_printed(configs: Path) -> None:
    env = {"KEYLIME_S3_ENDPOINT_URL": "http://AK:SECRET@127.0.0.1:9", "KEYLIME_S3_BUCKET": "b"}
    result = _cli("publish", "episode-258", "--configs", str(configs), "--verbose", env=env)
    assert result.exit_code == 2
    assert "KEYLIME_S3_ENDPOINT_URL" in result.stderr and "AWS_SECRET_ACCESS_KEY" in result.stderr
    assert "SECRET" not in result.stderr.replace("AWS_SECRET_ACCESS_KEY", "")


def test_redaction_covers_the_error_printer_the_log_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert redact('Could not connect to "http://AK:SECRET@127.0.0.1:9/b"') == (
        'Could not connect to "http://***@127.0.0.1:9/b"'
    )
    # The storage endpoint a public base URL is built from keeps working: the credentials go, the host stays.
    assert redact("http://AK:SECRET@[::1]:9000/b", drop=True) == "http://[::1]:9000/b"
    from keylime_prod.cli import _Redact

    record = logging.LogRecord("keylime_prod", logging.ERROR, __file__, 1, "to %s", ("https://u:p@h/x",), None)
    try:
        raise OSError("endpoint https://AK:SECRET@h failed")
    except OSError:
        import sys

        record.exc_info = sys.exc_info()
    assert _Redact().filter(record)
    text = record.getMessage()
    assert "https://***@h/x" in text and "Traceback" in text and "SECRET" not in text and "u:p" not in text


# --------------------------------------------------------------------------------- 10, 11, 12: config text


def test_episode_ids_are_matched_whole_so_a_trailing_newline_is_refused(configs: Path) -> None:
    assert EPISODE_ID_RE.fullmatch("episode-258") and not EPISODE_ID_RE.fullmatch("episode-258\n")
    with pytest.raises(ConfigError, match="invalid episode id"):
        check_episode_id("episode-258\n")
    (configs / "episodes" / "bad\n.toml").write_text("x = 1")
    assert list_episodes(configs) == ["episode-258"]


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b"])
def test_control_characters_in_config_text_are_refused_naming_the_field(configs: Path, char: str) -> None:
    escaped = f"\\u{ord(char):04x}"
    _edit(_episode(configs), 'title = "', f'title = "Bad {escaped} ')
    with pytest.raises(ConfigError, match=r"field title: .*control character") as e:
        load_episode(configs, "episode-258")
    assert "episode-258.toml" in str(e.value)
    result = _cli("check", "--configs", str(configs))
    assert result.exit_code == 2 and "control character" in result.stderr


def test_a_utf8_bom_is_accepted(configs: Path) -> None:
    for path in (configs / "show.toml", _episode(configs)):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_show(configs / "show.toml").show.title and load_episode(configs, "episode-258").number == 258


# ------------------------------------------------------------------------------------ 18: --json on errors


def test_json_mode_prints_one_json_document_for_an_error(configs: Path) -> None:
    env = {"KEYLIME_S3_ENDPOINT_URL": "http://127.0.0.1:9", "KEYLIME_S3_BUCKET": "bucket", "AWS_ACCESS_KEY_ID": "x"}
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    result = _cli("publish", "--due", "--json", "--configs", str(configs), env=env)
    assert result.exit_code == 7
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 7 and doc["kind"] == "StorageError" and doc["error"]


# ------------------------------------------------------------------------ pipeline: builds, caches and locks


@pytest.fixture
def tagged_build(tmp_path: Path):  # type: ignore[no-untyped-def]
    """configs + a fake master marked up to date, chapters and tag built through the CLI."""
    return tf.tagged_build(tmp_path)


def _retitle(cfg: Path) -> None:
    tf.write_configs(cfg.parent, title="A new title")  # the same configs, the episode title edited


def test_publishing_a_stale_build_is_refused_with_one_line(tagged_build) -> None:  # type: ignore[no-untyped-def]
    cfg, build = tagged_build
    _retitle(cfg)
    settings = load_settings(cfg, build).model_copy()
    with pytest.raises(PublishError) as e:
        publish_episodes(settings, [tf.EPISODE_ID])
    assert "out of date (chapters, tag" in str(e.value) and f"produce {tf.EPISODE_ID}" in str(e.value)
    assert not (tmp_public := cfg.parent / "public").exists() or not any(tmp_public.rglob("feed.xml"))


def test_tag_after_a_title_edit_rebuilds_what_it_needs(tagged_build) -> None:  # type: ignore[no-untyped-def]
    cfg, build = tagged_build
    # Notes from before the edit lie in the folder; the tag stage no longer reads them back.
    (build / tf.EPISODE_ID / "show-notes.md").write_text("# Old\n\n(00:00:00) Intro\n", encoding="utf-8")
    _retitle(cfg)
    again = _cli("tag", tf.EPISODE_ID, "--configs", str(cfg), "--build-dir", str(build), "--json")
    assert again.exit_code == 0, again.output
    stages = {s["name"]: s["cached"] for s in json.loads(again.stdout)["stages"]}
    assert stages == {"speakers": True, "master": True, "edit": True, "chapters": False, "tag": False}


def test_a_master_mp3_truncated_by_hand_is_not_taken_as_cached(tagged_build) -> None:  # type: ignore[no-untyped-def]
    cfg, build = tagged_build
    mp3 = build / tf.EPISODE_ID / f"{tf.EPISODE_ID}.mp3"
    mp3.write_bytes(mp3.read_bytes()[:1000])
    seen: list[tuple[str, str]] = []
    # The master is made again (the fixture's raw recording does not exist, so that run stops on it).
    with pytest.raises(AudioError):
        run_episode(load_settings(cfg, build), tf.EPISODE_ID, upto="tag", on_stage=lambda n, w: seen.append((n, w)))
    assert seen == [("speakers", "cached"), ("master", "start")]


def test_stale_temporaries_of_a_killed_run_are_removed_at_the_next_start(tagged_build) -> None:  # type: ignore[no-untyped-def]
    cfg, build = tagged_build
    root = build / tf.EPISODE_ID
    (root / ".master-abc123").mkdir()
    (root / ".master-abc123" / "render-1.mp3").write_bytes(b"x" * 1000)
    (root / f".{tf.EPISODE_ID}.mp3.zz.mp3.part").write_bytes(b"x" * 1000)
    (root / "tagged" / f".{tf.EPISODE_ID}.mp3.yy.mp3.part").write_bytes(b"x" * 1000)
    assert _cli("tag", tf.EPISODE_ID, "--configs", str(cfg), "--build-dir", str(build), "-q").exit_code == 0
    assert not [p for p in root.rglob(".*") if p.name != ".lock"]


def test_a_second_run_on_the_same_build_folder_says_who_holds_it(tagged_build) -> None:  # type: ignore[no-untyped-def]
    cfg, build = tagged_build
    with fsutil.hold_lock(build / tf.EPISODE_ID / ".lock", "the build folder"):
        second = _cli("tag", tf.EPISODE_ID, "--configs", str(cfg), "--build-dir", str(build))
    assert second.exit_code == 1
    (line,) = second.stderr.strip().splitlines()
    assert "is in use by pid" in line and "wait until that run ends" in line
    with fsutil.hold_lock(build / "x.lock", "a"), pytest.raises(KeylimeError, match="in use by pid"):
        fsutil.hold_lock(build / "x.lock", "a").__enter__()


# --------------------------------------------------------------------------------------- publishing: feed, disk


def test_a_live_episode_redated_into_the_future_stays_in_the_feed_unless_withdrawn(
    tmp_path: Path,
    make_release,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    import datetime as dt

    import feedparser
    from support.configs import make_show, storage_settings

    from keylime_prod import publish

    show = make_show(storage_settings(None, local_dir=tmp_path / "public"))
    now = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
    publish.publish([make_release(publish_date="2026-01-01T06:00:00Z")], show, now=now)
    feed = tmp_path / "public" / "podcast" / "feed.xml"
    assert len(feedparser.parse(feed.read_bytes()).entries) == 1
    later = make_release(publish_date="2027-01-01T06:00:00Z")
    with caplog.at_level(logging.WARNING, logger="keylime_prod"):
        publish.publish([later], show, now=now)
    assert len(feedparser.parse(feed.read_bytes()).entries) == 1
    assert "is live but now dated 2027-01-01" in caplog.text
    publish.publish([later], show, now=now, withdraw=["ep-1"])
    assert feedparser.parse(feed.read_bytes()).entries == []
    assert "withdrawn from the feed on request" in caplog.text


def test_a_full_disk_while_publishing_is_a_storage_error_naming_the_target(tagged_build) -> None:  # type: ignore[no-untyped-def]
    import resource
    import signal
    import subprocess
    import sys

    cfg, build = tagged_build

    def small_files() -> None:  # a real write error, as a full disk gives (EFBIG here, ENOSPC there)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    p = subprocess.run(
        [sys.executable, "-m", "keylime_prod", "publish", tf.EPISODE_ID, "--configs", str(cfg), "--build-dir",
         str(build), "-q"],
        capture_output=True, text=True, preexec_fn=small_files, cwd=cfg.parent, timeout=120,
    )  # fmt: skip
    assert p.returncode == 7, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert "cannot write" in line and "/public/" in line and ".mp3" in line


def test_ffmpeg_failure_shows_the_no_space_line_not_the_repeat_notice() -> None:
    from keylime_prod.ffmpeg import last_error_line

    stderr = (
        "[libmp3lame @ 0x1] something\nav_interleaved_write_frame(): No space left on device\n"
        "    Last message repeated 1 times\nError writing trailer of x.mp3: No space left on device\n"
        "Conversion failed!\n"
    )
    assert last_error_line(stderr) == "Error writing trailer of x.mp3: No space left on device"
    assert last_error_line("a\n    Last message repeated 3 times\n") == "a"


# ------------------------------------------------------------------------------------------- audio inputs


def _produce(*args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "keylime_prod", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


def test_a_fifo_or_device_as_recording_fails_at_once(tmp_path: Path, make_configs) -> None:  # type: ignore[no-untyped-def]
    from keylime_prod.audio.inputs import check_file

    fifo = tmp_path / "rec.wav"
    os.mkfifo(fifo)
    # Before: the cache key hashed the file first and never returned. A subprocess, so a hang fails the test.
    cfg = make_configs([fifo])
    p = _produce("master", "ep-1", "--configs", str(cfg), "--build-dir", str(tmp_path / "b"), "-q", timeout=60)
    assert p.returncode == 4, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert "is not a regular file" in line and str(fifo) in line
    with pytest.raises(OSError, match="not a regular file"):
        fsutil.sha256_file(Path("/dev/zero"))
    with pytest.raises(AudioError, match="is not a regular file"):
        check_file(Path("/dev/zero"), "recording 1")


def test_nan_inf_samples_are_refused_naming_the_count_and_master_json_is_always_json(
    tmp_path: Path,
    make_configs,  # type: ignore[no-untyped-def]
    make_speech,  # type: ignore[no-untyped-def]
) -> None:
    import numpy as np
    from scipy.io import wavfile

    # A float WAV of real speech with NaN and +-Inf samples in it (a broken plug-in's output).
    rate, pcm = wavfile.read(make_speech("speech.wav", -12.0, rate=44100))
    x = (pcm.astype(np.float32) / 32768.0).copy()
    x[rate * 2 : rate * 2 + 5] = np.nan
    x[rate * 3 : rate * 3 + 2] = [np.inf, -np.inf]
    nan_wav = tmp_path / "nan.wav"
    wavfile.write(nan_wav, rate, x)
    cfg = make_configs([nan_wav])
    result = _cli("master", "ep-1", "--configs", str(cfg), "--build-dir", str(tmp_path / "b"))
    assert result.exit_code == 4 and "recording 1 holds 7 NaN/Inf samples" in result.stderr
    # Whatever a stage measures, its JSON stays JSON: a non-finite number is written as null (RFC 8259).
    out = fsutil.write_json(tmp_path / "x.json", {"lufs": float("-inf"), "peaks": [1.0, float("nan")]})
    assert json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c)) == {"lufs": None, "peaks": [1.0, None]}


def test_a_video_longer_than_its_audio_is_not_called_truncated(
    tmp_path: Path,
    make_configs,  # type: ignore[no-untyped-def]
    make_speech,  # type: ignore[no-untyped-def]
) -> None:
    from support.media import run_ffmpeg

    # An MP4 whose video (12 s) runs well past its audio (4 s of speech).
    speech = make_speech("speech.wav", -12.0, rate=44100, lead=0.2, trail=0.2)
    mp4 = tmp_path / "talk.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=12", "-t", "4", "-i", str(speech),
                "-c:v", "mpeg4", "-c:a", "aac", "-map", "0:v", "-map", "1:a", str(mp4)])  # fmt: skip
    cfg = make_configs([mp4])
    result = _cli("master", "ep-1", "--configs", str(cfg), "--build-dir", str(tmp_path / "b"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["master"]["duration"] == pytest.approx(4.0, abs=1.0)


def test_a_one_sample_file_is_too_short_not_silent(tmp_path: Path, make_configs) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from scipy.io import wavfile

    one = tmp_path / "one.wav"
    wavfile.write(one, 44100, np.array([8000], dtype=np.int16))
    cfg = make_configs([one])
    result = _cli("master", "ep-1", "--configs", str(cfg), "--build-dir", str(tmp_path / "b"))
    assert result.exit_code == 4
    assert "too short to master: 1 samples" in result.stderr and "silent" not in result.stderr


def test_an_unreadable_recording_says_permission_denied_with_a_matching_hint(
    tmp_path: Path,
    make_configs,  # type: ignore[no-untyped-def]
    make_speech,  # type: ignore[no-untyped-def]
) -> None:
    setpriv = shutil.which("setpriv")  # util-linux
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop the capability that lets root read any file")
    rec = make_speech("locked.wav")
    rec.chmod(0o000)
    cfg = make_configs([rec])
    # As root, file modes only bind without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: drop them for the run.
    caps = "-dac_override,-dac_read_search"
    drop = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"] if os.geteuid() == 0 else []
    p = subprocess.run(
        [*drop, sys.executable, "-m", "keylime_prod", "master", "ep-1", "--configs", str(cfg), "--build-dir",
         str(tmp_path / "b"), "-q"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert p.returncode == 4, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert "permission denied" in line and "chmod a+r" in line and "use WAV, FLAC" not in line


def _astats_dc_offset(path: Path) -> float:
    """ffmpeg astats' overall DC offset (mean sample value, full scale = 1) of a decoded file: not our meter."""
    from keylime_prod import ffmpeg

    proc = ffmpeg.run(["-v", "info", "-i", str(path), "-af", "astats=measure_perchannel=none", "-f", "null", "-"])
    (value,) = [ln.split("DC offset:")[1] for ln in proc.stderr.decode().splitlines() if "DC offset:" in ln]
    return float(value)


def test_a_dc_offset_is_removed_and_said_and_pure_dc_is_an_error(
    tmp_path: Path,
    make_speech,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    import numpy as np
    from scipy.io import wavfile

    from keylime_prod import audio
    from keylime_prod.config import Assets, AudioSettings, DenoiseSettings, EpisodeConfig

    def episode(rec: Path) -> EpisodeConfig:
        return EpisodeConfig(id="ep-1", number=1, title="t", publish_date="2026-01-01", hosts=[{"name": "H"}],
                             summary="s", recordings=[rec])  # fmt: skip

    # Denoise off: its own high-pass would take the offset out too; this checks the DC step on its own.
    settings = AudioSettings(denoise=DenoiseSettings(mode="off"))
    rate, pcm = wavfile.read(make_speech("speech.wav", -12.0, rate=44100))
    speech = pcm.astype(np.float32) / 32768.0
    offset = tmp_path / "offset.wav"
    wavfile.write(offset, rate, speech + np.float32(0.1))  # -20 dBFS of DC under real speech
    assert _astats_dc_offset(offset) == pytest.approx(0.1, abs=0.005)
    with caplog.at_level("WARNING"):
        m = audio.master(episode(offset), settings, Assets(), tmp_path / "build")
    assert "recording 1 has a DC offset of -20.0 dBFS: removed" in caplog.text
    report = json.loads(m.report.read_text())
    (part,) = report["details"]["parts"]
    assert part["dc"] == {"offset_dbfs": -20.0, "removed": True}
    assert report["details"]["denoise"]["dc_offsets_removed"] == 1
    assert abs(_astats_dc_offset(m.mp3)) < 0.001  # under -60 dBFS in the published file
    assert ebur128(m.mp3).integrated_lufs == pytest.approx(-16.0, abs=0.5)

    # Nothing but DC (before: mastered into a 10 s plateau with no warning).
    dc = tmp_path / "dc.wav"
    wavfile.write(dc, rate, np.full(rate * 10, 0.3, np.float32))
    pure = r"recording 1 holds nothing but a DC offset \(-10\.5 dBFS; under -50 dBFS once it is removed\)"
    with pytest.raises(AudioError, match=pure):
        audio.master(episode(dc), settings, Assets(), tmp_path / "build2")
    assert not (tmp_path / "build2" / "ep-1.mp3").exists()
