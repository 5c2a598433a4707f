"""The `produce` CLI: exit codes, one-line errors, --json, and the demo episode mastered for real."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path

import pytest
from support import procs
from support.media import REPO, ebur128
from typer.testing import CliRunner

from keylime_prod.cli import app
from keylime_prod.cli.output import ProgressLines, console, progress_display
from keylime_prod.fsutil import sha256_file

runner = CliRunner()


def produce(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keylime_prod", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


#: ``2026-12-07T06:05:44+00:00 INFO    ...``: a log line off a terminal (ISO 8601, local time with its offset).
ISO_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ")


def test_help_lists_commands_in_flow_order_and_hides_the_default() -> None:
    res = runner.invoke(app, ["--help"], prog_name="produce")
    assert res.exit_code == 0, res.output
    assert "Usage: produce [OPTIONS] EPISODE | COMMAND [ARGS]..." in res.stdout
    listed = re.findall(r"^│ (\w[\w-]*)  ", res.stdout, flags=re.M)
    assert listed == [
        "master", "transcribe", "chapters", "notes", "tag", "report", "cuts", "review", "publish", "verify", "prune",
        "new", "upload-raw", "check", "import", "batch", "models",
    ]  # fmt: skip


def test_the_default_command_names_what_was_typed() -> None:
    """`produce episode-258 --help` is the help of what `produce episode-258` runs; its usage never says `run`."""
    res = runner.invoke(app, ["episode-258", "--help"], prog_name="produce")
    assert res.exit_code == 0, res.output
    (usage,) = [ln.strip() for ln in res.stdout.splitlines() if "Usage:" in ln]
    assert usage == "Usage: produce episode-258 [OPTIONS]"
    assert "<bool>" not in res.stdout and "--build-dir" in res.stdout


def test_group_options_before_the_episode_id_take_their_value() -> None:
    # `--s3-bucket my-bucket episode-999`: the option takes its value; the id after it routes to the default command.
    res = runner.invoke(app, ["--s3-bucket", "my-bucket", "episode-999", "--json"])
    assert res.exit_code == 2 and "unknown episode 'episode-999'" in json.loads(res.stdout)["error"]


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
    # For people, off a terminal (a CI log): ISO 8601 log lines, the stage reported once, no line broken.
    plain = produce("master", "episode-258", "--build-dir", str(tmp_path))
    assert plain.returncode == 0, plain.stderr
    lines = plain.stderr.splitlines()
    assert lines and all(ISO_LOG_LINE.match(ln) for ln in lines), lines
    (master_line,) = [ln for ln in lines if "master" in ln]  # after the speakers stage's line (off for this show)
    assert master_line.endswith("master is up to date (cached)")
    assert "✓" not in plain.stderr and "[" not in plain.stderr  # no second report, no `[12/07/26 06:05:44]`
    (line,) = plain.stdout.splitlines()
    assert line.startswith(f"episode-258: {mp3} (") and len(line) > 120  # longer than a terminal, not wrapped


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
    plain = produce("check")
    assert plain.returncode == 0, plain.stderr
    assert "✓ show.toml: KeyLIME" in plain.stdout.splitlines()  # plain text, not a Python repr
    assert "✓ episode-258 (2019-11-26, 2 recording(s)): I'm a loser" in plain.stdout
    assert "'" not in plain.stdout.replace("I'm", "").replace("That's", "")
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


def test_progress_lines_come_on_a_clock_while_a_step_runs() -> None:
    """In a CI log a long stage says how far it got every interval, even when it reports progress rarely (Whisper
    reports once per 10-minute block) or never; a finished step says nothing more."""
    got: list[str] = []
    with ProgressLines(every=0.5, emit=got.append) as lines:
        lines.step("episode-258: transcribe")
        lines("transcribe", 25.0, 100.0)  # one update, then a long silence: lines at 0.5 s and 1 s
        time.sleep(1.3)
        lines.step(None)  # the stage ended
        time.sleep(0.8)
        lines("Fetching a.mp3", 10, 40)  # outside the pipeline: the description is the step
        time.sleep(0.8)
        lines("Fetching a.mp3", 40, 40)  # reached its total: the step is over
        time.sleep(0.8)
        lines.step("episode-258: master")  # a stage whose current step is not the stage's name
        lines("Rendering and encoding", 1, 2)
        time.sleep(0.8)
        lines.step("episode-258: tag")  # a stage that reports no progress at all
        time.sleep(0.8)
    clock = r"0:0[01] so far"
    patterns = [
        rf"episode-258: transcribe: 25%, {clock}",
        rf"episode-258: transcribe: 25%, {clock}",
        rf"Fetching a.mp3: 25%, {clock}",
        rf"episode-258: master: Rendering and encoding 50%, {clock}",
        rf"episode-258: tag: running, {clock}",
    ]
    assert all(re.fullmatch(p, ln) for p, ln in zip(patterns, got, strict=True)), got


def test_off_a_terminal_progress_is_lines_not_bars() -> None:
    with redirect_stderr(io.StringIO()):
        err = console(stderr=True)
        assert not err.is_terminal
        with progress_display(err, True) as progress:
            assert isinstance(progress, ProgressLines) and progress.every == 30.0
        with progress_display(err, False) as progress:
            assert progress is None  # --quiet and --json: nothing


def _interrupted(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`produce master episode-258` stopped with SIGINT (Ctrl-C) once it has said it is mastering."""
    args = [sys.executable, "-m", "keylime_prod", "master", "episode-258", "--build-dir", str(tmp_path), *extra]
    with subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=procs.sigint_default) as child:  # fmt: skip
        assert child.stderr is not None
        seen = []
        for line in child.stderr:
            seen.append(line)
            if "episode-258: master ..." in line:
                break
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    return subprocess.CompletedProcess(args, child.returncode, out, "".join(seen) + err)


def test_ctrl_c_is_exit_130_quietly_and_one_json_document(tmp_path: Path) -> None:
    plain = _interrupted(tmp_path / "a")
    assert plain.returncode == 130 and plain.stderr.splitlines()[-1] == "interrupted", plain.stderr
    assert "Traceback" not in plain.stderr and plain.stdout == ""
    as_json = _interrupted(tmp_path / "b", "--json", "--verbose")  # --verbose: the log says when to interrupt
    assert as_json.returncode == 130 and "Traceback" not in as_json.stderr, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "ok": False, "error": "interrupted", "exit_code": 130, "kind": "KeyboardInterrupt"
    }  # fmt: skip
