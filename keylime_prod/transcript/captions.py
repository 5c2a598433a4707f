"""Words into captions, paragraphs and files: the transcript's writers (no model, no audio here).

Cues are cut from word timings, at word boundaries, where a reader expects them:

- always at a change of speaker and at a pause over :data:`HARD_PAUSE` seconds;
- every cue within :data:`MAX_CUE_SECONDS` (no cue over 7 s) and :data:`MAX_LINES` lines of
  :data:`MAX_LINE_CHARS` characters (the SRT convention, and within the ~65 characters Apple's WebVTT allows);
- among the ways to cut a stretch of speech within those limits, the cheapest (:func:`_break_cost`): a break
  at a sentence's end or in a pause over :data:`CUE_PAUSE` s is a gain, one at a clause's end costs little, one
  in a breath's pause more, one in the middle of a clause most; a cue of one word or shown less than
  :data:`MIN_CUE_SECONDS` costs more than any break, unless it stands alone in the audio (a "Thanks." between
  long pauses). A short cue stays on screen into the silence after it, up to :data:`MIN_CUE_SECONDS`, never over
  the next word.

Paragraphs (txt, html) are speaker turns: a new one only at a change of speaker, or at a pause over
:data:`PARAGRAPH_PAUSE` seconds after the end of a sentence (a pause inside a sentence never starts a paragraph, so
no fragment such as "training." stands on its own).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import timecode
from .artefact import TimedWord, TranscriptSegment

#: Captioning convention the issue fixes for SRT (and we use for VTT too): <= 2 lines of <= 42 characters.
MAX_LINE_CHARS = 42
MAX_LINES = 2
#: No cue on screen longer than this (captioning guidelines: a cue is read in under 7 s).
MAX_CUE_SECONDS = 7.0
#: A pause longer than this between two words is a good place to end a cue ...
CUE_PAUSE = 0.7
#: ... and one longer than this always ends it (no cue spans a pause over 1.5 s).
HARD_PAUSE = 1.5
#: A pause a breath long: a better place to end a cue than none.
BREATH_PAUSE = 0.25
#: What ending a cue in the middle of a clause, with no pause, costs (see :func:`_break_cost`).
BREAK_MID = 6.0
#: A cue a reader can take in: at least this long on screen (BBC Subtitle Guidelines: a minimum of about 1 s; the
#: demo had a 0.34 s "you.") ...
MIN_CUE_SECONDS = 1.0
#: ... and what a cue shorter than that, or of one word, costs when it does not stand alone in the audio: more than
#: any break, so an orphan is made only when the limits leave no other way.
ORPHAN_COST = 20.0
#: A pause after a sentence longer than this starts a new paragraph of the same speaker's turn.
PARAGRAPH_PAUSE = 2.0
#: What a disclaimer's voice tag, JSON speaker and paragraph label say (not the last host's name).
DISCLAIMER_SPEAKER = "Disclaimer"

_SENTENCE_END = re.compile(r"[.?!…][\"'”’)\]]*$")
_CLAUSE_END = re.compile(r"[,;:–—][\"'”’)\]]*$")


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends a sentence (``.``, ``?``, ``!``, possibly followed by a closing quote or bracket)."""
    return bool(_SENTENCE_END.search(text.strip()))


# ------------------------------------------------------------------------------------------------------- cues


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        while len(word) > width:  # a single over-long "word" (a URL) is cut hard
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _fits(words: Sequence[TimedWord], max_chars: int, max_lines: int, max_seconds: float) -> bool:
    if len(words) == 1:  # one word is a cue whatever its length (a held "Hmmmm", a URL)
        return True
    if words[-1].end - words[0].start > max_seconds:
        return False
    return len(_wrap(" ".join(w.word for w in words), max_chars)) <= max_lines


def _break_cost(prev: TimedWord, nxt: TimedWord) -> float:
    """What ending a cue between ``prev`` and ``nxt`` costs the reader (less than nothing is a place to prefer): a
    sentence's end is the best place, then a clause's end, then a pause (BBC Subtitle Guidelines, "Line breaks":
    break at punctuation first, at the highest syntactic node); the middle of a clause, with no pause, is the worst.
    A pause over :data:`CUE_PAUSE` is worth a break too: text shown through a silence is read before it is heard."""
    cost = BREAK_MID
    if ends_sentence(prev.word):
        cost -= 8.0
    elif _CLAUSE_END.search(prev.word):
        cost -= 4.0
    gap = nxt.start - prev.end
    if gap > CUE_PAUSE:
        cost -= 7.0
    elif gap >= BREATH_PAUSE:
        cost -= 1.5
    return cost


