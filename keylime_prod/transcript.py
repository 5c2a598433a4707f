"""The transcript stage: Whisper speech-to-text on the published episode's timeline, in every format platforms read.

:func:`transcribe` takes either a :class:`~keylime_prod.artefacts.Master` (an episode) or a plain audio file. For an
episode it transcribes only the *body* and the *disclaimer* of the final MP3, at the offsets ``master.json``
records, so no music bed is ever fed to Whisper (Whisper hallucinates on music and silence) and every timestamp is
already on the published file's timeline (what Apple, Spotify and Podcasting 2.0 players show against the audio).
The disclaimer's known text may stand in for transcribing it; VAD still finds where it is spoken.

How audio flows (bounded memory: a 60-minute file needs a few hundred MiB, never the whole file at once):

1. ffmpeg (our wrapper) decodes one block of at most :data:`BLOCK_SECONDS` to 16 kHz mono float32 on a pipe;
2. Silero VAD (shipped inside faster-whisper) finds the speech in it; a stretch of speech running into the end of
   the block is left for the next block, which starts where it starts, so no word is cut at a block border;
3. the speech stretches, joined, go to the engine (keylime_prod.engines); its times map back through the joins.

Outputs, written atomically beside each other as ``<stem>.<ext>``: ``txt``, ``srt`` (<= 2 lines of <= 42 characters
per cue), ``vtt`` (WebVTT, ``<v Name>`` voice tags: Apple reads speaker names from them), ``json`` (Podcasting 2.0
transcript JSON) and ``html``; plus ``<stem>.report.json``, which records how the transcript was made.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import engines, ffmpeg, fsutil, models
from .artefacts import Master, Transcript, TranscriptSegment
from .config import WhisperSettings
from .errors import FFmpegError, TranscriptError
from .progress import ProgressFn, null_progress

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what Whisper's feature extractor expects
#: Audio decoded at once. 600 s of 16 kHz float32 is 38 MB; VAD and the engine's features stay well under 1 GiB.
BLOCK_SECONDS = 600.0
#: A VAD speech stretch longer than this is split at its last short pause, so every block ends on a pause.
MAX_SPEECH_SECONDS = 240.0
#: A speech stretch ending closer than this to the end of a block may go on: it is left for the next block.
OPEN_MARGIN_SECONDS = 1.0
#: Captioning convention the issue fixes for SRT (and we use for VTT too): <= 2 lines of <= 42 characters.
MAX_LINE_CHARS = 42
MAX_LINES = 2
FORMATS = ("txt", "srt", "vtt", "json", "html")
REPORT_SUFFIX = ".report.json"


@dataclass(frozen=True)
class _Region:
    """A stretch of the input to transcribe: ``start``/``end`` in the file, which is also the published timeline."""

    name: str
    start: float
    end: float | None  # None: to the end of the file
    speaker: str | None
    known_text: str | None = None


def report_path(out_dir: Path, stem: str = "transcript") -> Path:
    """Where :func:`transcribe` writes its report (used by the pipeline to load a cached transcript)."""
    return Path(out_dir) / f"{stem}{REPORT_SUFFIX}"


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
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> Transcript:
    """Transcribe ``source`` with ``settings`` and write ``<out_dir>/<stem>.{txt,srt,vtt,json,html}``.

    ``source`` is a master (its body and disclaimer are transcribed at their places on the episode timeline) or any
    audio file (transcribed whole). ``speaker`` labels the speech (VTT voice tags, JSON ``speaker``); with a master,
    ``speakers`` (one name per raw recording, in order) labels each recording's stretch of the body instead.
    ``glossary`` adds to ``settings.glossary``: names and terms that steer the model's spelling. With a master and
    ``settings.transcribe_disclaimer`` off, ``disclaimer_text`` is used as the disclaimer's transcript.
    ``cache_dir`` keeps converted/joined models (default: :func:`keylime_prod.models.default_cache_dir`).

    Raises :class:`TranscriptError` for unreadable or silent audio and for unknown, missing or corrupt models; no
    output file is written then.
    """
    progress = progress or null_progress
    cache_dir = Path(cache_dir) if cache_dir is not None else models.default_cache_dir()
    t0 = time.perf_counter()
    audio_path, regions = _regions(source, settings, speaker, disclaimer_text, speakers)
    out_dir = Path(out_dir)
    outputs = {fmt: out_dir / f"{stem}.{fmt}" for fmt in FORMATS}
    if any(p.resolve() == Path(audio_path).resolve() for p in outputs.values()):
        raise TranscriptError("an output would overwrite the input", where=audio_path, hint="use --out DIR")

    ref = models.resolve(settings.model, cache_dir=cache_dir)
    threads = settings.threads or models.physical_cores()
    t_load = time.perf_counter()
    engine = engines.load(settings, ref, threads=threads, cache_dir=cache_dir)
    load_seconds = time.perf_counter() - t_load
    terms = _terms([*settings.glossary, *glossary])
    log.info(
        "transcribing %s with %s %s (%s, beam %d, %d thread%s)",
        audio_path.name, engine.name, ref.label, engine.compute_type, settings.beam_size, threads,
        "" if threads == 1 else "s",
    )  # fmt: skip

    total = sum((r.end - r.start) for r in regions if r.end is not None) or 1.0
    done = 0.0
    segments: list[TranscriptSegment] = []
    speech_seconds = 0.0
    audio_seconds = 0.0
    spoken = 0  # segments Whisper found (not counting a disclaimer given as known text)
    for region in regions:

        def on_progress(d: float, base: float = done) -> None:
            progress("transcribe", base + d, total)

        region_segments, speech, length = _transcribe_region(audio_path, region, engine, settings, terms, on_progress)
        segments += region_segments
        spoken += 0 if region.known_text is not None else len(region_segments)
        speech_seconds += speech
        audio_seconds += length
        done += length
        progress("transcribe", min(done, total), total)
    segments.sort(key=lambda s: (s.start, s.end))
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
        "language": settings.language,
        "threads": threads,
        "glossary": terms,
        "transcribe_disclaimer": settings.transcribe_disclaimer,
        "load_seconds": round(load_seconds, 3),
    }
    transcript = Transcript(
        segments=tuple(segments),
        files={fmt: p for fmt, p in outputs.items()},
        language=settings.language or "en",
        engine=engine.name,
        model=ref.label,
        options=options,
        source=str(audio_path),
        audio_seconds=round(audio_seconds, 3),
        speech_seconds=round(speech_seconds, 3),
        elapsed_seconds=round(elapsed, 3),
        report=report_path(out_dir, stem),
    )
    # Render everything first, then write each file atomically: an error leaves no half-written set behind.
    rendered = {
        "txt": render_txt(transcript.segments),
        "srt": render_srt(transcript.segments),
        "vtt": render_vtt(transcript.segments),
        "json": render_json(transcript.segments),
        "html": render_html(transcript.segments, language=transcript.language),
    }
    for fmt, text in rendered.items():
        fsutil.write_text(outputs[fmt], text)
    fsutil.write_json(transcript.report or report_path(out_dir, stem), transcript.to_json())
    log.info(
        "transcript: %d segments, %.0f s of audio (%.0f s speech) in %.1f s (%.1fx real time)",
        len(segments), audio_seconds, speech_seconds, elapsed, audio_seconds / elapsed if elapsed else 0.0,
    )  # fmt: skip
    return transcript


# ------------------------------------------------------------------------------------------------------ regions


def _regions(
    source: Master | Path,
    settings: WhisperSettings,
    speaker: str | None,
    disclaimer_text: str,
    speakers: Sequence[str] = (),
) -> tuple[Path, list[_Region]]:
    if isinstance(source, Master):
        if not source.mp3.is_file():
            raise TranscriptError("the master MP3 is missing", where=source.mp3, hint="run `produce master` again")
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
            regions.append(_Region("disclaimer", disc.start, disc.end, None, known_text=known))
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


def _decode(path: Path, start: float, duration: float | None) -> np.ndarray:
    """Decode ``duration`` seconds from ``start`` to 16 kHz mono float32 (our ffmpeg wrapper; no ffmpeg on PATH)."""
    args = ffmpeg.decode_args(path, sample_rate=SAMPLE_RATE, channels=1, fmt="f32le", start=start, duration=duration)
    proc = ffmpeg.popen(args)
    assert proc.stdout is not None
    data = proc.stdout.read()
    try:
        ffmpeg.finish(proc, where=path)
    except FFmpegError as e:
        raise TranscriptError(f"cannot decode: {e.message}", where=path) from e
    return np.frombuffer(data, dtype="<f4", count=len(data) // 4)


def _speech(audio: np.ndarray, use_vad: bool) -> list[tuple[int, int]]:
    """Speech stretches ``(start, end)`` in samples: Silero VAD (faster-whisper's defaults) or everything."""
    if not use_vad:
        return [(0, len(audio))] if len(audio) else []
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(max_speech_duration_s=MAX_SPEECH_SECONDS)
    return [(int(c["start"]), int(c["end"])) for c in get_speech_timestamps(audio, opts, sampling_rate=SAMPLE_RATE)]


def _transcribe_region(
    path: Path,
    region: _Region,
    engine: engines.Engine,
    settings: WhisperSettings,
    glossary: Sequence[str],
    on_progress: Callable[[float], None],
) -> tuple[list[TranscriptSegment], float, float]:
    """Transcribe one region block by block; return its segments (file times), speech seconds and length."""
    out: list[TranscriptSegment] = []
    speech_total = 0.0
    pos = region.start
    end = region.end
    margin = int(OPEN_MARGIN_SECONDS * SAMPLE_RATE)
    while end is None or pos < end - 0.05:
        want = BLOCK_SECONDS if end is None else min(BLOCK_SECONDS, end - pos)
        audio = _decode(path, pos, want)
        if len(audio) == 0:
            break
        last = len(audio) < int(want * SAMPLE_RATE) - SAMPLE_RATE // 10 or (end is not None and pos + want >= end)
        chunks = _speech(audio, settings.vad or region.known_text is not None)
        advance = len(audio) / SAMPLE_RATE
        if not last and chunks:
            open_at = next((i for i, (_s, e) in enumerate(chunks) if e >= len(audio) - margin), None)
            if open_at is not None and chunks[open_at][0] > SAMPLE_RATE:
                # Leave the stretch that runs into the block's end for the next block, which starts where it does.
                advance = chunks[open_at][0] / SAMPLE_RATE
                chunks = chunks[:open_at]
        if region.known_text is not None:
            if chunks:
                s0, e0 = chunks[0][0] / SAMPLE_RATE, chunks[-1][1] / SAMPLE_RATE
            else:
                s0, e0 = 0.0, len(audio) / SAMPLE_RATE
            out.append(TranscriptSegment(pos + s0, pos + e0, region.known_text.strip(), region.speaker))
            speech_total += e0 - s0
            return out, speech_total, _length(region, pos + advance)
        if chunks:
            joined = np.concatenate([audio[s:e] for s, e in chunks])
            speech_total += len(joined) / SAMPLE_RATE
            for piece in engine.transcribe(joined, glossary):
                text = _clean(piece.text)
                if not text:
                    continue
                start = pos + _unjoin(chunks, piece.start, is_end=False)
                stop = pos + _unjoin(chunks, piece.end, is_end=True)
                if end is not None:
                    stop = min(stop, end)
                out.append(TranscriptSegment(round(start, 3), round(max(stop, start + 0.01), 3), text, region.speaker))
        pos += advance
        on_progress(pos - region.start)
        if last:
            break
    return out, speech_total, _length(region, pos)


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


# ------------------------------------------------------------------------------------------------------ writers


def _clock(t: float, sep: str = ".") -> str:
    ms = max(0, round(t * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


@dataclass(frozen=True)
class Cue:
    """One caption: at most :data:`MAX_LINES` lines of at most :data:`MAX_LINE_CHARS` characters."""

    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None


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


def to_cues(
    segments: Sequence[TranscriptSegment], *, max_chars: int = MAX_LINE_CHARS, max_lines: int = MAX_LINES
) -> list[Cue]:
    """Split segments into caption cues; a segment's time is shared among its cues by their share of characters.

    A cue ends early after a line that ends a sentence, so captions break where the speech does.
    """
    cues: list[Cue] = []
    for seg in segments:
        lines = _wrap(seg.text, max_chars)
        if not lines:
            continue
        groups: list[list[str]] = [[]]
        for ln in lines:
            if len(groups[-1]) == max_lines:
                groups.append([])
            groups[-1].append(ln)
            if re.search(r"[.?!]['\"”)]?$", ln) and ln is not lines[-1]:
                groups.append([])
        groups = [g for g in groups if g]
        weights = [sum(len(ln) for ln in g) + len(g) for g in groups]
        total = sum(weights)
        t = seg.start
        for g, w in zip(groups, weights, strict=True):
            stop = seg.end if g is groups[-1] else t + (seg.end - seg.start) * w / total
            cues.append(Cue(round(t, 3), round(stop, 3), tuple(g), seg.speaker))
            t = stop
    return cues


def render_txt(segments: Sequence[TranscriptSegment]) -> str:
    """Plain text (``text/plain``): one segment per line, the speaker's name where the speaker changes."""
    out: list[str] = []
    last: str | None = None
    for seg in segments:
        label = f"{seg.speaker}: " if seg.speaker and seg.speaker != last else ""
        last = seg.speaker
        out.append(label + seg.text)
    return "\n".join(out) + "\n"


def render_srt(segments: Sequence[TranscriptSegment]) -> str:
    """SubRip (``application/x-subrip``): numbered cues, ``HH:MM:SS,mmm`` times, <= 2 lines of <= 42 characters."""
    blocks = []
    for i, cue in enumerate(to_cues(segments), 1):
        blocks.append(f"{i}\n{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}\n" + "\n".join(cue.lines))
    return "\n\n".join(blocks) + "\n"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_vtt(segments: Sequence[TranscriptSegment]) -> str:
    """WebVTT (``text/vtt``), what Apple ingests; the speaker goes in a ``<v Name>`` voice tag (W3C WebVTT 4.2.2)."""
    blocks = ["WEBVTT"]
    for cue in to_cues(segments):
        body = "\n".join(_vtt_escape(ln) for ln in cue.lines)
        if cue.speaker:
            name = _vtt_escape(cue.speaker).replace("\n", " ")
            body = f"<v {name}>{body}</v>"
        blocks.append(f"{_clock(cue.start)} --> {_clock(cue.end)}\n{body}")
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


def render_html(segments: Sequence[TranscriptSegment], *, language: str = "en", title: str = "Transcript") -> str:
    """A standalone HTML page (``text/html``): a paragraph per segment with its time and, on change, the speaker."""
    rows = []
    last: str | None = None
    for seg in segments:
        who = ""
        if seg.speaker and seg.speaker != last:
            who = f'<span class="speaker">{html.escape(seg.speaker)}:</span> '
        last = seg.speaker
        stamp = _clock(seg.start)[:8]
        rows.append(
            f'<p id="t{int(seg.start)}"><time datetime="PT{seg.start:.3f}S">{stamp}</time> {who}'
            f"{html.escape(seg.text)}</p>"
        )
    body = "\n".join(rows)
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(language)}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<style>body{font-family:system-ui,sans-serif;max-width:42em;margin:2em auto;line-height:1.5;padding:0 1em}"
        "time{color:#666;font-variant-numeric:tabular-nums;margin-right:.5em}.speaker{font-weight:600}</style>\n"
        f"</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )
