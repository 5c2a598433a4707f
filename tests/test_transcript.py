"""The transcript stage with real Whisper models (tiny.en, shipped by a pip package) on real speech (jfk.wav).

Outcomes are checked independently: WER with jiwer, cue timing and syntax by ffmpeg's own SRT/WebVTT demuxers,
the Podcasting 2.0 JSON by its schema rules, the alignment against where the test itself placed the speech in the
MP3 (and where ffmpeg's silencedetect says the words start).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from keylime_prod import ffmpeg, fsutil, transcript
from keylime_prod.audio.artefact import Loudness, Master, TimelineSegment
from keylime_prod.config import WhisperSettings
from keylime_prod.errors import TranscriptError
from keylime_prod.transcript import engines, weights
from keylime_prod.transcript.artefact import Transcript

JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
TINY = WhisperSettings(model="tiny.en", compute_type="float32", threads=1)


def normalise(text: str) -> str:
    text = re.sub(r"[^\w\s']", " ", text.lower().replace("-", " "))
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache for this test session (converted checkpoints are made once)."""
    return tmp_path_factory.mktemp("model-cache")


def silences(path: Path, noise_db: float = -30.0, min_s: float = 0.15) -> list[tuple[float, float]]:
    """(start, end) of every silence ffmpeg's silencedetect finds: an independent view of where speech is."""
    argv = ffmpeg.command(["-nostats", "-i", str(path), "-af", f"silencedetect=n={noise_db}dB:d={min_s}", "-f", "null"])
    err = subprocess.run([*argv, "-"], capture_output=True, check=True).stderr.decode()
    starts = [float(x) for x in re.findall(r"silence_start: (-?[\d.]+)", err)]
    ends = [float(x) for x in re.findall(r"silence_end: ([\d.]+)", err)]
    return list(zip(starts, ends + [float("inf")] * (len(starts) - len(ends)), strict=True))


def cues_via_ffmpeg(path: Path) -> list[tuple[float, float, str]]:
    """Parse a subtitle file with ffmpeg's own demuxer (SRT or WebVTT) by converting it to SRT on stdout."""
    out = subprocess.run(
        [*ffmpeg.command(["-v", "error", "-i", str(path), "-f", "srt"]), "-"], capture_output=True, check=True
    ).stdout.decode("utf-8")
    cues = []
    for block in out.strip().split("\n\n"):
        lines = block.splitlines()
        m = re.match(r"(\d+):(\d+):(\d+),(\d+) --> (\d+):(\d+):(\d+),(\d+)", lines[1])
        assert m, block
        v = [int(x) for x in m.groups()]
        cues.append((v[0] * 3600 + v[1] * 60 + v[2] + v[3] / 1000, v[4] * 3600 + v[5] * 60 + v[6] + v[7] / 1000,
                     "\n".join(lines[2:])))  # fmt: skip
    return cues


# ------------------------------------------------------------------------------------------------ quality (WER)


@pytest.mark.parametrize(("batch", "words"), [(8, True), (0, True), (0, False)], ids=["batched", "seq", "seq-nowords"])
@pytest.mark.whisper
def test_faster_whisper_wer_on_real_speech(batch: int, words: bool, jfk: Path, tmp_path: Path, cache_dir: Path) -> None:
    """Batched (the default), sequential, and sequential without word timings (the mode before issue 14)."""
    settings = TINY.model_copy(update={"batch_size": batch, "word_timestamps": words})
    t = transcript.transcribe(jfk, settings, tmp_path, stem="jfk", cache_dir=cache_dir)
    assert t.engine == "faster-whisper" and t.model == "tiny.en" and t.options["batch_size"] == batch
    assert wer(JFK_TEXT, " ".join(s.text for s in t.segments)) <= 0.1
    assert 10.5 <= t.audio_seconds <= 11.5
    doc = json.loads(t.words.read_text("utf-8")) if t.words else {}
    probs = [w["probability"] for w in doc["words"]]
    assert abs(len(probs) - len(JFK_TEXT.split())) <= 2 and all(0.0 < p <= 1.0 for p in probs)
    # With word timings the model's doubts show; without them every word is spread over its segment, probability 1.
    assert (min(probs) < 1.0) is words


