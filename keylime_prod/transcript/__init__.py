"""The transcript stage: Whisper speech-to-text on the published episode's timeline, in every format platforms read.

:func:`transcribe` takes either a :class:`~keylime_prod.audio.artefact.Master` (an episode) or a plain audio file.
For an episode it transcribes only the *body* and the *disclaimer* of the final MP3, at the offsets ``master.json``
records, so no music bed is ever fed to Whisper (Whisper hallucinates on music and silence) and every timestamp is
already on the published file's timeline (what Apple, Spotify and Podcasting 2.0 players show against the audio).
The disclaimer's known text may stand in for transcribing it; VAD still finds where it is spoken.

How audio flows (bounded memory: one block at a time, never the whole file):

1. ffmpeg (our wrapper) decodes one block of at most :data:`BLOCK_SECONDS` to 16 kHz mono float32 on a pipe;
2. Silero VAD (shipped inside faster-whisper) finds the speech in it; a stretch of speech running into the end of
   the block is left for the next block, which starts where it starts, so no word is cut at a block border;
3. the speech stretches, joined, go to the engine (:mod:`.engines`: batched 30 s windows cut where stretches
   meet, or sequential decoding), which returns words with timings and probabilities; their times map back through
   the joins, and their edges move off silence (:func:`_snap`).

The words become cues and paragraphs (:mod:`keylime_prod.transcript.captions`). Outputs, written atomically beside
each other as ``<stem>.<ext>``: ``txt``, ``srt``, ``vtt`` (WebVTT, ``<v Name>`` voice tags: Apple reads speaker
names from them), ``json`` (Podcasting 2.0 transcript JSON) and ``html`` (the web page); the words file (the
pipeline's ``words.json``); and ``<stem>.report.json``, which records how the transcript was made.
"""

from __future__ import annotations

import bisect
import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import ffmpeg, fsutil
from ..audio.artefact import Master
from ..config import Corrections, EpisodeConfig, Person, WhisperSettings
from ..errors import FFmpegError, TranscriptError
from ..machine import physical_cores
from ..progress import ProgressFn, null_progress
from . import engines, weights
from .artefact import Heard, RedoneWindow, TimedWord, Transcript, read_words, write_words
from .captions import (
    CUE_PAUSE,
    DISCLAIMER_SPEAKER,
    MAX_LINE_CHARS,
    MAX_LINES,
    Cue,
    cues_from_words,
    paragraphs,
    render_json,
    render_srt,
    render_txt,
    render_vtt,
    to_cues,
    words_from_text,
)
from .corrections import apply_corrections, glossary_offers
from .page import Page, render_html

__all__ = [
    "DISCLAIMER_SPEAKER", "FORMATS", "MAX_LINES", "MAX_LINE_CHARS", "Cue", "Heard", "Page", "TimedWord", "by_voice",
    "cues_from_words", "episode_hints", "paragraphs", "read_words", "recognise", "render", "render_html",
    "render_json", "render_srt", "render_txt", "render_vtt", "report_path", "to_cues", "transcribe", "words_path",
    "write_words",
]  # fmt: skip

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what Whisper's feature extractor expects
#: Audio decoded at once. 600 s of 16 kHz float32 is 38 MB; VAD and the engine's features stay well under 1 GiB.
BLOCK_SECONDS = 600.0
#: A VAD speech stretch longer than this is split at its last short pause, so every block ends on a pause.
MAX_SPEECH_SECONDS = 240.0
#: Batched decoding cuts windows at speech borders: stretches must fit a 30 s window with VAD's padding around them.
MAX_BATCHED_SPEECH_SECONDS = 28.0
#: A speech stretch ending closer than this to the end of a block may go on: it is left for the next block.
OPEN_MARGIN_SECONDS = 1.0
FORMATS = ("txt", "srt", "vtt", "json", "html")
REPORT_SUFFIX = ".report.json"
WORDS_SUFFIX = ".words.json"


@dataclass(frozen=True)
class _Region:
    """A stretch of the input to transcribe: ``start``/``end`` in the file, which is also the published timeline."""

    name: str
    start: float
    end: float | None  # None: to the end of the file
    speaker: str | None
    known_text: str | None = None
    #: A multitrack session's own track to read instead of the source; ``shift`` puts its times on the
    #: published timeline.
    path: Path | None = None
    shift: float = 0.0


