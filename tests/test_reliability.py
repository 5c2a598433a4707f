"""Hostile and clumsy inputs (issue 13): each test reproduces one case and checks the outcome a user gets.

docs/reliability.md lists every case with its expected outcome and the test that covers it: add to both.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keylime_prod.cli import app
from keylime_prod.config import EPISODE_ID_RE, check_episode_id, list_episodes, load_episode, load_show
from keylime_prod.errors import ConfigError, TagError, redact
from keylime_prod.tags import check_artwork

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A copy of the demo configs (show.toml + episode-258) whose files a test may edit."""
    cfg = tmp_path / "configs"
    (cfg / "episodes").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "show.toml", cfg / "show.toml")
    shutil.copy(REPO / "configs" / "episodes" / "episode-258.toml", cfg / "episodes" / "episode-258.toml")
    for name in ("assets", "raw"):
        (cfg / name).symlink_to(REPO / "configs" / name)
    return cfg


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
