"""The `produce` CLI: exit codes, one-line errors, --json, and the demo episode mastered for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, ebur128
from typer.testing import CliRunner

from keylime_prod.cli import app
from keylime_prod.fsutil import sha256_file

runner = CliRunner()


def produce(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keylime_prod", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_every_command_has_help() -> None:
    """Docs test (sqlite-utils style): every command, hidden ones aside, documents itself."""
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        assert cmd.help and len(cmd.help) > 20, name
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, (name, sub.output)


def test_version() -> None:
    r = produce("--version")
    assert r.returncode == 0 and "keylime-prod" in r.stdout


def test_master_demo_episode_json(tmp_path: Path) -> None:
    raw = sorted((REPO / "configs" / "raw" / "episode-258").iterdir())
    before = {p.name: sha256_file(p) for p in raw}
    r = produce("master", "episode-258", "--build-dir", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    mp3 = Path(summary["master"]["mp3"])
    assert mp3 == tmp_path / "episode-258" / "episode-258.mp3" and mp3.is_file()
    got = ebur128(mp3)
    assert abs(got.integrated_lufs + 16.0) <= 0.5 and got.true_peak_dbtp is not None and got.true_peak_dbtp <= -1.0
    report = json.loads((tmp_path / "episode-258" / "master.json").read_text())
    assert [s["name"] for s in report["segments"]] == ["intro", "body", "disclaimer", "outro"]
    # A second run finds the master up to date and skips it.
    again = produce("master", "episode-258", "--build-dir", str(tmp_path), "--json")
    assert json.loads(again.stdout)["stages"][0]["cached"] is True
    # Raw inputs are never modified.
    assert {p.name: sha256_file(p) for p in raw} == before


def test_unknown_episode_exit_code_and_one_line() -> None:
    r = produce("episode-999", "--build-dir", "/nonexistent-should-not-be-created")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unknown episode 'episode-999'" in lines[0] and "Traceback" not in r.stderr
    assert not Path("/nonexistent-should-not-be-created").exists()


@pytest.mark.parametrize("bad", ["../configs/show", "a/b", ".."])
def test_path_like_episode_ids_are_refused(bad: str) -> None:
    r = produce("master", bad)
    assert r.returncode == 2 and "invalid episode id" in r.stderr


def test_corrupt_recording_via_cli(tmp_path: Path, make_configs) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    cfg = make_configs([bad])
    r = produce("master", "ep-1", "--configs", str(cfg), "--build-dir", str(tmp_path / "build"))
    assert r.returncode == 4
    assert "bad.wav" in r.stderr and "Traceback" not in r.stderr
    assert not list((tmp_path / "build").rglob("*.mp3"))
    verbose = produce("master", "ep-1", "--configs", str(cfg), "--build-dir", str(tmp_path / "b2"), "--verbose")
    assert verbose.returncode == 4 and "Traceback" in verbose.stderr


def test_check_passes_on_demo_and_fails_on_broken(tmp_path: Path, make_configs) -> None:
    ok = produce("check", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    cfg = make_configs([tmp_path / "missing.wav"])
    bad = produce("check", "--configs", str(cfg))
    assert bad.returncode != 0 and "missing.wav" in bad.stderr


def test_cli_override_reaches_the_stage(tmp_path: Path, make_speech, make_configs) -> None:
    cfg = make_configs([make_speech("s.wav", -6.0)])
    r = produce(
        "master", "ep-1", "--configs", str(cfg), "--build-dir", str(tmp_path / "b"), "--target-lufs", "-19",
        "--json", "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert abs(ebur128(tmp_path / "b" / "ep-1" / "ep-1.mp3").integrated_lufs + 19.0) <= 0.5
