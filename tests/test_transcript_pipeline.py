"""The transcribe and notes stages inside the pipeline and behind the CLI (real master, real tiny.en model)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keylime_prod.audio.artefact import Master
from keylime_prod.cli import app
from keylime_prod.config import load_settings
from keylime_prod.pipeline import STAGES, run_episode
from keylime_prod.transcript.artefact import Transcript

WHISPER_TOML = '\n[whisper]\nmodel = "tiny.en"\ncompute_type = "float32"\nthreads = 1\nglossary = ["KeyLIME"]\n'


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    cache = tmp_path / "model-cache"
    monkeypatch.setenv("KEYLIME_CACHE_DIR", str(cache))
    return {**os.environ, "KEYLIME_CACHE_DIR": str(cache)}


@pytest.fixture
def configs(
    make_configs: Callable[..., Path], make_speech: Callable[..., Path], make_tone: Callable[..., Path]
) -> Path:
    cfg = make_configs(
        [make_speech("take-1.wav", -6.0, lead=1.0, trail=1.0)],
        assets={"intro": make_tone("intro.mp3", 330, 4.0, -24.0), "outro": make_tone("outro.mp3", 262, 4.0, -24.0)},
    )
    ep = cfg / "episodes" / "ep-1.toml"  # the episode glossary is a top-level key: before the [[hosts]] table
    ep.write_text(ep.read_text().replace('summary = "Testing."', 'summary = "Testing."\nglossary = ["Americans"]'))
    with open(cfg / "show.toml", "a", encoding="utf-8") as f:
        f.write(WHISPER_TOML)
    return cfg


def test_stage_order() -> None:
    names = [s.name for s in STAGES]
    assert names.index("master") < names.index("transcribe") < names.index("notes")
    if "chapters" in names:
        assert names.index("transcribe") < names.index("chapters") < names.index("notes")


@pytest.mark.whisper
def test_summary_change_does_not_transcribe_again(configs: Path, tmp_path: Path, env: dict[str, str]) -> None:
    """Only what the transcript depends on transcribes again: the audio, the settings and the hints (the episode's
    own words, issue 11: its glossary, people and paper), not the summary."""
    settings = load_settings(configs, tmp_path / "build")
    first = run_episode(settings, "ep-1", upto="notes")
    assert not any(s.cached for s in first.stages)
    master: Master = first.artefacts["master"]
    t: Transcript = first.artefacts["transcribe"]
    # Timestamps are on the published timeline: the speech starts after the intro, never inside it.
    assert t.segments[0].start >= master.body.start - 0.05
    assert "fellow americans" in t.text.lower() and t.segments[0].speaker == "Lara Varpio"
    assert t.options["glossary"][:2] == ["KeyLIME", "Americans"] and "Lara Varpio" in t.options["glossary"]
    assert "Test episode" not in t.options["glossary"]  # the title is not a hint: a new one must not re-run Whisper
    assert (tmp_path / "build" / "ep-1" / "transcript.vtt").is_file()
    notes_md = tmp_path / "build" / "ep-1" / "show-notes.md"
    assert "# Test episode" in notes_md.read_text("utf-8")
    report_mtime = t.report.stat().st_mtime_ns if t.report else 0

    ep_file = configs / "episodes" / "ep-1.toml"
    ep_file.write_text(ep_file.read_text().replace('summary = "Testing."', 'summary = "A better summary."'))
    second = run_episode(load_settings(configs, tmp_path / "build"), "ep-1", upto="notes")
    cached = {s.name: s.cached for s in second.stages}
    assert cached["master"] and cached["recognise"] and cached["transcribe"], cached
    assert not cached["notes"]
    assert t.report is not None and t.report.stat().st_mtime_ns == report_mtime  # not transcribed again
    assert second.artefacts["transcribe"].segments == t.segments
    assert "A better summary." in notes_md.read_text("utf-8")

    # A glossary change is a transcription change.
    third = run_episode(
        load_settings(configs, tmp_path / "build", **{"whisper.glossary": ("KeyLIME", "Kennedy")}),
        "ep-1",
        upto="transcribe",
    )
    # The edit finds its cuts on the words heard again.
    assert [(s.name, s.cached) for s in third.stages] == [
        ("speakers", True), ("master", True), ("recognise", False), ("edit", False), ("transcribe", False),
    ]  # fmt: skip


@pytest.mark.whisper
def test_cli_transcribe_file(jfk: Path, tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Standalone: no configs folder at all (the [whisper] defaults plus options), outputs in --out."""
    monkeypatch.chdir(tmp_path)
    env.pop("KEYLIME_CONFIGS", None)
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["transcribe", str(jfk), "--out", str(out), "--model", "tiny.en", "--compute-type", "float32"]
    args += ["--threads", "1", "--speaker", "JFK", "--json"]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model"] == "tiny.en" and summary["segments"] >= 1
    assert sorted(p.name for p in out.iterdir()) == [
        "jfk.html", "jfk.json", "jfk.report.json", "jfk.srt", "jfk.txt", "jfk.vtt", "jfk.words.json",
    ]  # fmt: skip
    assert "<v JFK>" in (out / "jfk.vtt").read_text("utf-8")


def test_cli_transcribe_errors(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env.pop("KEYLIME_CONFIGS", None)
    runner = CliRunner()
    base: list[str] = []
    text = tmp_path / "talk.mp3"
    text.write_text("not audio")
    bad = runner.invoke(app, ["transcribe", str(text), "--model", "tiny.en", *base], env=env)
    assert bad.exit_code == 5 and "talk.mp3" in bad.output
    assert len(bad.output.strip().splitlines()) == 1, bad.output
    assert [p.name for p in tmp_path.iterdir() if p.name != "model-cache"] == ["talk.mp3"]  # nothing written
    engine = runner.invoke(app, ["transcribe", str(text), "--engine", "whisperx", *base], env=env)
    assert engine.exit_code == 2 and "whisper.engine" in engine.output
    assert len(engine.output.strip().splitlines()) == 1, engine.output


@pytest.mark.whisper
def test_cli_transcribe_episode(configs: Path, tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    common = ["--configs", str(configs), "--build-dir", str(tmp_path / "build")]
    result = runner.invoke(app, ["transcribe", "ep-1", *common], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "build" / "ep-1" / "master.json").is_file()
    assert (tmp_path / "build" / "ep-1" / "transcript.srt").is_file()
    notes = runner.invoke(app, ["notes", "ep-1", *common], env=env)
    assert notes.exit_code == 0, notes.output
    assert (tmp_path / "build" / "ep-1" / "show-notes.html").is_file()
