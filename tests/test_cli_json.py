"""Every `produce` command, found by walking the Typer app (so a new command is covered the day it is added):
documented, and with `--json` a failure is exactly one JSON document on stdout that names the error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keylime_prod.cli import app
from keylime_prod.cli.app import all_commands

runner = CliRunner()
COMMANDS = {words: cmd for words, cmd in all_commands()}
IDS = [" ".join(w) for w in COMMANDS]

#: Commands that read no configs, so an empty configs folder cannot make them fail: how they fail instead.
NO_CONFIGS = {
    ("models", "export-openai"): ["/nonexistent/ct2-model"],  # a model path that does not exist: exit 5
    ("models", "list"): ["unexpected-argument"],  # it takes no input at all: only a usage error can fail it
}


def _failure_doc(result: Result) -> dict[str, object]:
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)  # the whole of stdout: exactly one JSON document, nothing before or after
    assert isinstance(doc, dict), doc
    assert doc["ok"] is False and doc["exit_code"] == result.exit_code, doc
    assert isinstance(doc["error"], str) and doc["error"].strip(), doc
    return doc


def _failing_args(words: tuple[str, ...], empty_configs: Path) -> list[str]:
    if words in NO_CONFIGS:
        return [*words, *NO_CONFIGS[words]]
    cmd = COMMANDS[words]
    options = {o for p in cmd.params for o in getattr(p, "opts", ())}
    if "--configs" not in options:
        pytest.fail(f"produce {' '.join(words)} takes no --configs: add how it fails to NO_CONFIGS")
    # Every argument gets a well-formed value (an episode id); the empty configs folder is what fails.
    given = ["ep-1" for p in cmd.params if p.param_type_name == "argument"]
    return [*words, *given, "--configs", str(empty_configs)]


def test_the_walk_finds_every_family() -> None:
    names = set(IDS)
    assert {"run", "master", "transcribe", "chapters", "notes", "tag", "report"} <= names
    assert {"publish", "verify", "prune", "new", "upload-raw", "check", "import", "batch"} <= names
    assert {"models list", "models export-openai"} <= names


@pytest.mark.parametrize("words", list(COMMANDS), ids=IDS)
def test_every_command_has_help_and_no_bool_metavar(words: tuple[str, ...]) -> None:
    """Docs test (sqlite-utils style): every command documents itself and names itself in its usage line."""
    cmd = COMMANDS[words]
    assert cmd.help and len(cmd.help) > 20, words
    res = runner.invoke(app, [*words, "--help"], prog_name="produce")
    assert res.exit_code == 0, res.output
    assert f"Usage: produce {' '.join(words)} " in res.stdout, res.stdout
    assert "<bool>" not in res.stdout  # a flag takes no value, so its help shows no type


@pytest.mark.parametrize("words", list(COMMANDS), ids=IDS)
def test_every_command_fails_as_one_json_document(words: tuple[str, ...], tmp_path: Path) -> None:
    empty = tmp_path / "configs"
    empty.mkdir()
    res = runner.invoke(app, [*_failing_args(words, empty), "--json"])
    doc = _failure_doc(res)
    assert "error" in res.stderr.lower(), res.stderr  # people read it too, on stderr
    if words not in NO_CONFIGS:
        assert res.exit_code == 2 and "show.toml" in str(doc["error"]), doc  # a config error, exit 2


@pytest.mark.parametrize("words", list(COMMANDS), ids=IDS)
def test_a_usage_error_with_json_is_one_json_document_too(words: tuple[str, ...]) -> None:
    res = runner.invoke(app, [*words, "--no-such-option", "--json"])
    doc = _failure_doc(res)
    assert res.exit_code == 2 and "--no-such-option" in str(doc["error"]), doc


def test_results_that_fail_keep_their_document_and_say_why(tmp_path: Path, make_configs: Callable[..., Path]) -> None:
    """`verify --all --json` (what the scheduled workflow keeps) that cannot run is one JSON document; a command that
    finishes with failures as results (check's errors) prints its own document, marked failed, with the reason."""
    configs = str(make_configs([tmp_path / "raw.wav"]))  # its publish folder (beside it) holds no feed yet
    verify = runner.invoke(
        app, ["verify", "--all", "--offline", "--json", "--configs", configs, "--build-dir", str(tmp_path / "b")]
    )
    doc = _failure_doc(verify)
    assert verify.exit_code == 12 and doc["kind"] == "VerifyError" and "nothing is published" in str(doc["error"])
    assert verify.stderr.splitlines() == [f"error: {doc['error']}"]
    (tmp_path / "c").mkdir()
    check = runner.invoke(app, ["check", "--configs", str(tmp_path / "c"), "--json"])
    doc = _failure_doc(check)
    assert check.exit_code == 2 and doc["passed"] and doc["errors"] == [doc["error"]]
    assert check.stderr.splitlines() == [f"error: {doc['error']}"]


def test_the_default_command_fails_as_json_by_episode_id(tmp_path: Path) -> None:
    res = runner.invoke(app, ["episode-999", "--json", "--build-dir", str(tmp_path / "b")])
    doc = _failure_doc(res)
    assert res.exit_code == 2 and doc["kind"] == "ConfigError" and "unknown episode 'episode-999'" in doc["error"]
    assert not (tmp_path / "b").exists()
