"""The files stages hand each other: each has one reader and one writer, a round trip changes nothing (old builds'
files included, byte for byte), and an unreadable or wrong file is one error that names the file."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from keylime_prod import fsutil
from keylime_prod.audio.artefact import (
    CurvePair,
    KeptDetails,
    KeptSource,
    LoudnessCurves,
    Master,
    MasteredDetails,
    NoDetails,
    TargetCheck,
)
from keylime_prod.chapters.artefact import Chapters, read_chapters_json, to_json
from keylime_prod.errors import AudioError, KeylimeError, TranscriptError
from keylime_prod.pipeline import StageRecord, read_state, write_state
from keylime_prod.transcript.artefact import TimedWord, read_words, write_words

OLD = Path(__file__).resolve().parent / "data" / "old-build"


def _copy(name: str, folder: Path, as_name: str | None = None) -> Path:
    dest = folder / (as_name or name)
    dest.write_bytes((OLD / name).read_bytes())
    return dest


@pytest.mark.parametrize("name", ["master.json", "master-multitrack.json"])
def test_an_old_master_json_loads_typed_and_is_written_back_byte_for_byte(tmp_path: Path, name: str) -> None:
    old = _copy(name, tmp_path, "master.json")
    m = Master.load(old)
    assert isinstance(m.details, MasteredDetails)
    assert m.mp3 == tmp_path / json.loads(old.read_text("utf-8"))["mp3"] and m.report == old
    assert m.details.parts[0].file and m.details.limiter.ceiling_dbtp < 0 and m.details.seconds["render+verify"] > 0
    if name == "master-multitrack.json":
        assert [t.speaker for t in m.tracks] == ["Lara Varpio", "Jason Frank", "Linda Snell"]
        assert next(iter(m.details.seconds)) == "mix" and m.tracks[1].regions[0] == (14.15, 19.32)
    before = old.read_bytes()
    assert m.write() == old and old.read_bytes() == before


def test_a_kept_master_and_one_without_details_round_trip(tmp_path: Path) -> None:
    m = Master.load(_copy("master.json", tmp_path))
    kept = KeptDetails(KeptSource("ep-1.mp3", "mp3", 123456, False), TargetCheck(-0.4, -0.3, True))
    for details in (kept, NoDetails()):
        first = replace(m, details=details, method="kept")
        first.write()
        text = first.report.read_text("utf-8")
        again = Master.load(first.report)
        assert again == first and type(again.details) is type(details)
        again.write()
        assert first.report.read_text("utf-8") == text
    assert json.loads(text)["details"] == {}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d.pop("output_loudness"), "output_loudness: Field required"),
        (lambda d: d["details"]["limiter"].update(ceiling_dbtp="loud"), "details.MasteredDetails.limiter.ceiling_dbtp"),
        (lambda d: d.update(surprise=1), "surprise: Unexpected keyword argument"),
        (lambda d: d.update(schema="keylime-prod/master/9"), "not a keylime-prod/master/1 document"),
        (lambda d: d.pop("mp3"), "KeyError('mp3')"),
    ],
)
def test_a_wrong_master_json_is_one_error_naming_the_file(
    tmp_path: Path, change: Callable[[dict[str, Any]], object], says: str
) -> None:
    path = _copy("master.json", tmp_path)
    doc = json.loads(path.read_text("utf-8"))
    change(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(AudioError) as e:
        Master.load(path)
    assert str(e.value).startswith(f"{path}: unreadable master report: ") and says in str(e.value)
    assert "\n" not in str(e.value)


def test_master_json_that_is_not_json_or_absent(tmp_path: Path) -> None:
    path = tmp_path / "master.json"
    path.write_text('{"episode_id": ')
    with pytest.raises(AudioError, match=r"master.json: unreadable master report: Expecting value"):
        Master.load(path)
    with pytest.raises(AudioError, match=r"absent.json: no master found"):
        Master.load(tmp_path / "absent.json")


def test_loudness_curves_round_trip_and_refuse_a_wrong_file(tmp_path: Path) -> None:
    curves = LoudnessCurves(0.1, CurvePair((-40.4, None), (-30.0, -29.5)), CurvePair((-16.0, -15.5), (None, None)))
    path = curves.write(tmp_path / "loudness.json")
    assert LoudnessCurves.load(path) == curves
    assert json.loads(path.read_text("utf-8")) == {
        "hop_s": 0.1,
        "before": {"momentary": [-40.4, None], "short_term": [-30.0, -29.5]},
        "after": {"momentary": [-16.0, -15.5], "short_term": [None, None]},
    }
    path.write_text(json.dumps({**json.loads(path.read_text("utf-8")), "hop_s": 0}))
    with pytest.raises(AudioError, match=r"loudness.json: unreadable loudness curves: hop_s: Input should be greater"):
        LoudnessCurves.load(path)


def test_old_words_json_round_trips_byte_for_byte_and_a_wrong_one_is_named(tmp_path: Path) -> None:
    old = _copy("words.json", tmp_path)
    words = read_words(old)
    assert len(words) > 100 and all(isinstance(w, TimedWord) for w in words)
    assert {w.speaker for w in words} >= {"Lara Varpio", "Jason Frank", "Linda Snell"}
    before = old.read_bytes()
    write_words(old, words)
    assert old.read_bytes() == before
    old.write_text(json.dumps({"words": [{"start": 1.0, "end": 1.2, "word": "x", "probability": "sure"}]}))
    with pytest.raises(TranscriptError, match=r"words.json: unreadable word list: words.0.probability"):
        read_words(old)
    with pytest.raises(TranscriptError, match=r"none.json: no word list found"):
        read_words(tmp_path / "none.json")


def test_state_json_round_trips_and_a_wrong_one_is_named(tmp_path: Path) -> None:
    old = _copy("state.json", tmp_path)
    state = read_state(old)
    assert list(state) == ["master", "transcribe", "chapters", "notes", "tag", "report", "publish"]
    assert state["publish"] == StageRecord(key=None, finished=state["publish"].finished, seconds=0.123)
    before = old.read_bytes()
    write_state(old, state)
    assert old.read_bytes() == before
    assert read_state(tmp_path / "none.json") == {}  # a build that never ran
    old.write_text(json.dumps({"master": {"key": "k", "finished": "now"}}))
    with pytest.raises(KeylimeError, match=r"state.json: unreadable stage state: master.seconds: .*required"):
        read_state(old)


def test_old_chapters_json_round_trips_byte_for_byte(tmp_path: Path) -> None:
    old = _copy("chapters.json", tmp_path)
    marks = read_chapters_json(old)
    assert marks[0].title == "Intro" and marks[0].start == 0.0
    before = old.read_bytes()
    fsutil.write_json(old, to_json(Chapters(marks)))
    assert old.read_bytes() == before


def test_a_damaged_state_json_reruns_every_stage_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keylime_prod.layout import BuildLayout
    from keylime_prod.pipeline.runner import _state_or_fresh

    # The CLI's log setup (run by other tests in the same process) stops the package's records at its own handler.
    monkeypatch.setattr(logging.getLogger("keylime_prod"), "propagate", True)
    layout = BuildLayout(tmp_path, "ep-1")
    layout.state_json.write_text("[1, 2")
    with caplog.at_level(logging.WARNING, logger="keylime_prod.pipeline.runner"):
        assert _state_or_fresh(layout) == {}
    assert "state.json: unreadable stage state" in caplog.text and "every stage runs again" in caplog.text