def report_path(out_dir: Path, stem: str = "transcript") -> Path:
    """Where :func:`transcribe` writes its report (used by the pipeline to load a cached transcript)."""
    return Path(out_dir) / f"{stem}{REPORT_SUFFIX}"


def words_path(out_dir: Path, stem: str = "transcript") -> Path:
    """Where :func:`transcribe` writes the words when not told (``<stem>.words.json``)."""
    return Path(out_dir) / f"{stem}{WORDS_SUFFIX}"


def episode_hints(episode: EpisodeConfig, show_hosts: Sequence[Person] = ()) -> list[str]:
    """The episode's own words for the recogniser's glossary, most specific first.

    The episode glossary, everyone who may be named on air, the paper's authors (surnames: "Klasen JM, Lingard LA"
    gives Klasen and Lingard) and the paper title. The show's glossary comes with the settings. The episode title is
    not a hint: it is edited up to the day of publishing, and a new title must not run the recogniser again (a word
    of it misheard is a line in the corrections file, or a term in ``glossary``). Terms past the prompt's room are
    dropped from the end (keylime_prod.transcript.engines.MAX_GLOSSARY_TOKENS).
    """
    people = [p.name for p in (*episode.hosts, *episode.guests, *show_hosts)]
    authors: list[str] = []
    if episode.paper is not None:
        for author in re.split(r",|;|\band\b|&", episode.paper.authors):
            # Medline style "Klasen JM": the surname is every word but the trailing initials.
            words = [w for w in author.split() if not re.fullmatch(r"(?:[A-Z]\.?){1,3}|et|al\.?", w)]
            if words:
                authors.append(" ".join(words))
    titles = [episode.paper.title] if episode.paper is not None else []
    return _terms([*episode.glossary, *people, *authors, *titles])