@pytest.mark.openai_whisper
@pytest.mark.whisper
@pytest.mark.torch
def test_openai_whisper_same_weights_same_transcript(jfk: Path, tmp_path: Path, cache_dir: Path) -> None:
    """openai-whisper on the converted tiny.en weights: WER <= 0.1 and the very text faster-whisper float32 gives."""
    pytest.importorskip("whisper")
    ow = transcript.transcribe(
        jfk, TINY.model_copy(update={"engine": "openai-whisper"}), tmp_path / "ow", stem="jfk", cache_dir=cache_dir
    )
    fw = transcript.transcribe(jfk, TINY, tmp_path / "fw", stem="jfk", cache_dir=cache_dir)
    assert ow.engine == "openai-whisper"
    assert wer(JFK_TEXT, " ".join(s.text for s in ow.segments)) <= 0.1
    assert normalise(" ".join(s.text for s in ow.segments)) == normalise(" ".join(s.text for s in fw.segments))


@pytest.mark.parametrize(
    "engine", ["faster-whisper", pytest.param("openai-whisper", marks=[pytest.mark.openai_whisper, pytest.mark.torch])]
)
@pytest.mark.whisper
def test_glossary_steers_spelling(engine: str, tmp_path: Path, cache_dir: Path) -> None:
    """The first 9 s of the demo's second part say "Klasen and Lingard": tiny.en hears other words unless told."""
    if engine == "openai-whisper":
        pytest.importorskip("whisper")
    clip = tmp_path / "clip.wav"
    raw = Path(__file__).resolve().parent.parent / "configs" / "raw" / "episode-258" / "part-2-jason.m4a"
    ffmpeg.run(["-v", "error", "-i", str(raw), "-t", "9", "-y", str(clip)])
    plain = TINY.model_copy(update={"engine": engine})
    told = plain.model_copy(update={"glossary": ("Klasen", "Lingard")})
    without = transcript.transcribe(clip, plain, tmp_path / "a", cache_dir=cache_dir).text
    steered = transcript.transcribe(clip, told, tmp_path / "b", cache_dir=cache_dir).text
    assert "Klasen" not in without and "Lingard" not in without
    assert "Klasen and Lingard found in their narrative review" in steered


