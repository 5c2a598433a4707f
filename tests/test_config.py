"""Config loading: the real show and episode files, and errors that name the file and the field."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from keylime_prod import timecode
from keylime_prod.config import (
    apply_overrides,
    check_episode_id,
    load_episode,
    load_settings,
    load_show,
)
from keylime_prod.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def test_demo_show_and_episode_258_load() -> None:
    s = load_settings(CONFIGS)
    assert s.show.audio.target_lufs == -16.0 and s.show.audio.true_peak_db == -1.0
    assert s.show.show.artwork.is_file()
    ep = load_episode(s.configs_dir, "episode-258")
    assert ep.title == "I'm a loser, baby! That's why I'm outperforming you"
    assert ep.number == 258 and ep.hosts[0].name == "Lara Varpio"
    assert ep.paper is not None and ep.paper.authors.startswith("Klasen")
    assert "Med Teach. 2019 Nov;41(11):1263-1269" in ep.paper.citation
    assert ep.publish_date.tzinfo is not None
    assert all(r.is_file() for r in ep.recordings) and len(ep.recordings) >= 1
    assert [c.start for c in ep.chapters] == sorted(c.start for c in ep.chapters)


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def show_text(**replace: str) -> str:
    text = (CONFIGS / "show.toml").read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def test_missing_field_names_file_and_field(tmp_path: Path) -> None:
    p = write(tmp_path, "show.toml", show_text(**{'owner_email = "keylime@example.org"\n': ""}))
    with pytest.raises(ConfigError) as ei:
        load_show(p)
    msg = str(ei.value)
    assert str(p) in msg and "show.owner_email" in msg and "missing" in msg and "\n" not in msg


def test_mistyped_field_value(tmp_path: Path) -> None:
    p = write(tmp_path, "show.toml", show_text(**{"target_lufs = -16.0": 'target_lufs = "loud"'}))
    with pytest.raises(ConfigError, match=r"audio\.target_lufs"):
        load_show(p)


def test_misspelled_key_is_an_error(tmp_path: Path) -> None:
    p = write(tmp_path, "show.toml", show_text(**{"target_lufs = -16.0": "taget_lufs = -16.0"}))
    with pytest.raises(ConfigError, match=r"audio\.taget_lufs: unknown field"):
        load_show(p)


def test_out_of_range_value(tmp_path: Path) -> None:
    p = write(tmp_path, "show.toml", show_text(**{"true_peak_db = -1.0": "true_peak_db = 3.0"}))
    with pytest.raises(ConfigError, match=r"audio\.true_peak_db"):
        load_show(p)


def test_show_description_is_limited_in_bytes(tmp_path: Path) -> None:
    """Apple counts the channel description's bytes: 2100 characters of "é" are 4200 bytes, refused before any work."""
    for text, ok in (("é" * 2000, True), ("é" * 2100, False), ("e" * 4000, True)):
        p = write(
            tmp_path, "show.toml", re.sub(r'(?ms)^description = """.*?"""', f'description = "{text}"', show_text())
        )
        if ok:
            assert load_show(p).show.description == text
            continue
        with pytest.raises(ConfigError) as ei:
            load_show(p)
        msg = str(ei.value)
        assert str(p) in msg and "show.description" in msg and "4200 bytes" in msg and "4000" in msg


def test_invalid_toml(tmp_path: Path) -> None:
    p = write(tmp_path, "show.toml", "[show\ntitle = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_show(p)


def test_unknown_episode_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown episode 'episode-999'.*episode-258"):
        load_episode(CONFIGS, "episode-999")


@pytest.mark.parametrize("bad", ["../show", "a/b", "..", "/etc/passwd", ".hidden", "a\\b", "ep..1", ""])
def test_episode_id_with_path_parts_is_rejected(bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid episode id"):
        check_episode_id(bad)


def episode_cfg(tmp_path: Path, body: str) -> Path:
    write(tmp_path, "cfg/show.toml", (CONFIGS / "show.toml").read_text())
    write(tmp_path, "cfg/episodes/ep-1.toml", body)
    return tmp_path / "cfg"


BASE = 'number = 1\ntitle = "T"\nsummary = "S"\nrecordings = ["a.wav"]\n[[hosts]]\nname = "H"\n'


def test_bad_publish_date(tmp_path: Path) -> None:
    cfg = episode_cfg(tmp_path, 'publish_date = "26/11/2019"\n' + BASE)
    with pytest.raises(ConfigError, match=r"ep-1\.toml: field publish_date: .*ISO 8601"):
        load_episode(cfg, "ep-1")


def test_dates_become_utc_datetimes(tmp_path: Path) -> None:
    cfg = episode_cfg(tmp_path, "publish_date = 2019-11-26\n" + BASE)
    ep = load_episode(cfg, "ep-1")
    assert ep.publish_date == dt.datetime(2019, 11, 26, tzinfo=dt.timezone.utc)
    assert ep.recordings[0] == (cfg / "episodes" / "a.wav").resolve()


def test_chapters_out_of_order(tmp_path: Path) -> None:
    chapters = '[[chapters]]\ntitle = "B"\nstart = "01:00"\n[[chapters]]\ntitle = "A"\nstart = "00:30"\n'
    cfg = episode_cfg(tmp_path, "publish_date = 2019-11-26\n" + BASE + chapters)
    with pytest.raises(ConfigError, match="increasing order"):
        load_episode(cfg, "ep-1")


def test_no_recordings(tmp_path: Path) -> None:
    cfg = episode_cfg(tmp_path, "publish_date = 2019-11-26\n" + BASE.replace('recordings = ["a.wav"]\n', ""))
    with pytest.raises(ConfigError, match="recordings"):
        load_episode(cfg, "ep-1")


def test_clock_parsing() -> None:
    assert timecode.parse("05:30") == 330.0
    assert timecode.parse("01:02:03.5") == 3723.5
    assert timecode.parse("42") == 42.0
    with pytest.raises(ValueError):
        timecode.parse("1:xx")


def test_cli_overrides_win_and_none_is_ignored() -> None:
    show = load_show(CONFIGS / "show.toml")
    out = apply_overrides(show, {"audio.target_lufs": -19.0, "audio.channels": None}, source=CONFIGS)
    assert out.audio.target_lufs == -19.0 and out.audio.channels == show.audio.channels
    with pytest.raises(ConfigError, match="with command-line options.*audio.target_lufs"):
        apply_overrides(show, {"audio.target_lufs": 99.0}, source=CONFIGS)


def test_one_speaker_per_recording(tmp_path: Path) -> None:
    cfg = episode_cfg(tmp_path, 'publish_date = 2019-11-26\nspeakers = ["A", "B"]\n' + BASE)
    with pytest.raises(ConfigError, match="one name per recording"):
        load_episode(cfg, "ep-1")
    ok = episode_cfg(tmp_path, 'publish_date = 2019-11-26\nspeakers = ["A"]\n' + BASE)
    assert load_episode(ok, "ep-1").speakers == ("A",)