def _shown(words: Sequence[TimedWord], a: int, b: int, after: TimedWord | None) -> float:
    """How long the cue of ``words[a:b]`` can stay on screen: to its last word's end, held into the silence after
    it up to :data:`MIN_CUE_SECONDS` (it never runs into the next word)."""
    start, end = words[a].start, words[b - 1].end
    if after is not None:
        return max(end, min(start + MIN_CUE_SECONDS, after.start)) - start
    return max(end - start, MIN_CUE_SECONDS)


def _cut_run(
    words: Sequence[TimedWord], after: TimedWord | None, fits: Callable[[Sequence[TimedWord]], bool]
) -> list[list[TimedWord]]:
    """The cheapest cues for one run of words (no hard break inside): every cue fits the limits; a cue of one word
    or shown under :data:`MIN_CUE_SECONDS` costs :data:`ORPHAN_COST` unless it is the whole run (it stands alone
    in the audio); each break costs :func:`_break_cost`. Dynamic programming over the break points."""
    n = len(words)
    best = [0.0] + [float("inf")] * n  # best[b]: cost of cutting words[:b]
    back = [0] * (n + 1)
    for b in range(1, n + 1):
        for a in range(b - 1, -1, -1):
            if not fits(words[a:b]):
                break
            cost = best[a]
            if a > 0:
                cost += _break_cost(words[a - 1], words[a])
            if not (a == 0 and b == n):
                if b - a == 1:
                    cost += ORPHAN_COST
                nxt = words[b] if b < n else after
                if _shown(words, a, b, nxt) < MIN_CUE_SECONDS - 1e-9:
                    cost += ORPHAN_COST
            if cost < best[b] - 1e-9:
                best[b], back[b] = cost, a
    out: list[list[TimedWord]] = []
    b = n
    while b > 0:
        out.append(list(words[back[b] : b]))
        b = back[b]
    return out[::-1]


def cues_from_words(
    words: Sequence[TimedWord],
    *,
    max_chars: int = MAX_LINE_CHARS,
    max_lines: int = MAX_LINES,
    max_seconds: float = MAX_CUE_SECONDS,
    pause: float = HARD_PAUSE,
) -> list[TranscriptSegment]:
    """Group words (in time order) into caption cues; see the module docstring for where they break."""
    runs: list[list[TimedWord]] = []
    for w in words:
        if runs and w.speaker == runs[-1][-1].speaker and w.start - runs[-1][-1].end <= pause:
            runs[-1].append(w)
        else:
            runs.append([w])

    def fits(ws: Sequence[TimedWord]) -> bool:
        return _fits(ws, max_chars, max_lines, max_seconds)

    groups: list[list[TimedWord]] = []
    for i, run in enumerate(runs):
        nxt = runs[i + 1][0] if i + 1 < len(runs) and runs[i + 1][0].speaker == run[0].speaker else None
        groups += _cut_run(run, nxt, fits)
    cues: list[TranscriptSegment] = []
    last_end: dict[str | None, float] = {}
    for i, g in enumerate(groups):
        end = g[-1].end
        # A word's alignment can stretch over silence; a cue never shows longer than the limit, nor before the
        # speaker's last. Another speaker's cue may overlap it (two people talking at once).
        start = max(g[0].start, end - max_seconds, last_end.get(g[0].speaker, 0.0))
        # A short cue stays up to MIN_CUE_SECONDS, into the silence after it (never over the next word).
        after = groups[i + 1][0].start if i + 1 < len(groups) else start + MIN_CUE_SECONDS
        end = max(end, min(start + MIN_CUE_SECONDS, max(after, end)), start + 0.01)
        cues.append(TranscriptSegment(round(start, 3), round(end, 3), " ".join(w.word for w in g), g[0].speaker))
        last_end[g[0].speaker] = end
    # WebVTT wants cues in order of their start (W3C WebVTT 4.1); a stable sort keeps a speaker's cues in order.
    cues.sort(key=lambda c: c.start)
    return cues


def words_from_text(text: str, start: float, end: float, speaker: str | None) -> list[TimedWord]:
    """Words of a text with no timings of their own (a known disclaimer), spread over ``[start, end]`` by length."""
    tokens = text.split()
    total = sum(len(t) + 1 for t in tokens) or 1
    out: list[TimedWord] = []
    t = start
    for tok in tokens:
        stop = t + (end - start) * (len(tok) + 1) / total
        out.append(TimedWord(round(t, 3), round(stop, 3), tok, 1.0, speaker))
        t = stop
    return out


@dataclass(frozen=True)
class Cue:
    """One caption: at most :data:`MAX_LINES` lines of at most :data:`MAX_LINE_CHARS` characters."""

    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None
    label: str = ""  # "Name: ", opening the first line, on the first cue of a speaker's turn (with ``labels``)


