"""The producer's corrections (``configs/episodes/<id>.corrections.toml``) and metadata edits: every transcript
output, the USLT frame and the words are rendered again from the recognised words, and Whisper never runs again."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from mutagen.id3 import ID3
from typer.testing import CliRunner

from keylime_prod import timecode
from keylime_prod.cli import app
from keylime_prod.config import Corrections, list_episodes, load_corrections, load_settings
from keylime_prod.errors import ConfigError
from keylime_prod.pipeline import run_episode
from keylime_prod.transcript.artefact import Heard, TimedWord
from keylime_prod.transcript.corrections import apply_corrections, glossary_offers

WHISPER_TOML = '\n[whisper]\nmodel = "tiny.en"\ncompute_type = "float32"\nthreads = 1\n'
ROOT = Path(__file__).resolve().parent.parent


def _words(text: str, start: float = 10.0, step: float = 0.5) -> list[TimedWord]:
    return [TimedWord(start + i * step, start + i * step + 0.4, w, 0.6, "Lara") for i, w in enumerate(text.split())]


def _fix(words: list[TimedWord], toml: dict[str, object], where: Path = Path("ep.corrections.toml")) -> list[TimedWord]:
    return list(apply_corrections(words, Corrections.model_validate(toml), where).words)


def test_one_word_keeps_its_timing_and_punctuation() -> None:
    words = _words("as Klasen and Lingarm, wrote.")
    out = _fix(words, {"corrections": [{"at": "00:00:11.4", "heard": "lingarm", "meant": "Lingard"}]})
    assert [w.word for w in out] == ["as", "Klasen", "and", "Lingard,", "wrote."]
    assert (out[3].start, out[3].end, out[3].probability, out[3].speaker) == (11.5, 11.9, 1.0, "Lara")
    assert out[:3] == words[:3] and out[4] == words[4]


def test_a_phrase_spreads_over_the_heard_span() -> None:
    words = _words("I'm a lunar baby! That's why")
    out = _fix(words, {"corrections": [{"at": 10.0, "heard": "I'm a lunar baby", "meant": "I'm a loser, baby"}]})
    assert [w.word for w in out] == ["I'm", "a", "loser,", "baby!", "That's", "why"]  # 4 for 4: own timings
    assert [w.start for w in out] == [w.start for w in words]
    out = _fix(words, {"corrections": [{"at": 11.0, "heard": "lunar baby", "meant": "loser, my baby"}]})
    assert [w.word for w in out] == ["I'm", "a", "loser,", "my", "baby!", "That's", "why"]
    spread = out[2:5]
    assert spread[0].start == words[2].start and spread[-1].end == words[3].end  # the heard words' span
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(spread))


def test_a_split_the_recogniser_made_is_matched() -> None:
    out = _fix(_words("Lin garm said"), {"corrections": [{"at": 10.2, "heard": "Lingarm", "meant": "Lingard"}]})
    assert [w.word for w in out] == ["Lingard", "said"]
    assert (out[0].start, out[0].end) == (10.0, 10.9)


def test_the_nearest_occurrence_is_corrected() -> None:
    words = _words("ask not ask what ask")  # "ask" at 10.0, 11.0 and 12.0
    out = _fix(words, {"corrections": [{"at": 11.9, "heard": "ask", "meant": "task"}]})
    assert [w.word for w in out] == ["ask", "not", "ask", "what", "task"]


def test_replace_everywhere() -> None:
    words = _words("the key ligerature and keyligerature, not keyligeratures.")
    for heard in ("keyligerature", "key ligerature"):  # one word or two, as the recogniser split it
        out = _fix(words, {"replace": [{"heard": heard, "meant": "key literature"}]})
        assert " ".join(w.word for w in out) == "the key literature and key literature, not keyligeratures."


def test_a_correction_not_heard_is_one_error_that_says_what_was_heard() -> None:
    words = _words("and so my fellow Americans ask not")
    with pytest.raises(ConfigError) as e:
        _fix(words, {"corrections": [{"at": "00:00:11.0", "heard": "Lingarm", "meant": "Lingard"}]})
    msg = str(e.value)
    assert msg.startswith("ep.corrections.toml: [[corrections]] entry 1 (at = 00:00:11.0): 'Lingarm' is not heard")
    assert "heard there: 'and so my fellow Americans ask not'" in msg and "\n" not in msg
    far = {"corrections": [{"at": 14.0, "heard": "so", "meant": "oh"}]}  # "so" at 10.5: 3.5 s away
    with pytest.raises(ConfigError, match=r"entry 1 .*'so' is not heard within 2 s; heard there: 'Americans ask not'"):
        _fix(words, far)
    with pytest.raises(ConfigError, match=r"\[\[replace\]\] entry 1: 'Lingarm' is heard nowhere"):
        _fix(words, {"replace": [{"heard": "Lingarm", "meant": "Lingard"}]})


def test_glossary_offers_only_new_names_and_terms() -> None:
    toml = {
        "replace": [{"heard": "Canmeds", "meant": "CanMEDS"}, {"heard": "keyligerature", "meant": "key literature"}],
        "corrections": [
            {"at": 10.0, "heard": "Klasen and Lingarm", "meant": "Klasen and Lingard"},
            {"at": 13.5, "heard": "Lingarm", "meant": "Lara Varpio"},
            {"at": 12.0, "heard": "lunar baby", "meant": "loser, baby"},
        ],
    }
    words = _words("Canmeds keyligerature Klasen and Lingarm lunar baby Lingarm")
    fixed = apply_corrections(words, Corrections.model_validate(toml), None)
    assert fixed.terms == ("CanMEDS", "key literature", "Lingard", "Lara Varpio")
    assert glossary_offers(fixed.terms, ["canmeds", "Varpio", "Lara  varpio"]) == ("key literature", "Lingard")


def test_corrections_file_is_validated_and_is_not_an_episode(tmp_path: Path) -> None:
    episodes = tmp_path / "episodes"
    episodes.mkdir()
    (episodes / "ep-1.toml").write_text("")
    assert load_corrections(tmp_path, "ep-1") == Corrections()
    bad = episodes / "ep-1.corrections.toml"
    bad.write_text('[[corrections]]\nat = "12:03.x"\nheard = "Lingarm"\nmeant = "Lingard"\n')
    with pytest.raises(ConfigError) as e:
        load_corrections(tmp_path, "ep-1")
    assert str(e.value).startswith(f"{bad}: field corrections[0].at: '12:03.x' is not a time")
    bad.write_text('[[corrections]]\nat = "12:03.4"\nheard = "Lingarm"\nmeans = "Lingard"\n')
    with pytest.raises(ConfigError, match=r"field corrections\[0\]\.(meant|means)"):
        load_corrections(tmp_path, "ep-1")
    assert list_episodes(tmp_path) == ["ep-1"]


def test_the_example_corrections_file_is_valid(tmp_path: Path) -> None:
    # The example lives in configs/examples/ (a committed corrections file would name what one build heard); copied
    # beside an episode config, as a producer would, it loads and validates.
    episodes = tmp_path / "episodes"
    episodes.mkdir()
    example = ROOT / "configs" / "examples" / "episode-258.corrections.toml"
    (episodes / example.name).write_bytes(example.read_bytes())
    c = load_corrections(tmp_path, "episode-258")
    assert len(c.corrections) == 5 and len(c.replace) == 1
    assert load_corrections(ROOT / "configs", "episode-258") == type(c)()  # the demo itself carries none


# ------------------------------------------------------------------------------------- the pipeline, real Whisper


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    cache = tmp_path / "model-cache"
    monkeypatch.setenv("KEYLIME_CACHE_DIR", str(cache))
    return {**os.environ, "KEYLIME_CACHE_DIR": str(cache)}


@pytest.fixture
def configs(make_configs: Callable[..., Path], make_speech: Callable[..., Path]) -> Path:
    cfg = make_configs([make_speech("take-1.wav", -6.0, lead=1.0, trail=1.0)])
    with open(cfg / "show.toml", "a", encoding="utf-8") as f:
        f.write(WHISPER_TOML)
    return cfg


def _outputs(build: Path) -> dict[str, str]:
    names = ["words.json", *(f"transcript.{x}" for x in ("txt", "srt", "vtt", "json", "html"))]
    return {n: (build / n).read_text("utf-8") for n in names}


@pytest.mark.whisper
def test_a_correction_reaches_every_output_without_running_whisper(
    configs: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    build = tmp_path / "build" / "ep-1"
    first = run_episode(load_settings(configs, tmp_path / "build"), "ep-1", upto=("tag", "notes"))
    assert not any(s.cached for s in first.stages)
    heard = Heard.load(build / "heard.json")
    said = [w.word for w in heard.words]
    i = next(k for k, w in enumerate(said) if w.lower().startswith("americans"))
    at = timecode.hms_ms(heard.words[i].start + 0.8)[:-2]  # read off a player: near the word, not on it
    assert said[i - 1].lower() == "fellow", said
    before = _outputs(build)
    assert all("Lingard" not in text and "Commonwealth" not in text for text in before.values())

    (configs / "episodes" / "ep-1.corrections.toml").write_text(
        f'[[corrections]]\nat = "{at}"\nheard = "fellow {said[i]}"\nmeant = "fellow Lingard readers"\n\n'
        '[[replace]]\nheard = "country"\nmeant = "Commonwealth"\n'
    )
    second = run_episode(load_settings(configs, tmp_path / "build"), "ep-1", upto=("tag", "notes"))
    cached = {s.name: s.cached for s in second.stages}
    assert cached["master"] and cached["recognise"], cached  # Whisper did not run
    assert not cached["transcribe"] and not cached["tag"] and not cached["notes"], cached
    assert Heard.load(build / "heard.json") == heard  # the recogniser's words are kept as heard

    after = _outputs(build)
    for name, text in after.items():
        if name == "words.json":
            text = " ".join(w["word"] for w in json.loads(text)["words"])
        flat = " ".join(re.sub(r"<[^>]+>", " ", text).split())  # voice tags and line breaks out
        assert "fellow Lingard readers" in flat, (name, text)
        assert "Commonwealth" in text and not re.search(r"\bcountry\b", text, re.I), (name, text)
        assert not re.search(r"\bAmericans\b", text), (name, text)
    words = json.loads(after["words.json"])["words"]
    fixed = [w for w in words if w["word"].startswith(("Lingard", "readers", "Commonwealth"))]
    assert [w["probability"] for w in fixed] == [1.0] * len(fixed) and len(fixed) == 4
    fellow = next(w for w in words if w["word"] == "fellow")
    assert fellow["start"] == heard.words[i - 1].start and fixed[1]["end"] == heard.words[i].end  # the span kept
    uslt = ID3(build / "tagged" / "ep-1.mp3").getall("USLT")[0].text
    assert "Lingard readers" in uslt and "Commonwealth" in uslt and "Americans" not in uslt
    t = second.artefacts["transcribe"]
    assert t.corrected == 4 and t.glossary_offers == ("Commonwealth", "Lingard")

    # The CLI offers the corrected names for the show's glossary at the end of the run, and writes no config.
    show_toml = (configs / "show.toml").read_text("utf-8")
    common = ["--configs", str(configs), "--build-dir", str(tmp_path / "build")]
    result = CliRunner().invoke(app, ["transcribe", "ep-1", *common], env=env)
    assert result.exit_code == 0, result.output
    assert "not in the glossary: Commonwealth, Lingard " in result.output
    assert (configs / "show.toml").read_text("utf-8") == show_toml

    # A correction that does not fit stops the run with one line naming the file and the entry.
    (configs / "episodes" / "ep-1.corrections.toml").write_text(
        f'[[corrections]]\nat = "{at}"\nheard = "Lingarm"\nmeant = "Lingard"\n'
    )
    bad = CliRunner().invoke(app, ["transcribe", "ep-1", *common], env=env)
    assert bad.exit_code != 0
    line = bad.output.strip().splitlines()[-1]
    assert "ep-1.corrections.toml: [[corrections]] entry 1" in line and "'Lingarm' is not heard" in line
    assert "heard there: '" in line and said[i - 1] in line


@pytest.mark.whisper
def test_a_new_title_is_rendered_without_running_whisper(configs: Path, tmp_path: Path, env: dict[str, str]) -> None:
    build = tmp_path / "build" / "ep-1"
    first = run_episode(load_settings(configs, tmp_path / "build"), "ep-1", upto="transcribe")
    assert not any(s.cached for s in first.stages)
    heard_mtime = (build / "heard.json").stat().st_mtime_ns
    ep = configs / "episodes" / "ep-1.toml"
    ep.write_text(
        ep.read_text()
        .replace('title = "Test episode"', 'title = "A better title"')
        .replace("number = 1", "number = 7")
        .replace("publish_date = 2026-01-01", "publish_date = 2026-02-03")
    )
    second = run_episode(load_settings(configs, tmp_path / "build"), "ep-1", upto="transcribe")
    assert [(s.name, s.cached) for s in second.stages] == [
        ("speakers", True), ("master", True), ("recognise", True), ("edit", True), ("transcribe", False),
    ]  # fmt: skip
    assert (build / "heard.json").stat().st_mtime_ns == heard_mtime
    page = (build / "transcript.html").read_text("utf-8")
    assert "A better title" in page and "Test episode" not in page and "3 February 2026" in page
    assert second.artefacts["transcribe"].segments == first.artefacts["transcribe"].segments