@pytest.mark.whisper
def test_blocks_keep_every_word(jfk: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long files are decoded block by block; a block border never cuts a word (speech runs on into the next)."""
    calls: list[tuple[float, float | None]] = []
    real_decode = transcript._decode

    def counting_decode(path: Path, start: float, duration: float | None):  # type: ignore[no-untyped-def]
        calls.append((start, duration))
        return real_decode(path, start, duration)

    monkeypatch.setattr(transcript, "BLOCK_SECONDS", 6.0)
    monkeypatch.setattr(transcript, "MAX_SPEECH_SECONDS", 2.5)
    monkeypatch.setattr(transcript, "_decode", counting_decode)
    t = transcript.transcribe(jfk, TINY, tmp_path, stem="jfk", cache_dir=cache_dir)
    assert len(calls) >= 2, calls
    assert all(d is not None and d <= 6.0 for _s, d in calls)
    assert wer(JFK_TEXT, " ".join(s.text for s in t.segments)) <= 0.15
    starts = [s.start for s in t.segments]
    assert starts == sorted(starts) and t.segments[-1].end <= 11.05


# ------------------------------------------------------------------------------------------------------ outputs


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.attrs: dict[str, list[dict[str, str | None]]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.setdefault(tag, []).append(dict(attrs))

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1] not in ("script", "style"):  # what a reader sees, not code
            self.text.append(data)


@pytest.mark.whisper
def test_every_format_is_written_and_readable(jfk: Path, tmp_path: Path, cache_dir: Path) -> None:
    page = transcript.Page(
        title="Ask not", show="Speeches", number=7, date=dt.date(1961, 1, 20), link="https://example.org/7",
        audio="jfk.wav",
    )  # fmt: skip
    t = transcript.transcribe(
        jfk, TINY, tmp_path, stem="talk", speaker="John F. Kennedy", page=page, cache_dir=cache_dir
    )
    assert {k: p.name for k, p in t.files.items()} == {
        "txt": "talk.txt", "srt": "talk.srt", "vtt": "talk.vtt", "json": "talk.json", "html": "talk.html",
    }  # fmt: skip
    spoken = normalise(" ".join(s.text for s in t.segments))

    txt = (tmp_path / "talk.txt").read_text("utf-8")
    assert txt.startswith("John F. Kennedy: ") and normalise(txt.replace("John F. Kennedy:", "")) == spoken

    # SRT, read back by ffmpeg: <= 2 lines of <= 42 characters per cue, times inside the audio, in order.
    srt = cues_via_ffmpeg(tmp_path / "talk.srt")
    assert len(srt) >= 2
    for start, end, text in srt:
        lines = text.splitlines()
        assert 1 <= len(lines) <= 2 and all(len(ln) <= 42 for ln in lines), text
        assert 0 <= start < end <= 11.05
    assert [c[0] for c in srt] == sorted(c[0] for c in srt)
    assert srt[0][2].startswith("John F. Kennedy: ")  # SubRip's speaker label (issue 10)
    assert normalise(" ".join(c[2] for c in srt).replace("John F. Kennedy:", "")) == spoken

    # WebVTT: the header, <v Name> voice tags on every cue; ffmpeg reads the same cue times as SRT.
    vtt_text = (tmp_path / "talk.vtt").read_text("utf-8")
    assert vtt_text.startswith("WEBVTT\n")
    assert vtt_text.count("<v John F. Kennedy>") == len(srt)
    vtt = cues_via_ffmpeg(tmp_path / "talk.vtt")
    assert [(round(a, 2), round(b, 2)) for a, b, _ in vtt] == [(round(a, 2), round(b, 2)) for a, b, _ in srt]

    # Podcasting 2.0 transcript JSON.
    doc = json.loads((tmp_path / "talk.json").read_text("utf-8"))
    assert doc["version"] == "1.0.0" and len(doc["segments"]) == len(t.segments)
    for seg in doc["segments"]:
        assert set(seg) == {"speaker", "startTime", "endTime", "body"} and seg["speaker"] == "John F. Kennedy"
        assert isinstance(seg["startTime"], float | int) and seg["startTime"] < seg["endTime"]
    assert doc["segments"][0]["startTime"] == pytest.approx(srt[0][0], abs=0.002)

    # The web page: the episode's header, a player, a paragraph per turn led by a link that seeks the player.
    doc_html = _Html()
    doc_html.feed((tmp_path / "talk.html").read_text("utf-8"))
    text = " ".join(doc_html.text)
    for expected in ("Speeches", "Ask not", "Episode 7", "20 January 1961"):
        assert expected in text
    assert ("https://example.org/7", "") in [(a.get("href"), "") for a in doc_html.attrs["a"]]
    assert [a.get("src") for a in doc_html.attrs["audio"]] == ["jfk.wav"]
    paras = transcript.paragraphs(t.segments)
    seeks = [a for a in doc_html.attrs["a"] if a.get("data-start") is not None]
    assert len(seeks) == len(paras) >= 1
    assert [float(a["data-start"] or 0) for a in seeks] == pytest.approx([p[0].start for p in paras], abs=0.001)
    assert all((a.get("href") or "").startswith("#t") for a in seeks)
    assert normalise(text).endswith(spoken.split()[-1])

    # words.json: the agreed format, every word on the timeline, in order, the same words as the cues.
    words = json.loads(t.words.read_text("utf-8"))["words"] if t.words else []
    assert words and all(set(w) == {"start", "end", "word", "probability", "speaker"} for w in words)
    assert all(0.0 <= w["probability"] <= 1.0 and 0.0 <= w["start"] < w["end"] <= 11.05 for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert normalise(" ".join(w["word"] for w in words)) == spoken

    # The report loads back into the same artefact.
    again = Transcript.load(tmp_path / "talk.report.json")
    assert again.segments == t.segments and again.files == t.files and again.engine == "faster-whisper"
    assert again.words == t.words


def test_cues_split_long_segments() -> None:
    from keylime_prod.transcript.artefact import TranscriptSegment

    long = TranscriptSegment(10.0, 40.0, " ".join(["word"] * 60) + ". Then https://example.org/" + "x" * 60, "Host")
    cues = transcript.to_cues([long])
    assert cues[0].start == 10.0 and cues[-1].end == 40.0
    for a, b in itertools.pairwise(cues):
        assert a.end == pytest.approx(b.start)
    assert all(len(c.lines) <= 2 and all(len(ln) <= 42 for ln in c.lines) for c in cues)
    assert normalise(" ".join(" ".join(c.lines) for c in cues).replace(" ", "")) == normalise(
        long.text.replace(" ", "")
    )


def test_vtt_escapes_markup() -> None:
    from keylime_prod.transcript.artefact import TranscriptSegment

    vtt = transcript.render_vtt([TranscriptSegment(0, 1, "a <b> & c", "A & B")])
    assert "<v A &amp; B>a &lt;b&gt; &amp; c</v>" in vtt


# --------------------------------------------------------------------------------------- episode timeline


def _episode(tmp_path: Path, jfk: Path) -> Master:
    """intro music (4 s) + jfk.wav + 0.5 s + the first 3 s of jfk.wav as 'disclaimer' + 0.5 s + outro music."""
    intro, gap = 4.0, 0.5
    speech = 11.0
    disc_len = 3.0
    music = "sine=f=220:d={d}[{n}1];sine=f=277:d={d}[{n}2];sine=f=330:d={d}[{n}3];" \
            "[{n}1][{n}2][{n}3]amix=inputs=3,volume=0.6,tremolo=f=4:d=0.6,aresample=44100[{n}]"  # fmt: skip
    graph = (
        music.format(d=intro, n="i") + ";" + music.format(d=4.0, n="o") + ";"
        f"[0:a]aresample=44100,asplit[s][s2];[s2]atrim=0:{disc_len},asetpts=N/SR/TB[d];"
        f"anullsrc=r=44100:cl=mono:d={gap}[g1];anullsrc=r=44100:cl=mono:d={gap}[g2];"
        "[i][s][g1][d][g2][o]concat=n=6:v=0:a=1,aformat=channel_layouts=stereo[out]"
    )  # fmt: skip
    mp3 = tmp_path / "build" / "ep.mp3"
    mp3.parent.mkdir(parents=True)
    ffmpeg.run(["-v", "error", "-i", str(jfk), "-filter_complex", graph, "-map", "[out]", "-c:a", "libmp3lame",
                "-b:a", "128k", "-y", str(mp3)])  # fmt: skip
    body = TimelineSegment("body", intro, intro + speech, source_start=0.0, sources=(jfk.name,))
    d0 = body.end + gap
    segs = (
        TimelineSegment("intro", 0.0, intro),
        body,
        TimelineSegment("disclaimer", d0, d0 + disc_len),
        TimelineSegment("outro", d0 + disc_len + gap, d0 + disc_len + gap + 4.0),
    )
    loud = ffmpeg.measure_ebur128(mp3)
    lo = Loudness(loud.integrated_lufs, loud.lra_lu, loud.true_peak_dbtp or 0.0, 0.0)
    return Master(
        episode_id="ep", mp3=mp3, report=mp3.parent / "master.json", duration=segs[-1].end, sample_rate=44100,
        channels=2, bitrate_kbps=128, audio_sha256=fsutil.sha256_file(mp3), segments=segs, input_loudness=lo,
        output_loudness=lo, method="gain", gain_db=0.0,
    )  # fmt: skip


@pytest.mark.whisper
def test_alignment_on_the_final_mp3(jfk: Path, tmp_path: Path, cache_dir: Path) -> None:
    """Known phrases are found where the test placed them in the MP3 (within 0.25 s); music and the known disclaimer
    are handled, and the disclaimer is labelled as such."""
    master = _episode(tmp_path, jfk)
    t = transcript.transcribe(
        master, TINY, tmp_path / "out", speaker="Lara Varpio", disclaimer_text="This is a test disclaimer.",
        cache_dir=cache_dir,
    )  # fmt: skip
    gaps = [g for g in silences(jfk, -25.0) if g[1] - g[0] >= 0.3]  # where jfk.wav falls silent, by ffmpeg
    onset = gaps[0][1]  # its first word starts after its leading silence (about 0.33 s)
    ask = gaps[1][1]  # "... fellow Americans, | ask not what ..." (about 3.29 s)
    assert 0.1 < onset < 1.0 and 2.0 < ask < 3.5
    words = json.loads(t.words.read_text("utf-8"))["words"] if t.words else []
    body_words = [w for w in words if w["speaker"] == "Lara Varpio"]
    first_ask = next(w for w in body_words if normalise(w["word"]) == "ask")
    assert first_ask["start"] == pytest.approx(master.body.start + ask, abs=0.25)
    assert body_words[0]["start"] == pytest.approx(master.body.start + onset, abs=0.25)
    assert body_words[-1]["end"] == pytest.approx(master.body.end, abs=1.0)

    body = [s for s in t.segments if s.speaker == "Lara Varpio"]
    disc = [s for s in t.segments if s.speaker == transcript.DISCLAIMER_SPEAKER]
    assert body and disc and len(body) + len(disc) == len(t.segments)
    assert all(master.body.start - 0.05 <= s.start and s.end <= master.body.end + 0.05 for s in body)
    assert wer(JFK_TEXT, " ".join(s.text for s in body)) <= 0.1
    d = master.segment("disclaimer")
    assert d is not None
    assert " ".join(s.text for s in disc) == "This is a test disclaimer."
    assert disc[0].start == pytest.approx(d.start + onset, abs=0.75) and disc[-1].end <= d.end + 0.05
    # ffmpeg reads the same first cue time back from the published WebVTT; the page labels the disclaimer.
    assert cues_via_ffmpeg(t.files["vtt"])[0][0] == pytest.approx(body[0].start, abs=0.002)
    assert "<v Disclaimer>This is a test disclaimer.</v>" in t.files["vtt"].read_text("utf-8")
    assert '<span class="speaker disclaimer">Disclaimer:</span>' in t.files["html"].read_text("utf-8")


@pytest.mark.whisper
def test_transcribing_the_disclaimer_instead(jfk: Path, tmp_path: Path, cache_dir: Path) -> None:
    master = _episode(tmp_path, jfk)
    settings = TINY.model_copy(update={"transcribe_disclaimer": True})
    t = transcript.transcribe(master, settings, tmp_path / "out", disclaimer_text="ignored", cache_dir=cache_dir)
    d = master.segment("disclaimer")
    assert d is not None
    in_disc = [s for s in t.segments if s.start >= d.start - 0.05]
    assert in_disc and "ignored" not in " ".join(s.text for s in t.segments)
    assert "fellow americans" in normalise(" ".join(s.text for s in in_disc))


# ---------------------------------------------------------------------------------------------------- bad input


def _no_outputs(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def test_not_audio(tmp_path: Path, cache_dir: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio\n")
    with pytest.raises(TranscriptError) as e:
        transcript.transcribe(bad, TINY, tmp_path / "out", cache_dir=cache_dir)
    assert "notes.wav" in str(e.value) and "\n" not in str(e.value)
    assert _no_outputs(tmp_path / "out")


def test_missing_file(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(TranscriptError, match="audio file not found"):
        transcript.transcribe(tmp_path / "nope.mp3", TINY, tmp_path / "out", cache_dir=cache_dir)


@pytest.mark.whisper
def test_silent_file(tmp_path: Path, cache_dir: Path) -> None:
    silent = tmp_path / "silent.wav"
    ffmpeg.run(["-v", "error", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono:d=5", "-y", str(silent)])
    with pytest.raises(TranscriptError, match="no speech found") as e:
        transcript.transcribe(silent, TINY, tmp_path / "out", cache_dir=cache_dir)
    assert "\n" not in str(e.value)
    assert _no_outputs(tmp_path / "out")


def test_model_path_that_does_not_exist(jfk: Path, tmp_path: Path, cache_dir: Path) -> None:
    settings = TINY.model_copy(update={"model": str(tmp_path / "models" / "whisper-x")})
    with pytest.raises(TranscriptError, match="model path does not exist"):
        transcript.transcribe(jfk, settings, tmp_path / "out", cache_dir=cache_dir)
    assert _no_outputs(tmp_path / "out")


def test_unknown_model_name_and_engine(jfk: Path, tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(TranscriptError, match="unknown model 'tiny-plus'"):
        transcript.transcribe(jfk, TINY.model_copy(update={"model": "tiny-plus"}), tmp_path, cache_dir=cache_dir)
    with pytest.raises(ValueError, match="engine"):
        WhisperSettings(engine="whisperx")  # type: ignore[arg-type]
    # Past validation (a settings object built without it), the stage still says which engines exist.
    bogus = WhisperSettings.model_construct(**{**TINY.model_dump(), "engine": "whisperx"})
    ref = weights.resolve("tiny.en", cache_dir=cache_dir)
    with pytest.raises(TranscriptError, match="unknown engine 'whisperx'"):
        engines.load(bogus, ref, threads=1, cache_dir=cache_dir)


def _copy_model(tmp_path: Path) -> Path:
    ref = weights.resolve("tiny.en", cache_dir=tmp_path)
    assert ref.ct2_dir is not None
    dest = tmp_path / "tiny-copy"
    dest.mkdir()
    for f in ref.ct2_dir.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


@pytest.mark.whisper
def test_corrupt_model_folder(jfk: Path, tmp_path: Path, cache_dir: Path) -> None:
    folder = _copy_model(tmp_path)
    with open(folder / "model.bin", "r+b") as f:  # truncated, as by an interrupted download
        f.truncate(1_000_000)
    out = tmp_path / "out"
    with pytest.raises(TranscriptError, match="corrupt model") as e:
        transcript.transcribe(jfk, TINY.model_copy(update={"model": str(folder)}), out, cache_dir=cache_dir)
    assert "\n" not in str(e.value)
    assert _no_outputs(out)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(TranscriptError, match="missing tokenizer.json"):
        transcript.transcribe(jfk, TINY.model_copy(update={"model": str(folder)}), out, cache_dir=cache_dir)


@pytest.mark.whisper
def test_compute_type_errors(jfk: Path, tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(TranscriptError, match="unknown compute type 'int4'"):
        transcript.transcribe(jfk, TINY.model_copy(update={"compute_type": "int4"}), tmp_path, cache_dir=cache_dir)
    import ctranslate2

    unsupported = sorted({"float16", "bfloat16", "int8_float16"} - set(ctranslate2.get_supported_compute_types("cpu")))
    if unsupported:
        with pytest.raises(TranscriptError, match="does not run on this CPU"):
            settings = TINY.model_copy(update={"compute_type": unsupported[0]})
            transcript.transcribe(jfk, settings, tmp_path, cache_dir=cache_dir)
    assert _no_outputs(tmp_path)


@pytest.mark.whisper
def test_speakers_per_recording(make_speech, tmp_path: Path, cache_dir: Path) -> None:
    """Two recordings, two names: each recording's words carry its speaker's voice tag, split where master.json
    says the second recording starts on the published timeline."""
    from keylime_prod import audio
    from keylime_prod.config import Assets, AudioSettings, EpisodeConfig

    a, b = make_speech("a.wav", -6.0), make_speech("b.flac", -10.0)
    ep = EpisodeConfig(
        id="ep",
        number=1,
        title="t",
        publish_date="2026-01-01",
        hosts=[{"name": "Ada Host"}],
        summary="s",
        recordings=[a, b],
        speakers=["Ada Host", "Bo Guest"],
    )
    m = audio.master(ep, AudioSettings(), Assets(), tmp_path / "build")
    t = transcript.transcribe(
        m, TINY, tmp_path / "build", speaker="Ada Host", speakers=ep.speakers, cache_dir=cache_dir
    )
    seam = m.pieces[1].start
    names = {(s.speaker, s.start >= seam) for s in t.segments}
    assert names == {("Ada Host", False), ("Bo Guest", True)}
    vtt = t.files["vtt"].read_text()
    assert "<v Ada Host>" in vtt and "<v Bo Guest>" in vtt
    with pytest.raises(TranscriptError, match="1 speaker name"):
        transcript.transcribe(m, TINY, tmp_path / "x", speakers=["Only One"], cache_dir=cache_dir)


@pytest.mark.whisper
def test_parallel_decoders_give_the_same_transcript(jfk: Path, tmp_path: Path, cache_dir: Path) -> None:
    """Issue 14: windows shared out between two decoders come back in order, word for word as one decoder's."""
    looped = tmp_path / "jfk6.wav"
    chain = "[0:a]apad=pad_dur=0.6,aloop=loop=5:size=2147483647[o]"
    ffmpeg.run(["-v", "error", "-i", str(jfk), "-filter_complex", chain, "-map", "[o]", "-y", str(looped)])
    runs = {}
    for n in (1, 2):
        settings = TINY.model_copy(update={"threads": 2, "decoders": n, "batch_size": 2})
        runs[n] = transcript.transcribe(looped, settings, tmp_path / str(n), stem="jfk6", cache_dir=cache_dir)
        assert runs[n].options["decoders"] == n
    one, two = ([w["word"] for w in json.loads(t.words.read_text("utf-8"))["words"]] for t in (runs[1], runs[2]))
    assert len(one) >= 5 * len(JFK_TEXT.split()) and one == two
    assert wer(" ".join([JFK_TEXT] * 6), " ".join(two)) <= 0.1