def to_cues(
    segments: Sequence[TranscriptSegment],
    *,
    max_chars: int = MAX_LINE_CHARS,
    max_lines: int = MAX_LINES,
    labels: bool = False,
) -> list[Cue]:
    """Lay segments out as caption cues.

    Segments cut by :func:`cues_from_words` fit one cue each. A longer segment (from elsewhere) is split, its time
    shared among its cues by their share of characters, ending a cue early after a line that ends a sentence.
    With ``labels``, the first cue of each speaker's turn opens with ``Name:``, counted in the line limits, so SRT
    (which shows it) and WebVTT (which drops it for its voice tag) share the same cues.
    """
    cues: list[Cue] = []
    last: str | None = None
    for seg in segments:
        label = f"{seg.speaker}: " if labels and seg.speaker and seg.speaker != last else ""
        last = seg.speaker
        lines = _wrap(label + seg.text, max_chars)
        if not lines:
            continue
        groups: list[list[str]] = [[]]
        for ln in lines:
            if len(groups[-1]) == max_lines:
                groups.append([])
            groups[-1].append(ln)
            if ends_sentence(ln) and ln is not lines[-1]:
                groups.append([])
        groups = [g for g in groups if g]
        weights = [sum(len(ln) for ln in g) + len(g) for g in groups]
        total = sum(weights)
        t = seg.start
        for g, w in zip(groups, weights, strict=True):
            stop = seg.end if g is groups[-1] else t + (seg.end - seg.start) * w / total
            cues.append(Cue(round(t, 3), round(stop, 3), tuple(g), seg.speaker, label if g is groups[0] else ""))
            t = stop
    cues.sort(key=lambda c: c.start)  # overlapping speakers: still in order of their start
    return cues


def paragraphs(
    segments: Sequence[TranscriptSegment], *, pause: float = PARAGRAPH_PAUSE
) -> list[list[TranscriptSegment]]:
    """Group cues into paragraphs: speaker turns, split further only at a long pause after a sentence's end."""
    out: list[list[TranscriptSegment]] = []
    for seg in segments:
        if out:
            prev = out[-1][-1]
            same = seg.speaker == prev.speaker
            if same and not (seg.start - prev.end > pause and ends_sentence(prev.text)):
                out[-1].append(seg)
                continue
        out.append([seg])
    return out


# ---------------------------------------------------------------------------------------------------- writers


def render_txt(segments: Sequence[TranscriptSegment]) -> str:
    """Plain text (``text/plain``): a paragraph per speaker turn, the speaker's name where the speaker changes."""
    out: list[str] = []
    last: str | None = None
    for para in paragraphs(segments):
        speaker = para[0].speaker
        label = f"{speaker}: " if speaker and speaker != last else ""
        last = speaker
        out.append(label + " ".join(s.text for s in para))
    return "\n\n".join(out) + "\n"


def render_srt(segments: Sequence[TranscriptSegment]) -> str:
    """SubRip (``application/x-subrip``): numbered cues, ``HH:MM:SS,mmm`` times, <= 2 lines of <= 42 characters.

    SubRip has no voice tags: a ``Name:`` label opens the first cue of each speaker's turn."""
    blocks = []
    for i, cue in enumerate(to_cues(segments, labels=True), 1):
        times = f"{timecode.hms_ms(cue.start, ',')} --> {timecode.hms_ms(cue.end, ',')}"
        blocks.append(f"{i}\n{times}\n" + "\n".join(cue.lines))
    return "\n\n".join(blocks) + "\n"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_vtt(segments: Sequence[TranscriptSegment]) -> str:
    """WebVTT (``text/vtt``), what Apple ingests; the speaker goes in a ``<v Name>`` voice tag (W3C WebVTT 4.2.2)."""
    blocks = ["WEBVTT"]
    for cue in to_cues(segments, labels=True):
        # The voice tag names the speaker: the SRT's "Name:" label is dropped (same cues, same times).
        lines = [cue.lines[0][len(cue.label) :], *cue.lines[1:]] if cue.label else list(cue.lines)
        body = "\n".join(_vtt_escape(ln) for ln in lines if ln)
        if cue.speaker:
            name = _vtt_escape(cue.speaker).replace("\n", " ")
            body = f"<v {name}>{body}</v>"
        blocks.append(f"{timecode.hms_ms(cue.start)} --> {timecode.hms_ms(cue.end)}\n{body}")
    return "\n\n".join(blocks) + "\n"


def render_json(segments: Sequence[TranscriptSegment]) -> str:
    """Podcasting 2.0 transcript JSON (``application/json``): ``{"version": "1.0.0", "segments": [...]}``."""
    items = []
    for seg in segments:
        item: dict[str, object] = {}
        if seg.speaker:
            item["speaker"] = seg.speaker
        item.update(startTime=round(seg.start, 3), endTime=round(seg.end, 3), body=seg.text)
        items.append(item)
    return json.dumps({"version": "1.0.0", "segments": items}, indent=2, ensure_ascii=False) + "\n"
