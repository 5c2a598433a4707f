"""The two Whisper engines behind one small interface.

- ``faster-whisper`` (CTranslate2): the default, several times faster on a CPU.
- ``openai-whisper``: the reference implementation (optional extra, needs torch). It is handed decoded samples, so
  it never runs an ``ffmpeg`` from PATH, and it runs the same weights as faster-whisper through the checkpoint
  :func:`keylime_prod.transcript.weights.export_openai` converts.

Both get the same decoding options (beam size, best-of, temperature fallback, thresholds: the two libraries share
their defaults) and the same vocabulary prompt in front of every 30-second window. Voice activity detection is done
once by the caller (keylime_prod.transcript), so each engine only ever sees speech.

Why the glossary prompt is built from tokens and not passed as ``initial_prompt``/``hotwords`` text: measured on
the episode-258 demo, a plain-text prompt switched tiny.en (and base) into "no timestamps" mode: one 30 s segment
per window, and in several windows whole passages were dropped ("A narrative review." three times instead of 30 s
of speech). Whisper's own previous-text prompts carry timestamp tokens; a prompt of one short timestamped segment
per term (``<|0.00|> Varpio.<|0.36|><|0.36|> Klasen.<|0.70|>`` ...) keeps the segmentation and dropped nothing,
while still fixing the spelling of the names. Batched windows are decoded without timestamps, and for them the
glossary is one line of plain text instead (a timestamped prompt there made windows loop and write hint terms over
speech), and only where words like a term were heard; from that decoding only the terms' spellings are taken
(:func:`spell_with_hints`), so hints cannot add, drop or change other words. See docs/transcripts.md, "Vocabulary
(glossary)".
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from ..config import WhisperSettings
from ..errors import TranscriptError
from . import weights

log = logging.getLogger(__name__)
T = TypeVar("T")

ENGINES = ("faster-whisper", "openai-whisper")
SAMPLE_RATE = 16000

#: CTranslate2 compute types (``ctranslate2.get_supported_compute_types("cpu")`` is a subset of these).
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")  # fmt: skip


@dataclass(frozen=True)
class Word:
    """One word with its timing (cross-attention alignment, both libraries' ``word_timestamps``) and probability."""

    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class Piece:
    """A stretch of text an engine returned, seconds relative to the samples it was given, with its words."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Redo:
    """A window decoded again: where (seconds relative to the samples the engine was given), why, and which
    decoding was kept (``"without hints"``, ``"temperature 0.2"`` ..., or ``"first decoding"`` when every other
    one was worse)."""

    start: float
    end: float
    reason: str
    kept: str


#: Whisper's own test for a looping decoder: text that gzip (zlib) compresses better than this is repetitive
#: (openai-whisper ``transcribe(compression_ratio_threshold=2.4)``, faster-whisper the same default).
COMPRESSION_RATIO_LIMIT = 2.4
#: A phrase of up to this many words ...
REPEAT_MAX_WORDS = 8
#: ... said this many times in a row, covering at least :data:`REPEAT_MIN_SPAN` words, is a loop, not speech. A
#: 30 s window is too short for zlib to reach 2.4 on a short loop ("to. the world." x6 in a window of real speech:
#: ratio 1.9), so the run itself is counted; people do say "no, no, no" (3 words), never a phrase six times over.
REPEAT_MIN_TIMES = 3
REPEAT_MIN_SPAN = 9
#: A hint term the decoder wrote with a mean word probability under this was more likely read from the prompt
#: than heard (see docs/transcripts.md, "Hints never make a transcript worse", for the measured probabilities).
HINT_MIN_PROBABILITY = 0.5
#: Whisper's temperature fallback after the beam search (openai-whisper ``transcribe(temperature=(0.0, 0.2, ...,
#: 1.0))``); the first step, temperature 0 without hints, is done by the batched decoder itself.
FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)


def compression_ratio(text: str) -> float:
    """Whisper's measure of repetition: UTF-8 bytes over zlib-compressed bytes."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _plain(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing what was written with a hint term."""
    return re.findall(r"[a-z0-9']+", text.lower())


def repetition(words: Sequence[str]) -> str:
    """The longest run of one phrase said :data:`REPEAT_MIN_TIMES` or more times in a row that covers at least
    :data:`REPEAT_MIN_SPAN` words, as ``"'to the world' x6"``; ``""`` if there is none."""
    w = [x for word in words for x in _plain(word)]
    best = (0, 0, 0)  # words covered, phrase length, position
    for n in range(1, REPEAT_MAX_WORDS + 1):
        i = 0
        while i + 2 * n <= len(w):
            times = 1
            while w[i + times * n : i + (times + 1) * n] == w[i : i + n]:
                times += 1
            if times >= REPEAT_MIN_TIMES and times * n >= REPEAT_MIN_SPAN and times * n > best[0]:
                best = (times * n, n, i)
            i += max(1, (times - 1) * n) if times > 1 else 1
    if not best[0]:
        return ""
    span, n, i = best
    return f"'{' '.join(w[i : i + n])}' x{span // n}"


def doubtful_hints(words: Sequence[Word], terms: Sequence[str]) -> list[str]:
    """The hint ``terms`` written in ``words`` whose words have a mean probability under
    :data:`HINT_MIN_PROBABILITY`, as ``"'medical education' p=0.21"``."""
    plain = [(x, w.probability) for w in words for x in _plain(w.text)]
    tokens = [x for x, _p in plain]
    out = []
    for term in terms:
        t = _plain(term)
        if not t:
            continue
        for i in range(len(tokens) - len(t) + 1):
            if tokens[i : i + len(t)] == t:
                p = sum(prob for _x, prob in plain[i : i + len(t)]) / len(t)
                if p < HINT_MIN_PROBABILITY:
                    out.append(f"'{term}' p={p:.2f}")
    return out


#: A hint term in place of words at least this alike (difflib ratio of the letters) is a spelling fix ("Klasen" for
#: "class", 0.73); in place of words unlike it, it was written over speech ("medical education" for "making a famine").
SPELLING_MIN_LIKENESS = 0.5


#: Words at least this alike a hint term (difflib ratio of the letters, spaces dropped) may be that term misheard:
#: "class" for "Klasen" 0.73, "Linkard" for "Lingard" 0.86, "key lime" for "KeyLIME" 1.0; "are" for "Lara" is 0.57,
#: so the bar for looking again is higher than :data:`SPELLING_MIN_LIKENESS`, which judges a spelling once found.
HEARD_LIKE_MIN_LIKENESS = 0.7


def _letters(tokens: Sequence[str]) -> str:
    return "".join(tokens)


def heard_like(words: Sequence[Word], terms: Sequence[str]) -> list[str]:
    """The hint ``terms`` something like which was heard in ``words`` but not the term itself, as
    ``"'class'~'Klasen'"``: only where a term may have been misheard can the hints spell it better."""
    tokens = [x for w in words for x in _plain(w.text)]
    out = []
    for term in terms:
        t = _plain(term)
        if not t or not tokens:
            continue
        want = _letters(t)
        # Words heard as the term itself need no fix, and an n-gram around them is not a mishearing of it.
        exact = {
            k for i in range(len(tokens) - len(t) + 1) if tokens[i : i + len(t)] == t for k in range(i, i + len(t))
        }
        best = (0.0, "")
        for n in sorted({max(1, len(t) - 1), len(t), len(t) + 1}):
            for i in range(len(tokens) - n + 1):
                got = tokens[i : i + n]
                if exact.intersection(range(i, i + n)):
                    continue
                ratio = difflib.SequenceMatcher(a=want, b=_letters(got), autojunk=False).ratio()
                if ratio > best[0]:
                    best = (ratio, " ".join(got))
        if best[0] >= HEARD_LIKE_MIN_LIKENESS:
            out.append(f"'{best[1]}'~'{term}'")
    return out


def spell_with_hints(
    plain: Sequence[Word], hinted: Sequence[Word], terms: Sequence[str]
) -> tuple[list[Word], list[str]]:
    """The words decoded without hints (``plain``) with only the hint-term spellings of the decoding with hints
    (``hinted``) put in: a term that replaces words like it ("Klasen" for "class") is taken, with its timing; every
    other difference (a word changed elsewhere, a term where nothing was heard, words dropped) is left as
    ``plain`` has it. So a glossary can fix spellings but cannot move, add or drop any other word, which is what
    "hints never make a transcript worse" needs (docs/transcripts.md). Returns the words and the fixes made, as
    ``"'Klasen' for 'class'"``."""
    keys_a = [" ".join(_plain(w.text)) for w in hinted]
    keys_b = [" ".join(_plain(w.text)) for w in plain]
    tokens_a = [(x, k) for k, key in enumerate(keys_a) for x in key.split()]
    in_term = [False] * len(hinted)
    for term in terms:
        t = _plain(term)
        for i in range(len(tokens_a) - len(t) + 1):
            if t and [x for x, _ in tokens_a[i : i + len(t)]] == t:
                for _x, k in tokens_a[i : i + len(t)]:
                    in_term[k] = True
    out: list[Word] = []
    fixes = []
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(a=keys_a, b=keys_b, autojunk=False).get_opcodes():
        said, spelled = " ".join(keys_b[b0:b1]).strip(), " ".join(keys_a[a0:a1]).strip()
        if (
            op == "replace"
            and said
            and all(in_term[a0:a1])
            and difflib.SequenceMatcher(a=spelled, b=said, autojunk=False).ratio() >= SPELLING_MIN_LIKENESS
        ):
            out += hinted[a0:a1]
            fixes.append(f"'{''.join(w.text for w in hinted[a0:a1]).strip()}' for '{said}'")
        else:
            out += plain[b0:b1]
    return out, fixes


def trouble(text: str, words: Sequence[Word], terms: Sequence[str]) -> str:
    """Why a window's decoding cannot be trusted, or ``""``: it repeats (a phrase in a loop, or a compression ratio
    over :data:`COMPRESSION_RATIO_LIMIT`), or it holds hint terms the model doubted (:func:`doubtful_hints`)."""
    reasons = []
    loop = repetition(text.split())
    if loop:
        reasons.append(f"repeats {loop}")
    ratio = compression_ratio(text.strip())
    if ratio > COMPRESSION_RATIO_LIMIT:
        reasons.append(f"compression ratio {ratio:.2f}")
    doubts = doubtful_hints(words, terms)
    if doubts:
        reasons.append("doubtful hints " + ", ".join(doubts))
    return "; ".join(reasons)


def repeats(text: str) -> bool:
    """Whether ``text`` loops (:func:`repetition` or a compression ratio over the limit)."""
    return bool(repetition(text.split())) or compression_ratio(text.strip()) > COMPRESSION_RATIO_LIMIT


class Engine(Protocol):
    """What keylime_prod.transcript needs from an engine."""

    name: str
    compute_type: str
    batch_size: int  # 0: sequential decoding (each window conditioned on the previous one's text)
    decoders: int  # batched: windows decoded by this many workers side by side

    def transcribe(
        self,
        audio: np.ndarray,
        glossary: Sequence[str],
        breaks: Sequence[Break] = (),
        redone: list[Redo] | None = None,
    ) -> list[Piece]:
        """Transcribe 16 kHz mono float32 samples; ``glossary`` terms steer the spelling in every window.

        ``breaks`` are the pauses in the samples, ``(time, seconds of pause)``: where the caller joined separate
        speech stretches and where speakers paused between words. A batched engine ends its windows only there,
        never inside a word. A window it had to decode again (:func:`trouble`) is appended to ``redone``.
        """
        ...


#: A place a batched window may end: (seconds into the samples, how long the pause there is in seconds).
Break = tuple[float, float]

#: Whisper's window. Batched decoding cuts the speech into windows of at most this length, at pauses.
WINDOW_SECONDS = 30.0
#: A window ends in the latest pause at least this long within its last :data:`WINDOW_REACH_SECONDS` ...
GOOD_PAUSE_SECONDS = 0.25
#: ... (else in the longest pause there): the first word of the next window then has silence before it. Measured
#: on jfk.wav looped (tiny.en): a window that began 30 ms before "And so my" lost those words, one that began in
#: the phrase pause did not.
WINDOW_REACH_SECONDS = 8.0


def windows(length: float, breaks: Sequence[Break], max_len: float = WINDOW_SECONDS) -> list[tuple[float, float]]:
    """Cut ``[0, length]`` into windows of at most ``max_len`` seconds, each ending in a pause (see
    :data:`GOOD_PAUSE_SECONDS`); the fewer windows the better, as the encoder costs the same for each.

    A stretch longer than ``max_len`` with no pause in it is cut hard.
    """
    pts = sorted((t, pause) for t, pause in breaks if 0.0 < t < length)
    out: list[tuple[float, float]] = []
    start = 0.0
    while length - start > max_len:
        fits = [(t, pause) for t, pause in pts if start < t <= start + max_len]
        late = [(t, pause) for t, pause in fits if t >= start + max_len - WINDOW_REACH_SECONDS]
        good = [t for t, pause in late if pause >= GOOD_PAUSE_SECONDS]
        if good:
            cut = good[-1]
        elif late or fits:
            cut = max(late or fits, key=lambda b: (b[1], b[0]))[0]
        else:
            cut = start + max_len
        out.append((start, cut))
        start = cut
    if length - start > 0.01:
        out.append((start, length))
    return out


#: This much time without a word in a decoded window is speech the decoder skipped: decoding only text tokens,
#: Whisper sometimes jumps over a sentence, or ends a full window early (measured on the demo: a 20-word sentence
#: near the end of a 30 s window gone, the window's last words still there). Pauses in the joined speech are shorter
#: than VAD's 2 s minimum silence plus its padding, so a longer gap is decoded again as a window of its own.
UNHEARD_SECONDS = 3.0


def unheard(clips: Sequence[dict[str, float]], words: Sequence[tuple[float, float]]) -> list[dict[str, float]]:
    """The stretches of each clip longer than :data:`UNHEARD_SECONDS` with no word in them (``words``: start, end)."""
    out = []
    for clip in clips:
        inside = sorted((a, b) for a, b in words if clip["start"] <= a < clip["end"])
        edges = [clip["start"], *(x for a, b in inside for x in (a, b)), clip["end"]]
        for i in range(0, len(edges), 2):  # (start or a word's end) -> (the next word's start or the end)
            if edges[i + 1] - edges[i] > UNHEARD_SECONDS:
                out.append({"start": edges[i], "end": edges[i + 1]})
    return out


def split_even(items: Sequence[T], n: int) -> list[list[T]]:
    """``items`` in at most ``n`` consecutive groups whose sizes differ by at most one (no empty group)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, i = [], 0
    for k in range(n):
        j = i + size + (1 if k < extra else 0)
        out.append(list(items[i:j]))
        i = j
    return out or [[]]


#: Room the glossary may take of the 223-token prompt (Whisper: n_text_ctx // 2 - 1); the rest is previous text.
MAX_GLOSSARY_TOKENS = 120


def glossary_tokens(
    terms: Sequence[str], encode: Callable[[str], list[int]], timestamp_begin: int, *, timestamps: bool = True
) -> list[int]:
    """The glossary as a prompt that looks like Whisper's own previous text, in the mode the window is decoded in.

    ``timestamps`` (sequential decoding): one timestamped segment per term. Timestamp tokens count 20 ms from
    ``timestamp_begin``; each term gets a plausible spoken length. Without (batched decoding, which asks for
    ``<|notimestamps|>``): the terms as one line of text, "KeyLIME, Royal College, medical education.". A timestamped
    prompt in front of a window decoded without timestamps is text Whisper never saw in training: on 90 s of
    LibriVox readings with the show's five terms, one window looped ("to. the world." x7) and another wrote
    "infirmary" and dropped 13 words (WER 0.129 against 0.065 without hints); the plain line gave 0.070, no loop.
    Terms that do not fit in :data:`MAX_GLOSSARY_TOKENS` are left out (the first terms are kept).
    """
    ids: list[int] = []
    if not timestamps:
        kept: list[str] = []
        for term in terms:
            line = encode(" " + ", ".join([*kept, term.strip()]) + ".")
            if len(line) > MAX_GLOSSARY_TOKENS:
                break
            kept.append(term.strip())
            ids = line
        return ids
    t = 0
    for term in terms:
        words = encode(" " + term.strip() + ".")
        dur = 12 + 4 * len(term.split()) + len(term) // 3  # 20 ms units: about 0.3 s + 0.1 s per word
        seg = [timestamp_begin + t, *words, timestamp_begin + t + dur]
        if len(ids) + len(seg) > MAX_GLOSSARY_TOKENS or t + dur > 1400:
            break
        ids += seg
        t += dur
    return ids


def _with_glossary(glossary: list[int], previous: Sequence[int], limit: int) -> list[int]:
    """Glossary first, then as much of the previous text as fits (both libraries crop a prompt from the left)."""
    keep = max(0, limit - len(glossary))
    return [*glossary, *list(previous)[-keep:]] if keep else glossary[-limit:]


#: Engines already loaded in this process, per thread: a batch worker runs many episodes and loads Whisper once.
#: Keyed by everything that shapes the engine; one per thread, since an engine keeps per-call state.
_LOADED: dict[tuple[Any, ...], Engine] = {}
_LOADED_LOCK = threading.Lock()


def load(settings: WhisperSettings, ref: weights.ModelRef, *, threads: int, cache_dir: Path) -> Engine:
    """The engine ``settings.engine`` with the resolved model ``ref``, using ``threads`` CPU threads: loaded on the
    first call in this thread, the same object on later calls with the same arguments."""
    key = (settings, repr(ref), threads, str(cache_dir), threading.get_ident())
    with _LOADED_LOCK:
        engine = _LOADED.get(key)
    if engine is None:
        engine = _load(settings, ref, threads=threads, cache_dir=cache_dir)
        with _LOADED_LOCK:
            _LOADED[key] = engine
    return engine


def _load(settings: WhisperSettings, ref: weights.ModelRef, *, threads: int, cache_dir: Path) -> Engine:
    if settings.engine == "faster-whisper":
        return FasterWhisperEngine(settings, ref, threads=threads, cache_dir=cache_dir)
    if settings.engine == "openai-whisper":
        return OpenAIWhisperEngine(settings, ref, threads=threads, cache_dir=cache_dir)
    raise TranscriptError(f"unknown engine {settings.engine!r}", hint=f"use one of: {', '.join(ENGINES)}")


class FasterWhisperEngine:
    """faster-whisper on the CPU."""

    name = "faster-whisper"

    def __init__(self, settings: WhisperSettings, ref: weights.ModelRef, *, threads: int, cache_dir: Path) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        # get_prompt() is not faster-whisper's public API: pyproject.toml bounds faster-whisper below the next minor
        # release and tests/test_security.py fails, naming it, when its signature or its call site changes.
        class _GlossaryModel(WhisperModel):
            """faster-whisper with the glossary tokens put in front of every window's prompt."""

            glossary: list[int] = []  # noqa: RUF012 - set per call, one model per engine

            def get_prompt(self, tokenizer: Any, previous_tokens: list[int], *args: Any, **kwargs: Any) -> list[int]:
                if self.glossary:
                    previous_tokens = _with_glossary(self.glossary, previous_tokens, self.max_length // 2 - 1)
                return super().get_prompt(tokenizer, previous_tokens, *args, **kwargs)

        self._tokenizer_cls = Tokenizer
        if ref.checkpoint is not None:
            raise TranscriptError(
                "faster-whisper needs a CTranslate2 model folder, not an openai-whisper checkpoint",
                where=ref.checkpoint,
                hint="use --engine openai-whisper for a .pt file",
            )
        if settings.compute_type not in COMPUTE_TYPES:
            raise TranscriptError(
                f"unknown compute type {settings.compute_type!r}", hint=f"use one of: {', '.join(COMPUTE_TYPES)}"
            )
        self.settings = settings
        self.compute_type = settings.compute_type
        self.batch_size = settings.batch_size
        # Batched: ``decoders`` CTranslate2 workers side by side, the threads shared out between them. The
        # decoder's beam steps are small matrix products that keep two threads of one worker waiting on each other;
        # two one-thread workers on two halves of the windows keep both cores busy (docs/performance.md).
        self.decoders = max(1, min(settings.decoders, threads)) if self.batch_size > 0 else 1
        src = str(ref.ct2_dir) if ref.ct2_dir is not None else str(ref.download)
        try:
            self.model = _GlossaryModel(
                src,
                device="cpu",
                compute_type=settings.compute_type,
                cpu_threads=max(1, threads // self.decoders),
                num_workers=self.decoders,
                download_root=str(cache_dir / "faster-whisper") if ref.download else None,
            )
        except ValueError as e:
            if "compute type" not in str(e):
                raise _load_error(ref, e) from e
            raise TranscriptError(
                f"compute type {settings.compute_type!r} does not run on this CPU", hint="use int8 or float32"
            ) from e
        except Exception as e:  # ctranslate2 raises RuntimeError/ValueError, the hub its own types
            raise _load_error(ref, e) from e

    def transcribe(
        self,
        audio: np.ndarray,
        glossary: Sequence[str],
        breaks: Sequence[Break] = (),
        redone: list[Redo] | None = None,
    ) -> list[Piece]:
        """See :class:`Engine`."""
        from faster_whisper import BatchedInferencePipeline

        s = self.settings
        tok = self._tokenizer_cls(
            self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe", language=s.language or "en"
        )
        hints = glossary_tokens(glossary, tok.encode, tok.timestamp_begin, timestamps=self.batch_size == 0)
        self.model.glossary = hints
        try:
            if self.batch_size > 0:
                # Windows decoded side by side (2.2-2.5x faster at equal WER). No window sees the one
                # before it, so the glossary prompt is all the context each gets. Text tokens only: a window is
                # decoded once, with no seek, so a timestamp the decoder ends on early would drop the rest of the
                # window (measured on the demo: 23 words deleted with timestamps, 1 without); word timings come
                # from the cross-attention alignment either way.
                def decode(clips: list[dict[str, float]]) -> list[Piece]:
                    segments, _info = BatchedInferencePipeline(self.model).transcribe(
                        audio,
                        language=s.language,
                        beam_size=s.beam_size,
                        best_of=5,
                        batch_size=self.batch_size,
                        vad_filter=False,
                        clip_timestamps=clips,
                        without_timestamps=True,
                        word_timestamps=s.word_timestamps,
                    )
                    return _pieces(segments)

                def decode_all(clips: list[dict[str, float]]) -> list[Piece]:
                    groups = split_even(clips, self.decoders)
                    if len(groups) == 1:
                        return decode(groups[0])
                    # One thread per group; CTranslate2 releases the GIL and runs each call on its own worker.
                    with ThreadPoolExecutor(len(groups), thread_name_prefix="whisper") as pool:
                        return [piece for part in pool.map(decode, groups) for piece in part]

                def fallback(clip: dict[str, float]) -> tuple[str, list[Piece]]:
                    # Whisper's own remedy for a loop: sample at rising temperatures until the text neither
                    # repeats (compression ratio) nor is improbable (log probability), one window on its own.
                    segments, _info = self.model.transcribe(
                        audio,
                        language=s.language,
                        beam_size=s.beam_size,
                        best_of=5,
                        temperature=list(FALLBACK_TEMPERATURES),
                        compression_ratio_threshold=COMPRESSION_RATIO_LIMIT,
                        vad_filter=False,
                        clip_timestamps=[clip["start"], clip["end"]],
                        condition_on_previous_text=False,
                        without_timestamps=False,
                        word_timestamps=s.word_timestamps,
                    )
                    segments = list(segments)
                    hottest = max((seg.temperature or 0.0 for seg in segments), default=0.0)
                    return f"temperature {hottest:.1f}", _pieces(segments)

                def checked(clips: list[dict[str, float]]) -> list[Piece]:
                    """Decode ``clips`` without the hints; decode again with them only the windows where words
                    like a hint term were heard, and take from that decoding only the term spellings
                    (:func:`spell_with_hints`). A window that loops gets Whisper's temperature fallback."""
                    self.model.glossary = []
                    try:
                        found = _by_clip(clips, decode_all(clips))
                    finally:
                        self.model.glossary = hints
                    for i, got in enumerate(found):
                        loop = repetition(_text(got).split())
                        if loop:
                            # A phrase in a loop with no hints at all: Whisper's own fallback. A high compression
                            # ratio alone is speech that repeats itself (a looped test file, a chorus, a read-back),
                            # so the decoding is kept, since sampling would only garble words said twice.
                            kept, found[i] = _least_looping([fallback(clips[i]), ("first decoding", got)])
                            log.info("window %.1f-%.1f s decoded again (repeats %s): kept %s",
                                     clips[i]["start"], clips[i]["end"], loop, kept)  # fmt: skip
                            if redone is not None:
                                redone.append(Redo(clips[i]["start"], clips[i]["end"], f"repeats {loop}", kept))
                    near = [(i, heard) for i, got in enumerate(found) if (heard := heard_like(_words(got), glossary))]
                    if near:
                        hinted = _by_clip([clips[i] for i, _ in near], decode_all([clips[i] for i, _ in near]))
                        for (i, heard), told in zip(near, hinted, strict=True):
                            why = "heard like hint terms: " + ", ".join(heard)
                            if repeats(_text(told)) or not _words(told):
                                kept = f"without hints (with them: {_trouble(told, glossary) or 'no words'})"
                            else:
                                found[i], fixes = _spelled(found[i], told, glossary)
                                kept = ("spellings from hints: " + ", ".join(fixes)) if fixes else "without hints"
                            log.info("window %.1f-%.1f s decoded again (%s): kept %s",
                                     clips[i]["start"], clips[i]["end"], why, kept)  # fmt: skip
                            if redone is not None:
                                redone.append(Redo(clips[i]["start"], clips[i]["end"], why, kept))
                    return [piece for got in found for piece in got]

                clips = [{"start": a, "end": b} for a, b in windows(len(audio) / SAMPLE_RATE, breaks)]
                pieces = checked(clips)
                if s.word_timestamps:
                    missed = unheard(clips, [(w.start, w.end) for p in pieces for w in p.words])
                    if missed:
                        log.debug("decoding again %d stretches the decoder skipped", len(missed))
                        pieces = sorted([*pieces, *checked(missed)], key=lambda p: p.start)
                return pieces
            segments, _info = self.model.transcribe(
                audio,
                language=s.language,
                beam_size=s.beam_size,
                best_of=5,
                vad_filter=False,  # done once, by the caller, for both engines
                condition_on_previous_text=True,
                without_timestamps=False,
                word_timestamps=s.word_timestamps,
            )
            return _pieces(segments)
        except (RuntimeError, ValueError) as e:
            raise TranscriptError(f"faster-whisper failed: {e}") from e


def _pieces(segments: Any) -> list[Piece]:
    """faster-whisper's segments as pieces; faster-whisper yields lazily, so this materialises them inside the stage
    (style.md, point 3)."""
    return [
        Piece(seg.start, seg.end, seg.text, tuple(Word(w.start, w.end, w.word, w.probability) for w in seg.words or ()))
        for seg in segments
    ]


def _by_clip(clips: Sequence[dict[str, float]], pieces: Sequence[Piece]) -> list[list[Piece]]:
    """``pieces`` grouped by the clip (window) they start in, in the order of ``clips``."""
    out: list[list[Piece]] = [[] for _ in clips]
    for piece in pieces:
        i = next((k for k, c in enumerate(clips) if c["start"] - 0.01 <= piece.start < c["end"]), None)
        if i is None:  # a piece that starts past its window's end still belongs to the window before it
            i = max((k for k, c in enumerate(clips) if c["start"] <= piece.start), default=0)
        out[i].append(piece)
    return out


def _text(pieces: Sequence[Piece]) -> str:
    return " ".join(p.text.strip() for p in pieces)


def _words(pieces: Sequence[Piece]) -> list[Word]:
    return [w for p in pieces for w in p.words]


def _spelled(plain: list[Piece], hinted: list[Piece], terms: Sequence[str]) -> tuple[list[Piece], list[str]]:
    """``plain`` with the term spellings of ``hinted`` (:func:`spell_with_hints`), in ``plain``'s pieces: a fixed
    word goes into the piece its first replaced word was in."""
    words, fixes = spell_with_hints(_words(plain), _words(hinted), terms)
    if not fixes:
        return plain, []
    by_piece: list[list[Word]] = [[] for _ in plain]
    k = 0
    for w in words:
        while k + 1 < len(plain) and w.start >= plain[k + 1].start:
            k += 1
        by_piece[k].append(w)
    out = [
        dataclasses.replace(p, text="".join(w.text for w in ws), words=tuple(ws))
        for p, ws in zip(plain, by_piece, strict=True)
        if ws
    ]
    return out, fixes


def _trouble(pieces: Sequence[Piece], terms: Sequence[str]) -> str:
    return trouble(_text(pieces), [w for p in pieces for w in p.words], terms)


def _least_looping(candidates: Sequence[tuple[str, list[Piece]]]) -> tuple[str, list[Piece]]:
    """The first candidate whose text does not loop (:func:`repeats`), else the one that compresses least."""
    for label, pieces in candidates:
        if not repeats(_text(pieces)):
            return label, pieces
    return min(candidates, key=lambda c: compression_ratio(_text(c[1])))


class OpenAIWhisperEngine:
    """openai-whisper (PyTorch) on the CPU, fed decoded samples."""

    name = "openai-whisper"
    compute_type = "float32"  # openai-whisper runs float32 on a CPU (fp16 is GPU only)
    batch_size = 0  # openai-whisper decodes one window at a time
    decoders = 1

    def __init__(self, settings: WhisperSettings, ref: weights.ModelRef, *, threads: int, cache_dir: Path) -> None:
        try:
            import torch
            import whisper
        except ImportError as e:
            raise TranscriptError("the openai-whisper engine is not installed", hint=weights.OPENAI_INSTALL_HINT) from e
        if settings.compute_type not in ("float32", "default", "auto"):
            log.info(
                "openai-whisper runs float32 on a CPU (compute_type %s is for faster-whisper)", settings.compute_type
            )
        self.settings = settings
        self._whisper = whisper
        # One thread per physical core at most: torch with 2 threads on a busy 2-core machine ran 10x slower.
        torch.set_num_threads(max(1, threads))
        if ref.download is not None:
            try:
                self.model = whisper.load_model(ref.download, device="cpu", download_root=str(cache_dir / "openai"))
            except Exception as e:  # urllib/hash/torch errors on download
                raise _load_error(ref, e) from e
        else:
            ckpt = ref.checkpoint or weights.export_openai(ref, cache_dir=cache_dir)
            self.model = _load_checkpoint(ckpt, torch, whisper)

    def transcribe(
        self,
        audio: np.ndarray,
        glossary: Sequence[str],
        breaks: Sequence[Break] = (),
        redone: list[Redo] | None = None,
    ) -> list[Piece]:
        """See :class:`Engine` (``breaks`` do not matter to sequential decoding, and openai-whisper's own
        temperature fallback redoes a looping window, so nothing is added to ``redone``)."""
        s = self.settings
        model = self.model
        tok = self._whisper.tokenizer.get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages, language=s.language or "en", task="transcribe"
        )
        ids = glossary_tokens(glossary, tok.encode, tok.timestamp_begin)
        limit = model.dims.n_text_ctx // 2 - 1
        # Patching decode() relies on whisper.transcribe calling model.decode(segment, options): pyproject.toml bounds
        # openai-whisper at the release tested and tests/test_security.py checks the signature and the call site.
        decode = type(model).decode  # whisper.decoding.decode, bound per call below

        def decode_with_glossary(mel: Any, options: Any = None) -> Any:
            # whisper.transcribe sets options.prompt to the previous text of each window; the glossary goes first.
            if ids and options is not None:
                options = dataclasses.replace(options, prompt=_with_glossary(ids, options.prompt or [], limit))
            return decode(model, mel, options)

        model.decode = decode_with_glossary
        try:
            result = self._whisper.transcribe(
                model,
                np.array(audio, dtype=np.float32, copy=True),  # torch wants a writable array
                verbose=None,
                language=s.language,
                beam_size=s.beam_size,
                best_of=5,
                fp16=False,
                condition_on_previous_text=True,
                word_timestamps=s.word_timestamps,
            )
        except (RuntimeError, ValueError) as e:
            raise TranscriptError(f"openai-whisper failed: {e}") from e
        finally:
            del model.decode
        return [
            Piece(
                float(seg["start"]),
                float(seg["end"]),
                str(seg["text"]),
                tuple(
                    Word(float(w["start"]), float(w["end"]), str(w["word"]), float(w["probability"]))
                    for w in seg.get("words") or ()
                ),
            )
            for seg in result["segments"]
        ]


def _load_checkpoint(path: Path, torch: Any, whisper: Any) -> Any:
    """Load an openai-whisper checkpoint; set the word-timing heads our converter stored beside the weights."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = whisper.model.Whisper(whisper.model.ModelDimensions(**ckpt["dims"]))
        model.load_state_dict(ckpt["model_state_dict"])
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, KeyError ...
        raise TranscriptError(
            f"corrupt openai-whisper checkpoint: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            where=path,
            hint="delete it; `produce models export-openai` makes a new one",
        ) from e
    heads = ckpt.get("alignment_heads") or []
    if heads:
        mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model.eval()


def _load_error(ref: weights.ModelRef, e: Exception) -> TranscriptError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if ref.download is not None:
        return TranscriptError(
            f"cannot load or download Whisper model {ref.download!r}: {first}",
            hint="without a network use a bundled model (tiny.en, base) or a model folder path",
        )
    return TranscriptError(
        f"corrupt model folder: {first}", where=ref.ct2_dir, hint="re-install or re-convert the model"
    )