def transcribe(
    source: Master | Path,
    settings: WhisperSettings,
    out_dir: Path,
    *,
    stem: str = "transcript",
    speaker: str | None = None,
    speakers: Sequence[str] = (),
    glossary: Sequence[str] = (),
    disclaimer_text: str = "",
    page: Page | None = None,
    words_file: Path | None = None,
    tracks: Sequence[Path] = (),
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> Transcript:
    """Transcribe ``source`` with ``settings`` and write ``<out_dir>/<stem>.{txt,srt,vtt,json,html}``: :func:`recognise`
    then :func:`render` with no corrections (the pipeline runs the two as stages of their own).

    ``source`` is a master (its body and disclaimer are transcribed at their places on the episode timeline) or any
    audio file (transcribed whole). ``speaker`` labels the speech (VTT voice tags, JSON ``speaker``); with a master,
    ``speakers`` (one name per raw recording, in order) labels each recording's stretch of the body instead.
    ``glossary`` adds to ``settings.glossary``: names and terms that steer the model's spelling. With a master and
    ``settings.transcribe_disclaimer`` off, ``disclaimer_text`` is used as the disclaimer's transcript.
    ``page`` heads the HTML page (show, title, number, date, link back, the player's audio URL). The words, with
    timings and probabilities, go to ``words_file`` (default :func:`words_path`).
    ``cache_dir`` keeps converted/joined models (default: :func:`keylime_prod.transcript.weights.default_cache_dir`).
    A multitrack master needs ``tracks``, its track files in its order: each track's own speech regions
    (``master.tracks``) are transcribed from that track, labelled with its speaker and put on the published timeline;
    where two people talk at once both are kept, each speaker's run of words whole, in order of their start.

    Raises :class:`TranscriptError` for unreadable or silent audio and for unknown, missing or corrupt models; no
    output file is written then.
    """
    audio_path = source.mp3 if isinstance(source, Master) else Path(source)
    out_dir = Path(out_dir)
    words_out = Path(words_file) if words_file is not None else words_path(out_dir, stem)
    outputs = [out_dir / f"{stem}.{fmt}" for fmt in FORMATS]
    if any(p.resolve() == audio_path.resolve() for p in [*outputs, words_out]):
        raise TranscriptError("an output would overwrite the input", where=audio_path, hint="use --out DIR")
    heard = recognise(
        source, settings, speaker=speaker, speakers=speakers, glossary=glossary, disclaimer_text=disclaimer_text,
        tracks=tracks, cache_dir=cache_dir, progress=progress,
    )  # fmt: skip
    return render(heard, out_dir, stem=stem, page=page, words_file=words_out)


def recognise(
    source: Master | Path,
    settings: WhisperSettings,
    *,
    speaker: str | None = None,
    speakers: Sequence[str] = (),
    glossary: Sequence[str] = (),
    disclaimer_text: str = "",
    tracks: Sequence[Path] = (),
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> Heard:
    """Run the recogniser over ``source`` (as :func:`transcribe` describes) and return every word it heard, with
    timings on the published timeline, probabilities and speakers. Writes nothing: :meth:`Heard.save` does."""
    progress = progress or null_progress
    cache_dir = Path(cache_dir) if cache_dir is not None else weights.default_cache_dir()
    t0 = time.perf_counter()
    audio_path, regions = _regions(source, settings, speaker, disclaimer_text, speakers, tracks)

    ref = weights.resolve(settings.model, cache_dir=cache_dir)
    threads = settings.threads or physical_cores()
    t_load = time.perf_counter()
    engine = engines.load(settings, ref, threads=threads, cache_dir=cache_dir)
    load_seconds = time.perf_counter() - t_load
    terms = _terms([*settings.glossary, *glossary])
    log.info(
        "transcribing %s with %s %s (%s, beam %d, batch %s, %d decoder%s, %d thread%s)",
        audio_path.name, engine.name, ref.label, engine.compute_type, settings.beam_size,
        engine.batch_size or "off", engine.decoders, "" if engine.decoders == 1 else "s", threads,
        "" if threads == 1 else "s",
    )  # fmt: skip

    total = sum((r.end - r.start) for r in regions if r.end is not None) or 1.0
    done = 0.0
    words: list[TimedWord] = []
    speech_seconds = 0.0
    audio_seconds = 0.0
    spoken = 0  # segments Whisper found (not counting a disclaimer given as known text)
    redone: list[RedoneWindow] = []
    for region in regions:

        def on_progress(d: float, base: float = done) -> None:
            progress("transcribe", base + d, total)

        region_redone: list[RedoneWindow] = []
        region_words, speech, length = _transcribe_region(
            region.path or audio_path, region, engine, settings, terms, on_progress, region_redone
        )
        redone += [replace(r, start=round(r.start + region.shift, 3), end=round(r.end + region.shift, 3))
                   for r in region_redone]  # fmt: skip
        if region.shift:  # a track's file times onto the published timeline
            region_words = [replace(w, start=round(w.start + region.shift, 3), end=round(w.end + region.shift, 3))
                            for w in region_words]  # fmt: skip
        words += region_words
        spoken += 0 if region.known_text is not None else len(region_words)
        speech_seconds += speech
        audio_seconds += length
        done += length
        progress("transcribe", min(done, total), total)
    words.sort(key=lambda w: (w.start, w.end))
    if not spoken:
        raise TranscriptError(
            "no speech found", where=audio_path, hint="is the audio silent or music only? check the file"
        )
    elapsed = time.perf_counter() - t0
    options = {
        "compute_type": engine.compute_type,
        "beam_size": settings.beam_size,
        "best_of": 5,
        "vad": settings.vad,
        "batch_size": engine.batch_size,
        "decoders": engine.decoders,
        "word_timestamps": settings.word_timestamps,
        "language": settings.language,
        "threads": threads,
        "glossary": terms,
        "transcribe_disclaimer": settings.transcribe_disclaimer,
        "load_seconds": round(load_seconds, 3),
    }
    log.info(
        "recognised %d words, %.0f s of audio (%.0f s speech) in %.1f s (%.1fx real time)",
        len(words), audio_seconds, speech_seconds, elapsed, audio_seconds / elapsed if elapsed else 0.0,
    )  # fmt: skip
    return Heard(
        words=tuple(words),
        language=settings.language or "en",
        engine=engine.name,
        model=ref.label,
        options=options,
        source=str(audio_path),
        audio_seconds=round(audio_seconds, 3),
        speech_seconds=round(speech_seconds, 3),
        elapsed_seconds=round(elapsed, 3),
        redone=tuple(sorted(redone, key=lambda r: r.start)),
    )


def render(
    heard: Heard,
    out_dir: Path,
    *,
    stem: str = "transcript",
    page: Page | None = None,
    words_file: Path | None = None,
    corrections: Corrections | None = None,
    corrections_file: Path | None = None,
    glossary: Sequence[str] = (),
    speaker_turns: Sequence[tuple[str, float, float]] = (),
) -> Transcript:
    """Apply the producer's ``corrections`` to the ``heard`` words and write every transcript file from them:
    ``<out_dir>/<stem>.{txt,srt,vtt,json,html}``, the words (``words_file``, default :func:`words_path`) and
    ``<stem>.report.json``. Cheap (no model): run again for every correction and every change of ``page``.

    ``corrections_file`` is named in a correction's error; corrected names and terms not in ``glossary`` become the
    transcript's ``glossary_offers``. ``speaker_turns`` (``(name, start, end)`` on the published timeline: who speaks
    when in a mixed recording) names each spoken word by the turn it falls in (:func:`by_voice`).
    """
    out_dir = Path(out_dir)
    outputs = {fmt: out_dir / f"{stem}.{fmt}" for fmt in FORMATS}
    words_out = Path(words_file) if words_file is not None else words_path(out_dir, stem)
    fixed = apply_corrections(heard.words, corrections or Corrections(), corrections_file)
    words = by_voice(fixed.words, speaker_turns)
    segments = cues_from_words(_in_turns(words))
    transcript = Transcript(
        segments=tuple(segments),
        files=outputs,
        language=heard.language,
        engine=heard.engine,
        model=heard.model,
        options=heard.options,
        source=heard.source,
        audio_seconds=heard.audio_seconds,
        speech_seconds=heard.speech_seconds,
        elapsed_seconds=heard.elapsed_seconds,
        report=report_path(out_dir, stem),
        words=words_out,
        redone=heard.redone,
        corrected=fixed.changed,
        glossary_offers=glossary_offers(fixed.terms, [*heard.options.get("glossary", ()), *glossary]),
    )
    # Render everything first, then write each file atomically: an error leaves no half-written set behind.
    rendered = {
        "txt": render_txt(transcript.segments),
        "srt": render_srt(transcript.segments),
        "vtt": render_vtt(transcript.segments),
        "json": render_json(transcript.segments),
        "html": render_html(transcript.segments, language=transcript.language, page=page),
    }
    for fmt, text in rendered.items():
        fsutil.write_text(outputs[fmt], text)
    write_words(words_out, words)
    fsutil.write_json(transcript.report or report_path(out_dir, stem), transcript.to_json())
    log.info(
        "transcript: %d words (%d corrected) in %d cues", len(words), fixed.changed, len(segments)
    )  # fmt: skip
    return transcript


# ------------------------------------------------------------------------------------------------------ regions


def _regions(
    source: Master | Path,
    settings: WhisperSettings,
    speaker: str | None,
    disclaimer_text: str,
    speakers: Sequence[str] = (),
    tracks: Sequence[Path] = (),
) -> tuple[Path, list[_Region]]:
    if isinstance(source, Master):
        if not source.mp3.is_file():
            raise TranscriptError("the master MP3 is missing", where=source.mp3, hint="run `produce master` again")
        if source.tracks:
            regions = _track_regions(source, tracks)
            disc = source.segment("disclaimer")
            if disc is not None and disc.duration > 0:
                known = None if settings.transcribe_disclaimer or not disclaimer_text.strip() else disclaimer_text
                regions.append(_Region("disclaimer", disc.start, disc.end, DISCLAIMER_SPEAKER, known_text=known))
            return source.mp3, regions
        if speakers and len(speakers) != len(source.pieces):
            raise TranscriptError(
                f"{len(speakers)} speaker name(s) for {len(source.pieces)} recording(s)",
                where=source.report,
                hint="give one name per recording in the episode's `speakers`",
            )
        if speakers:
            # One region per raw recording: they meet in trimmed room tone, so no word is cut at the seam, and each
            # recording's words carry its speaker's voice tag.
            regions = [_Region("body", p.start, p.end, name) for p, name in zip(source.pieces, speakers, strict=True)]
        else:
            regions = [_Region("body", source.body.start, source.body.end, speaker)]
        disc = source.segment("disclaimer")
        if disc is not None and disc.duration > 0:
            known = None if settings.transcribe_disclaimer or not disclaimer_text.strip() else disclaimer_text
            regions.append(_Region("disclaimer", disc.start, disc.end, DISCLAIMER_SPEAKER, known_text=known))
        return source.mp3, regions
    path = Path(source)
    if not path.is_file():
        raise TranscriptError("audio file not found", where=path, hint="check the path")
    try:
        info = ffmpeg.probe(path)
    except FFmpegError as e:
        raise TranscriptError(e.message, where=path, hint="give an audio file (wav, mp3, flac, m4a, ogg ...)") from e
    if info.duration is not None and info.duration <= 0:
        raise TranscriptError("the audio is empty", where=path)
    return path, [_Region("audio", 0.0, info.duration, speaker)]


#: Own-speech regions of one track closer than this are transcribed as one (VAD skips the pause between them;
#: each region costs a decoder start and a recogniser call).
TRACK_REGION_GAP_SECONDS = 3.0


def _track_regions(master: Master, tracks: Sequence[Path]) -> list[_Region]:
    """A multitrack master's regions: each track's own speech (``master.tracks[i].regions``, session time), read
    from the track itself (file time = session time - its start) and shifted onto the published timeline."""
    if len(tracks) != len(master.tracks):
        raise TranscriptError(
            f"{len(tracks)} track file(s) for the {len(master.tracks)} tracks of this master",
            where=master.report,
            hint="give the episode's [[tracks]] files, in order",
        )
    body = master.pieces[0] if master.pieces else master.body
    lo, hi = body.source_start, body.source_start + body.duration  # the session stretch the master kept
    out: list[_Region] = []
    for info, path in zip(master.tracks, tracks, strict=True):
        merged: list[list[float]] = []
        others = [r for t in master.tracks if t is not info for r in t.regions]
        for a, b in info.regions:
            a, b = max(a, lo), min(b, hi)
            if b <= a:
                continue
            # Never across another speaker's turn: there this track holds only that speaker's bleed, which the
            # recogniser would hear and put under this track's name.
            crossed = merged and any(s < a and e > merged[-1][1] for s, e in others)
            if merged and a - merged[-1][1] < TRACK_REGION_GAP_SECONDS and not crossed:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        shift = body.start - body.source_start + info.start_s
        out += [_Region("body", a - info.start_s, b - info.start_s, info.speaker, path=Path(path), shift=shift)
                for a, b in merged]  # fmt: skip
    return out


#: A word in no speaker's turn takes the nearest turn's speaker if it is at most this far away (VAD edges differ).
NEAR_TURN_S = 1.0


def by_voice(words: Sequence[TimedWord], turns: Sequence[tuple[str, float, float]]) -> list[TimedWord]:
    """``words`` with each spoken word's speaker taken from ``turns`` ``(name, start, end)``: the turn it overlaps
    most, else the nearest within :data:`NEAR_TURN_S`; the disclaimer's words and words far from every turn keep
    theirs. Where two turns overlap (two people at once) the word goes to the one covering more of it."""
    if not turns:
        return list(words)
    ordered = sorted(turns, key=lambda t: t[1])
    starts = [t[1] for t in ordered]
    longest = max(b - a for _, a, b in ordered)
    out = []
    for w in words:
        if w.speaker == DISCLAIMER_SPEAKER:
            out.append(w)
            continue
        hi = bisect.bisect_right(starts, w.end)
        lo = bisect.bisect_left(starts, w.start - longest - NEAR_TURN_S)
        best, score = None, -NEAR_TURN_S
        for name, a, b in ordered[lo : hi + 1]:
            s = min(b, w.end) - max(a, w.start)  # overlap (positive) or minus the gap
            if s > score:
                best, score = name, s
        out.append(replace(w, speaker=best) if best is not None else w)
    return out


def _in_turns(words: Sequence[TimedWord]) -> list[TimedWord]:
    """Words (in time order) regrouped so that overlapping speakers do not interleave word by word: each speaker's
    run of words (no pause longer than a cue's) stays whole, and runs follow each other in order of their start."""
    runs: list[list[TimedWord]] = []
    open_run: dict[str | None, list[TimedWord]] = {}
    for w in words:
        run = open_run.get(w.speaker)
        if run is None or w.start - run[-1].end > CUE_PAUSE:
            run = []
            runs.append(run)
            open_run[w.speaker] = run
        run.append(w)
    runs.sort(key=lambda r: r[0].start)
    return [w for r in runs for w in r]


#: Bytes read from the decoder at a time (1 s of 16 kHz float32 is 64 KiB): each read is one wait the stall
#: watchdog times.
DECODE_READ_BYTES = 1 << 20


def _decode(path: Path, start: float, duration: float | None) -> np.ndarray:
    """Decode ``duration`` seconds from ``start`` to 16 kHz mono float32 (our ffmpeg wrapper; no ffmpeg on PATH)."""
    args = ffmpeg.decode_args(path, sample_rate=SAMPLE_RATE, channels=1, fmt="f32le", start=start, duration=duration)
    proc = ffmpeg.popen(args)
    assert proc.stdout is not None
    parts = []
    while True:
        with proc.waiting():  # an ffmpeg alive but silent is killed by its watchdog (docs/reliability.md)
            buf = proc.stdout.read(DECODE_READ_BYTES)
        if not buf:
            break
        parts.append(buf)
    data = b"".join(parts)
    try:
        ffmpeg.finish(proc, where=path)
    except FFmpegError as e:
        raise TranscriptError(f"cannot decode: {e.message}", where=path) from e
    return np.frombuffer(data, dtype="<f4", count=len(data) // 4)


def _speech(audio: np.ndarray, use_vad: bool, max_seconds: float = MAX_SPEECH_SECONDS) -> list[tuple[int, int]]:
    """Speech stretches ``(start, end)`` in samples: Silero VAD (faster-whisper's defaults) or everything."""
    if not use_vad:
        if len(audio) <= max_seconds * SAMPLE_RATE:
            return [(0, len(audio))] if len(audio) else []
        step = int(max_seconds * SAMPLE_RATE)
        return [(i, min(i + step, len(audio))) for i in range(0, len(audio), step)]
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(max_speech_duration_s=max_seconds)
    return [(int(c["start"]), int(c["end"])) for c in get_speech_timestamps(audio, opts, sampling_rate=SAMPLE_RATE)]


@dataclass(frozen=True)
class _Block:
    """One decoded block of a region and its speech, ready for the engine."""

    pos: float  # where it starts in the file
    audio: np.ndarray
    chunks: list[tuple[int, int]]  # speech stretches (samples), those left for the next block dropped
    advance: float  # seconds to the next block's start
    last: bool


def _read_block(path: Path, region: _Region, pos: float, use_vad: bool, max_speech: float) -> _Block | None:
    """Decode the block at ``pos`` and find its speech; ``None`` past the end."""
    end = region.end
    want = BLOCK_SECONDS if end is None else min(BLOCK_SECONDS, end - pos)
    audio = _decode(path, pos, want)
    if len(audio) == 0:
        return None
    last = len(audio) < int(want * SAMPLE_RATE) - SAMPLE_RATE // 10 or (end is not None and pos + want >= end)
    chunks = _speech(audio, use_vad, max_speech)
    advance = len(audio) / SAMPLE_RATE
    if not last and chunks:
        margin = int(OPEN_MARGIN_SECONDS * SAMPLE_RATE)
        open_at = next((i for i, (_s, e) in enumerate(chunks) if e >= len(audio) - margin), None)
        if open_at is not None and chunks[open_at][0] > SAMPLE_RATE:
            # Leave the stretch that runs into the block's end for the next block, which starts where it does.
            advance = chunks[open_at][0] / SAMPLE_RATE
            chunks = chunks[:open_at]
    return _Block(pos, audio, chunks, advance, last)


def _transcribe_region(
    path: Path,
    region: _Region,
    engine: engines.Engine,
    settings: WhisperSettings,
    glossary: Sequence[str],
    on_progress: Callable[[float], None],
    redone: list[RedoneWindow] | None = None,
) -> tuple[list[TimedWord], float, float]:
    """Transcribe one region block by block; return its words (file times), speech seconds and length. Windows the
    engine decoded again go to ``redone`` (file times).

    The next block is decoded and its speech found on another thread while the engine works on this one (ffmpeg
    and VAD otherwise leave a core idle between blocks); two blocks at most are in memory.
    """
    out: list[TimedWord] = []
    speech_total = 0.0
    end = region.end
    max_speech = min(MAX_SPEECH_SECONDS, MAX_BATCHED_SPEECH_SECONDS) if engine.batch_size > 0 else MAX_SPEECH_SECONDS
    use_vad = settings.vad or region.known_text is not None

    def read(pos: float) -> _Block | None:
        return _read_block(path, region, pos, use_vad, max_speech) if end is None or pos < end - 0.05 else None

    pos = region.start
    with ThreadPoolExecutor(1, thread_name_prefix="transcribe-read") as reader:
        block = read(pos)
        while block is not None:
            ahead = reader.submit(read, block.pos + block.advance) if not block.last else None
            chunks, audio = block.chunks, block.audio
            if region.known_text is not None:
                if chunks:
                    s0, e0 = chunks[0][0] / SAMPLE_RATE, chunks[-1][1] / SAMPLE_RATE
                else:
                    s0, e0 = 0.0, len(audio) / SAMPLE_RATE
                out += words_from_text(region.known_text, block.pos + s0, block.pos + e0, region.speaker)
                speech_total += e0 - s0
                if ahead is not None:
                    ahead.cancel()
                return out, speech_total, _length(region, block.pos + block.advance)
            if chunks:
                joined = np.concatenate([audio[s:e] for s, e in chunks])
                speech_total += len(joined) / SAMPLE_RATE
                db = _frame_db(audio)
                sound = _sound_db(db)  # the block's levels judge its joined speech too
                voiced = db > sound
                again: list[engines.Redo] = []
                for piece in engine.transcribe(joined, glossary, _breaks(joined, sound), again):
                    out += _words(piece, chunks, block.pos, end, region.speaker, voiced)
                if redone is not None:
                    redone += [RedoneWindow(round(block.pos + _unjoin(chunks, r.start, is_end=False), 3),
                                            round(block.pos + _unjoin(chunks, r.end, is_end=True), 3), r.reason, r.kept)
                               for r in again]  # fmt: skip
            pos = block.pos + block.advance
            on_progress(pos - region.start)
            block = ahead.result() if ahead is not None else None
    return out, speech_total, _length(region, pos)


#: Frames for the voicing check that snaps word edges: 10 ms.
FRAME_SECONDS = 0.01
#: A frame this far below the loud speech of its block (95th percentile of frame energy) is silence ...
SILENCE_BELOW_DB = 35.0
#: ... and so is one less than this above the room's noise floor (10th percentile of the frames that are not
#: digital silence): jfk.wav's hiss sits at -41 dBFS, 31 dB under its speech.
SOUND_ABOVE_FLOOR_DB = 10.0


def _sound_db(db: np.ndarray) -> float:
    """The level (dB per 10 ms frame, :func:`_frame_db`) above which a frame of this block has sound in it: above
    the room's noise and near the block's speech level (``inf``: a block of digital silence has none)."""
    live = db[db > -90.0]
    if not len(live):
        return float("inf")
    floor = float(np.percentile(live, 10))
    return max(float(np.percentile(live, 95)) - SILENCE_BELOW_DB, floor + SOUND_ABOVE_FLOOR_DB, -70.0)


def _frame_db(audio: np.ndarray) -> np.ndarray:
    n = int(FRAME_SECONDS * SAMPLE_RATE)
    frames = audio[: len(audio) // n * n].reshape(-1, n).astype(np.float64)
    return np.asarray(10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12))


#: A run of silent frames at least this long is a pause between words where a batched window may end: a
#: window that could only end at VAD's joins held ~20 s of speech on average; ending in these it holds ~27 s, so an
#: hour needs ~25 % fewer windows, each of which costs the encoder the same whatever it holds.
MIN_WORD_GAP_SECONDS = 0.06


def _breaks(joined: np.ndarray, sound_db: float) -> list[engines.Break]:
    """The pauses in the joined speech where a batched engine may end a window: ``(middle, length)`` in seconds of
    every run of at least :data:`MIN_WORD_GAP_SECONDS` of silence between sounds (the joins of VAD's stretches lie
    in such runs: VAD keeps some silence on each side). Never inside a word. ``sound_db``: the block's
    :func:`_sound_db`, as VAD took most of the room's noise out of the joined speech."""
    quiet = _frame_db(joined) <= sound_db
    steps = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    min_run = max(1, round(MIN_WORD_GAP_SECONDS / FRAME_SECONDS))
    return [
        ((a + b) / 2 * FRAME_SECONDS, (b - a) * FRAME_SECONDS)
        for a, b in zip(starts, ends, strict=True)
        if b - a >= min_run and a > 0 and b < len(quiet)  # between sounds, not the joined speech's edges
    ]


def _snap(start: float, end: float, voiced: np.ndarray) -> tuple[float, float]:
    """Word edges (block seconds) moved off silence onto the sound they belong to.

    Whisper's word timings come from cross-attention, which often lets a word begin in the pause before it (the first
    word of a window at the window's start): measured on jfk.wav, "ask" 0.6 s early with tiny.en. A word cannot
    start or end in silence, so its edges move to its first and last sounding frame (with 20 ms to spare).
    """
    i0, i1 = int(start / FRAME_SECONDS), int(np.ceil(end / FRAME_SECONDS))
    hits = np.flatnonzero(voiced[max(i0, 0) : max(i1, 0)])
    if not len(hits):
        return start, end
    s = max(start, (i0 + hits[0]) * FRAME_SECONDS - 0.02)
    e = min(end, (i0 + hits[-1] + 1) * FRAME_SECONDS + 0.02)
    return (s, e) if e - s >= 0.05 else (start, end)


def _words(
    piece: engines.Piece,
    chunks: Sequence[tuple[int, int]],
    pos: float,
    end: float | None,
    speaker: str | None,
    voiced: np.ndarray,
) -> list[TimedWord]:
    """A piece's words on the file's timeline (through the VAD joins); words spread by length if it has none."""
    if not piece.words:
        text = _clean(piece.text)
        if not text:
            return []
        start = pos + _unjoin(chunks, float(piece.start), is_end=False)
        stop = pos + _unjoin(chunks, float(piece.end), is_end=True)
        return words_from_text(text, start, min(stop, end) if end is not None else stop, speaker)
    out: list[TimedWord] = []
    for w in piece.words:
        text = _clean(w.text)
        if not text:
            continue
        a, b = _snap(_unjoin(chunks, float(w.start), is_end=False), _unjoin(chunks, float(w.end), is_end=True), voiced)
        start, stop = pos + a, pos + b
        if end is not None:
            stop = min(stop, end)
        word = TimedWord(round(start, 3), round(max(stop, start + 0.01), 3), text, float(w.probability), speaker)
        if out and not w.text[:1].isspace():
            # Whisper starts a new word with a space; a piece without one continues the last word ("1" ",263",
            # "non" "-allowing"): one word, as written, and as sure as its least sure piece.
            prev = out[-1]
            word = TimedWord(prev.start, word.end, prev.word + text, min(prev.probability, word.probability), speaker)
            out[-1] = word
            continue
        out.append(word)
    return out


def _length(region: _Region, reached: float) -> float:
    return (region.end if region.end is not None else reached) - region.start


def _unjoin(chunks: Sequence[tuple[int, int]], t: float, *, is_end: bool) -> float:
    """Map a time in the joined speech back to the block (faster-whisper's ``SpeechTimestampsMap`` idea)."""
    sample = t * SAMPLE_RATE
    acc = 0
    for i, (s, e) in enumerate(chunks):
        n = e - s
        if sample < acc + n or (is_end and sample <= acc + n) or i == len(chunks) - 1:
            return (s + min(max(sample - acc, 0), n)) / SAMPLE_RATE
        acc += n
    return t


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _terms(terms: Sequence[str]) -> list[str]:
    """Glossary terms, stripped, without repeats (case-insensitive), in order."""
    seen: list[str] = []
    for t in terms:
        t = " ".join(t.split())
        if t and t.lower() not in (s.lower() for s in seen):
            seen.append(t)
    return seen
