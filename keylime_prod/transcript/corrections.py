"""The producer's corrections applied to the recognised words (``configs/episodes/<id>.corrections.toml``).

Two kinds of entry (the model: :class:`keylime_prod.config.Corrections`; the format: docs/transcripts.md,
"Corrections"):

- ``[[replace]]``: ``heard`` becomes ``meant`` everywhere in the episode;
- ``[[corrections]]``: ``heard`` becomes ``meant`` once, where it was said within :data:`NEAR_SECONDS` of ``at``.

``heard`` is matched word by word, ignoring case and punctuation, and may span a split the recogniser made ("Lin
garm" matches ``heard = "Lingarm"``). The replaced words keep their timings: one word for one word keeps each
word's own; otherwise ``meant``'s words share the heard words' span by length. Punctuation the recogniser put
around the heard words stays unless ``meant`` brings its own. A corrected word is the producer's word: its
probability is 1, so the report's review list no longer asks about it.

``[[replace]]`` entries apply first, in order, then ``[[corrections]]`` in order: a correction's ``heard`` is what
the transcript says after the replacements. An entry whose ``heard`` is not found is one error naming the file,
the entry and what was said there instead: a correction never silently does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import timecode
from ..config import Corrections
from ..errors import ConfigError
from .artefact import TimedWord
from .captions import ends_sentence, words_from_text

#: A ``[[corrections]]`` entry's words must start within this many seconds of its ``at`` (a time read off a player
#: or a caption file is rarely closer than a second or two).
NEAR_SECONDS = 2.0

_EDGE = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


@dataclass(frozen=True)
class Corrected:
    """The words after the corrections, how many of the heard words they changed, and the names and terms they
    brought in (:func:`new_terms`)."""

    words: tuple[TimedWord, ...]
    changed: int
    terms: tuple[str, ...]


def _norm(text: str) -> str:
    """What a word is compared by: lower case, letters and digits only ("Lingarm," and "lingarm" are the same)."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _match_at(words: Sequence[TimedWord], i: int, target: str) -> int | None:
    """The end (exclusive) of the run of words from ``i`` whose letters and digits spell ``target``, else ``None``."""
    acc = ""
    j = i
    while j < len(words) and len(acc) < len(target):
        acc += _norm(words[j].word)
        j += 1
        if not target.startswith(acc):
            return None
    return j if acc == target and j > i else None


def _replace(words: list[TimedWord], i: int, j: int, meant: str) -> None:
    """Put ``meant`` in place of ``words[i:j]``, keeping their timings and the punctuation around them."""
    heard = words[i:j]
    tokens = meant.split()
    lead = _EDGE.match(heard[0].word)
    trail = _EDGE.match(heard[-1].word)
    if lead and lead.group(1) and not _EDGE.match(tokens[0]).group(1):  # type: ignore[union-attr]
        tokens[0] = lead.group(1) + tokens[0]
    if trail and trail.group(3) and not _EDGE.match(tokens[-1]).group(3):  # type: ignore[union-attr]
        tokens[-1] = tokens[-1] + trail.group(3)
    speaker = heard[0].speaker
    if len(tokens) == len(heard):
        new = [TimedWord(w.start, w.end, t, 1.0, speaker) for w, t in zip(heard, tokens, strict=True)]
    else:
        new = words_from_text(" ".join(tokens), heard[0].start, heard[-1].end, speaker)
    words[i:j] = new


def _said_near(words: Sequence[TimedWord], at: float) -> str:
    near = [w.word for w in words if w.end >= at - NEAR_SECONDS and w.start <= at + NEAR_SECONDS]
    return " ".join(near) if near else "nothing (no words within 2 s)"


def apply_corrections(words: Sequence[TimedWord], corrections: Corrections, where: Path | None) -> Corrected:
    """``words`` (in time order) with ``corrections`` applied; :class:`ConfigError` names the entry that does not fit.

    ``where`` is the corrections file (named in errors).
    """
    out = list(words)
    changed = 0
    terms = [_bare(r.meant) for r in corrections.replace]
    for n, rep in enumerate(corrections.replace, 1):
        target = _norm(rep.heard)
        i, found = 0, 0
        while i < len(out):
            j = _match_at(out, i, target)
            if j is None:
                i += 1
                continue
            changed += j - i
            _replace(out, i, j, rep.meant)
            i += len(rep.meant.split())
            found += 1
        if not found:
            raise ConfigError(
                f"[[replace]] entry {n}: {rep.heard!r} is heard nowhere in the transcript",
                where=where,
                hint="write `heard` as the transcript spells it (case and punctuation do not matter), or remove it",
            )
    for n, cor in enumerate(corrections.corrections, 1):
        target = _norm(cor.heard)
        best: tuple[float, int, int] | None = None
        for i, w in enumerate(out):
            if w.start > cor.at + NEAR_SECONDS:
                break
            if w.end < cor.at - NEAR_SECONDS:
                continue
            j = _match_at(out, i, target)
            if j is None:
                continue
            s, e = out[i].start, out[j - 1].end
            off = 0.0 if s <= cor.at <= e else min(abs(s - cor.at), abs(e - cor.at))
            if off <= NEAR_SECONDS and (best is None or off < best[0]):
                best = (off, i, j)
        if best is None:
            raise ConfigError(
                f"[[corrections]] entry {n} (at = {timecode.hms_ms(cor.at)[:-2]}): {cor.heard!r} is not heard within "
                f"{NEAR_SECONDS:g} s; heard there: {_said_near(out, cor.at)!r}",
                where=where,
                hint="fix `heard` to what the transcript says there, or `at` to the time it is said",
            )
        _, i, j = best
        changed += j - i
        opens = i == 0 or ends_sentence(out[i - 1].word)
        terms += new_terms(cor.heard, cor.meant, opens_sentence=opens)
        _replace(out, i, j, cor.meant)
    return Corrected(tuple(out), changed, tuple(dict.fromkeys(terms)))


def _bare(text: str) -> str:
    """``text`` without the punctuation around its words ("loser, baby!" -> "loser baby")."""
    return " ".join(m.group(2) for t in text.split() if (m := _EDGE.match(t)) and m.group(2))


def new_terms(heard: str, meant: str, *, opens_sentence: bool = False) -> list[str]:
    """The names a ``[[corrections]]`` entry brings in: each run of capitalised words of two letters or more in
    ``meant`` that ``heard`` did not have ("Klasen and Lingarm" -> "Klasen and Lingard" gives "Lingard"; "a lunar
    baby" -> "a loser, baby" gives none). When ``meant`` opens a sentence, a capital on its first word alone is the
    sentence's ("Attention" -> "That tension" gives none). A ``[[replace]]`` entry is a term as a whole."""
    had = {_norm(t) for t in heard.split()}
    runs: list[list[str]] = [[]]
    for t in _bare(meant).split():
        if len(t) > 1 and any(ch.isupper() for ch in t) and _norm(t) not in had:
            runs[-1].append(t)
        elif runs[-1]:
            runs.append([])
    first = _bare(meant).split()[:1]
    if opens_sentence and runs[0] == first and first[0][1:].islower():
        runs = runs[1:]
    return [" ".join(r) for r in runs if r]


def glossary_offers(terms: Sequence[str], glossary: Sequence[str]) -> tuple[str, ...]:
    """The corrected names and terms not in ``glossary`` yet (case does not matter), in order: what the producer is
    offered to add to the show's glossary, never written to a config behind their back."""
    known = {" ".join(g.lower().split()) for g in glossary}
    return tuple(t for t in dict.fromkeys(terms) if t and " ".join(t.lower().split()) not in known)
