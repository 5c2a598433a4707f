"""Captions, paragraphs and hints from words (no model): the rules of issues 11 and 14 on word lists we control."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from keylime_prod import transcript
from keylime_prod.config import load_episode
from keylime_prod.transcript import TimedWord, cues_from_words, engines, paragraphs

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


def test_words_json_is_the_agreed_format(tmp_path: Path) -> None:
    import json

    words = speak("Hi there.", 1.0)
    path = transcript.write_words(tmp_path / "words.json", [*words[:1], replace(words[1], probability=0.912345)])
    assert json.loads(path.read_text("utf-8")) == {
        "words": [
            {"start": 1.0, "end": 1.24, "word": "Hi", "probability": 0.9, "speaker": "Host"},
            {"start": 1.3, "end": 1.54, "word": "there.", "probability": 0.9123, "speaker": "Host"},
        ]
    }
    assert path.read_text("utf-8").count("\n") == 1  # one line, as the report and old builds expect
    assert transcript.read_words(path) == (words[0], replace(words[1], probability=0.9123))


def test_batched_windows_cut_at_speech_borders() -> None:
    # Speech stretches end at 12, 25, 31, 50 and 58 s of the joined audio (60 s), in 0.8 s of silence each.
    joins = [(t, 0.8) for t in (12.0, 25.0, 31.0, 50.0, 58.0)]
    assert engines.windows(60.0, joins) == [(0.0, 25.0), (25.0, 50.0), (50.0, 60.0)]
    assert engines.windows(20.0, []) == [(0.0, 20.0)]
    # The latest good pause in the last 8 s, else the longest there, else the latest that fits.
    assert engines.windows(40.0, [(25.0, 0.1), (27.0, 0.5), (29.5, 0.08)])[0] == (0.0, 27.0)
    assert engines.windows(40.0, [(23.0, 0.1), (28.0, 0.15), (29.0, 0.07)])[0] == (0.0, 28.0)
    assert engines.windows(40.0, [(5.0, 1.0), (12.0, 0.1)])[0] == (0.0, 5.0)
    assert engines.windows(65.0, []) == [(0.0, 30.0), (30.0, 60.0), (60.0, 65.0)]  # no border: cut hard


def test_hints_from_the_demo_episode() -> None:
    ep = load_episode(ROOT / "configs", "episode-258")
    hints = transcript.episode_hints(ep)
    for term in ("Varpio", "Klasen", "Lingard", "Lara Varpio", "Jason Frank"):
        assert term in hints
    assert ep.title not in hints  # edited up to publishing: a new title must not run the recogniser again
    assert "JM" not in " ".join(hints).split() and len(hints) == len({h.lower() for h in hints})
    assert ep.paper is not None and ep.paper.title in hints


@pytest.mark.parametrize("authors", ["Klasen JM, Lingard LA", "Klasen J.M.; Lingard L.A.", "J Klasen and L Lingard"])
def test_author_surnames(authors: str) -> None:
    ep = load_episode(ROOT / "configs", "episode-258")
    assert ep.paper is not None
    ep = ep.model_copy(update={"paper": ep.paper.model_copy(update={"authors": authors})})
    hints = transcript.episode_hints(ep)
    assert any("Lingard" in h for h in hints) and not any(re.search(r"\bL\.?A\.?\b", h) for h in hints)


def test_split_even() -> None:
    assert engines.split_even(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert engines.split_even([1], 4) == [[1]]
    assert engines.split_even([], 2) == [[]]
    assert [len(g) for g in engines.split_even(list(range(21)), 4)] == [6, 5, 5, 5]


def _babble(pattern: list[tuple[float, float]], sr: int = transcript.SAMPLE_RATE) -> np.ndarray:
    """(seconds of sound, seconds of pause after it) ... as noise bursts at -20 dBFS (words) over a room at -60."""
    rng = np.random.default_rng(7)
    parts = []
    for sound, gap in pattern:
        parts.append(rng.normal(0.0, 0.1, int(sound * sr)))
        parts.append(np.zeros(int(gap * sr)))
    out = np.concatenate(parts)
    return (out + rng.normal(0.0, 0.001, len(out))).astype(np.float32)


def test_batched_windows_end_in_pauses_between_words() -> None:
    """Issue 14: one long VAD stretch of running speech still gives ~30 s windows, each ending between two words."""
    # Words of 0.35 s, 0.12 s apart (a pause a window may end in); every 7th gap only 30 ms (too short to count).
    pattern = [(0.35, 0.03 if i % 7 == 6 else 0.12) for i in range(160)]  # 75 s
    audio = _babble(pattern)
    breaks = [b for b, _pause in transcript._breaks(audio, transcript._sound_db(transcript._frame_db(audio)))]
    assert len(breaks) == 160 - 160 // 7 - 1  # every long gap but the last one, which ends the stretch
    sounds, t = [], 0.0
    for sound, gap in pattern:
        sounds.append((t, t + sound))
        t += sound + gap
    for b in breaks:  # the middle of a gap, never inside a word
        assert not any(a < b < e for a, e in sounds), b
    wins = engines.windows(
        len(audio) / transcript.SAMPLE_RATE,
        transcript._breaks(audio, transcript._sound_db(transcript._frame_db(audio))),
    )
    assert len(wins) == 3 and all(b - a > 29.0 for a, b in wins[:-1])
    # Without them (only the joins between VAD stretches were window borders before) it is cut hard, mid-word.
    hard = engines.windows(len(audio) / transcript.SAMPLE_RATE, [])
    assert any(a < hard[0][1] < e for a, e in sounds)


def test_joins_between_stretches_are_breaks() -> None:
    """VAD cuts 3 s of silence down to its 0.4 s padding on each side: a 0.8 s pause in the joined speech."""
    sr = transcript.SAMPLE_RATE
    block = _babble([(2.0, 3.0), (2.0, 0.0)])
    joined = np.concatenate([block[: int(2.4 * sr)], block[int(4.6 * sr) :]])
    [(at, pause)] = transcript._breaks(joined, transcript._sound_db(transcript._frame_db(block)))
    assert abs(at - 2.4) <= 0.02 and abs(pause - 0.8) <= 0.02


def test_skipped_speech_is_found() -> None:
    """Issue 14: the stretches of a decoded window with no word for over 3 s are decoded again."""
    clips = [{"start": 0.0, "end": 30.0}, {"start": 30.0, "end": 58.0}, {"start": 58.0, "end": 60.0}]
    words = [(0.4, 0.8), (1.0, 1.5), (9.0, 9.4), (9.5, 25.9), (26.0, 26.5),  # 1.5 -> 9.0 skipped; a 3.5 s tail
             (31.0, 31.3), (31.4, 57.9)]  # fmt: skip
    assert engines.unheard(clips, words) == [
        {"start": 1.5, "end": 9.0}, {"start": 26.5, "end": 30.0},
    ]  # fmt: skip
    assert engines.unheard(clips[2:], []) == []  # 2 s without words: a pause
    assert engines.unheard([{"start": 0.0, "end": 10.0}], []) == [{"start": 0.0, "end": 10.0}]
    one_word = engines.unheard([{"start": 0.0, "end": 10.0}], [(4.0, 4.5)])
    assert one_word == [{"start": 0.0, "end": 4.0}, {"start": 4.5, "end": 10.0}]


def test_demo_captions_have_no_orphans() -> None:
    """The demo episode's real words: before, 5 of 48 cues were under 1 s (0.55 s "College.", a one-word cue cut
    from its sentence by the length limit); now none is shown under 1 s or holds one word, and every cue keeps
    the limits."""
    data = json.loads((ROOT / "tests" / "data" / "episode-258.words.json").read_text("utf-8"))
    words = [TimedWord(**w) for w in data["words"]]
    cues = cues_from_words(words)
    assert " ".join(c.text for c in cues) == " ".join(w.word for w in words)
    for c in cues:
        assert 1.0 - 1e-6 <= c.end - c.start <= transcript.captions.MAX_CUE_SECONDS + 1e-6, c
        assert len(c.text.split()) > 1, c
        lines = transcript.captions._wrap(c.text, transcript.MAX_LINE_CHARS)
        assert len(lines) <= transcript.MAX_LINES, c
    # Sentence ends come first: a cue that does not end a sentence ends a clause or in a pause, or holds a long
    # unpunctuated stretch that had to be cut somewhere (the demo has one: 14 words, no comma).
    i = 0
    for c in cues[:-1]:
        i += len(c.text.split())
        last, nxt = words[i - 1], words[i]
        if transcript.captions.ends_sentence(last.word) or c.speaker != cues[cues.index(c) + 1].speaker:
            continue
        clause = re.search(r"[,;:]$", last.word)
        assert clause or nxt.start - last.end >= transcript.captions.BREATH_PAUSE or len(c.text) > 60, c
    assert not any(c.text in ("College.", "you.") for c in cues)
    assert any(c.text == "the Royal College." for c in cues)  # the disclaimer's last clause, not its last word
