"""Captions, paragraphs and hints from words (no model): the rules of issues 11 and 14 on word lists we control."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from keylime_prod import engines, transcript
from keylime_prod.config import load_episode
from keylime_prod.transcript import TimedWord, cues_from_words, paragraphs

ROOT = Path(__file__).resolve().parents[1]


def speak(text: str, start: float = 0.0, *, speaker: str | None = "Host", rate: float = 0.3) -> list[TimedWord]:
    """Words of ``text`` spoken one every ``rate`` s; ``|2.5|`` in the text is a pause of 2.5 s."""
    out: list[TimedWord] = []
    t = start
    for tok in text.split():
        m = re.fullmatch(r"\|([\d.]+)\|", tok)
        if m:
            t += float(m.group(1))
            continue
        out.append(TimedWord(round(t, 3), round(t + rate * 0.8, 3), tok, 0.9, speaker))
        t += rate
    return out


def gaps_inside(cue_start: float, cue_end: float, words: list[TimedWord]) -> list[float]:
    """Pauses between consecutive words that a cue from ``cue_start`` to ``cue_end`` spans."""
    inside = [w for w in words if cue_start - 1e-6 <= w.start and w.end <= cue_end + 1e-6]
    return [b.start - a.end for a, b in itertools.pairwise(inside)]


def test_cues_break_at_sentences_pauses_and_limits() -> None:
    words = [
        *speak("Welcome to the show. Today we talk about failure |1.0| and why it teaches,"),
        *speak(" ".join(["residents"] * 40) + ".", 10.0),
        *speak("Thanks. |3.25| Bye now.", 30.0, speaker="Guest"),
    ]
    cues = cues_from_words(words)
    # Every word is in exactly one cue, in order, and cues break only between words.
    assert " ".join(c.text for c in cues) == " ".join(w.word for w in words)
    assert cues[0].text == "Welcome to the show."  # a sentence ends the cue
    assert cues[1].text == "Today we talk about failure"  # the 1.0 s pause ends the cue
    for c in cues:
        assert c.end - c.start <= transcript.captions.MAX_CUE_SECONDS + 1e-6, c
        lines = transcript.captions._wrap(c.text, 42)
        assert len(lines) <= 2 and all(len(ln) <= 42 for ln in lines), c
        assert all(g <= transcript.captions.CUE_PAUSE for g in gaps_inside(c.start, c.end, words)), c
    assert [c.text for c in cues[-2:]] == ["Thanks.", "Bye now."] and cues[-1].speaker == "Guest"
    assert [c.start for c in cues] == sorted(c.start for c in cues)
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))


def test_a_cue_cut_for_length_ends_at_a_clause() -> None:
    words = speak(
        "In postgraduate medical education we usually step in early, because patients come first and a resident who "
        "is always rescued rarely learns."
    )
    cues = cues_from_words(words)
    # 2 lines of 42 characters would end at "patients"; the cue ends at the clause before it instead.
    assert cues[0].text == "In postgraduate medical education we usually step in early,"
    assert cues[1].text.startswith("because patients come first")


def test_a_word_longer_than_the_limit_never_makes_a_long_cue() -> None:
    words = [TimedWord(5.0, 19.0, "Hmmmm.", 0.4, "Host"), *speak("Yes.", 19.5)]
    cues = cues_from_words(words)
    assert cues[0].end - cues[0].start <= 7.0 and cues[0].end == 19.0


def test_paragraphs_are_speaker_turns_without_fragments() -> None:
    # The pause falls inside a sentence ("... in postgraduate |3.0| training."): no paragraph starts there.
    words = [
        *speak("We allow failure in postgraduate |3.0| training. It teaches."),
        *speak("New topic here. |2.5| After a long pause, a new paragraph.", 5.6),
        *speak("Thanks, Lara.", 40.0, speaker="Jason"),
        *speak("The views are our own.", 45.0, speaker=transcript.DISCLAIMER_SPEAKER),
    ]
    paras = paragraphs(cues_from_words(words))
    texts = [" ".join(s.text for s in p) for p in paras]
    assert texts == [
        "We allow failure in postgraduate training. It teaches. New topic here.",
        "After a long pause, a new paragraph.",
        "Thanks, Lara.",
        "The views are our own.",
    ]
    txt = transcript.render_txt(cues_from_words(words))
    assert txt.split("\n\n")[0].startswith("Host: We allow") and "\n\nAfter a long pause" in txt
    assert "Jason: Thanks, Lara." in txt and "Disclaimer: The views are our own." in txt
    page = transcript.render_html(cues_from_words(words), page=transcript.Page(title="T", audio="ep.mp3"))
    assert page.count('<a class="ts" href="#t') == 4 and '<audio id="player"' in page
    assert '<span class="speaker disclaimer">Disclaimer:</span> The views are our own.' in page


def test_words_json_is_the_agreed_format() -> None:
    import json

    doc = json.loads(transcript.captions.words_json(speak("Hi there.", 1.0)))
    assert doc == {
        "words": [
            {"start": 1.0, "end": 1.24, "word": "Hi", "probability": 0.9, "speaker": "Host"},
            {"start": 1.3, "end": 1.54, "word": "there.", "probability": 0.9, "speaker": "Host"},
        ]
    }


def test_batched_windows_cut_at_speech_borders() -> None:
    # Speech stretches end at 12, 25, 31, 50 and 58 s of the joined audio (60 s).
    assert engines.windows(60.0, [12.0, 25.0, 31.0, 50.0, 58.0]) == [(0.0, 25.0), (25.0, 50.0), (50.0, 60.0)]
    assert engines.windows(20.0, []) == [(0.0, 20.0)]
    assert engines.windows(65.0, []) == [(0.0, 30.0), (30.0, 60.0), (60.0, 65.0)]  # no border: cut hard


def test_hints_from_the_demo_episode() -> None:
    ep = load_episode(ROOT / "configs", "episode-258")
    hints = transcript.episode_hints(ep)
    for term in ("Varpio", "Klasen", "Lingard", "Lara Varpio", "Jason Frank",
                 "I'm a loser, baby! That's why I'm outperforming you"):  # fmt: skip
        assert term in hints
    assert "JM" not in " ".join(hints).split() and len(hints) == len({h.lower() for h in hints})
    assert ep.paper is not None and ep.paper.title in hints


@pytest.mark.parametrize("authors", ["Klasen JM, Lingard LA", "Klasen J.M.; Lingard L.A.", "J Klasen and L Lingard"])
def test_author_surnames(authors: str) -> None:
    ep = load_episode(ROOT / "configs", "episode-258")
    assert ep.paper is not None
    ep = ep.model_copy(update={"paper": ep.paper.model_copy(update={"authors": authors})})
    hints = transcript.episode_hints(ep)
    assert any("Lingard" in h for h in hints) and not any(re.search(r"\bL\.?A\.?\b", h) for h in hints)
