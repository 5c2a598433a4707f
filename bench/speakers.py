"""Benchmark who-speaks-when (keylime_prod/speakers, docs/speakers.md) against its baseline, in one invocation.

Usage::

    python bench/speakers.py [--minutes 10] [--workdir /tmp/keylime-bench-speakers] [--no-cost]

The baseline is what a mixed recording got before the speakers stage: one name for every word (the episode's first
host) and one "voice" for all the speech. Each method runs in a child process (its peak RSS its own):

1. **Accuracy on real voices** (``tests/data/speakers``, scripts/make_speaker_media.py):
   * ``three_voices.flac``, three readers at equal level, two of them enrolled hosts, the third the episode's one
     guest: the share of Whisper's words (faster-whisper base int8, the default) under the right name, the word's
     middle inside the true turn (0.25 s of slack at the edges, as tests/test_multitrack.py judges tracks);
   * ``conversation.flac``, the real two-person telephone call with overlap: DER (missed + false alarm + confusion,
     overlap counted, no collar) against the reference turns the file ships with;
   * ``tests/data/multitrack-hard`` mixed down to one file (each track at its start, summed: the two voices 13 LU
     apart, each with the other's bleed): DER against its ``session.json`` turns.
2. **Levels** (unless ``--no-levels``): ``uneven_voices.flac`` (hosts at -17 and -21 LUFS, the guest at -33) mastered
   with the show's defaults, once with the stretch leveler alone (the baseline) and once with each speaker levelled
   first from the diarized turns; each speaker's loudness by ffmpeg's ebur128 on the MP3, over their true turns.
3. **Cost** (unless ``--no-cost``): ``--minutes`` of the two files looped, diarized (windows every 0.8 s, the default,
   and every 1.6 s, the cheapest), against Whisper recognising the same audio (transcription is most of an episode's
   processing: docs/performance.md) in the same invocation; wall and CPU seconds, per audio hour, and peak RSS.

Run ``uptime`` next to it: the figures in docs/performance.md say the load.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg  # noqa: E402

DATA = REPO / "tests" / "data" / "speakers"
TRUTH = json.loads((DATA / "speakers.json").read_text())
HOSTS = {name: str(DATA / f) for name, f in TRUTH["enrolment"].items()}
GUEST = TRUTH["people"]["jfk"]["name"]
HARD_DIR = REPO / "tests" / "data" / "multitrack-hard"
HARD = json.loads((HARD_DIR / "session.json").read_text())


def _hard_mixdown(dest: Path) -> Path:
    """The two tracks of ``tests/data/multitrack-hard`` summed on the host track's timeline (its truth's)."""
    rate = int(HARD["rate"])
    tracks = []
    for t in HARD["tracks"]:
        path = HARD_DIR / t["file"]
        x = np.frombuffer(ffmpeg.run(ffmpeg.decode_args(path, sample_rate=rate, channels=1), where=path).stdout, "<f4")
        tracks.append(np.r_[np.zeros(round(float(t["start_s"]) * rate), np.float32), x])
    y = np.zeros(max(len(x) for x in tracks), np.float32)
    for x in tracks:
        y[: len(x)] += x
    ffmpeg.run(["-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "-", "-c:a", "flac", "-y", str(dest)],
               input_bytes=y.tobytes())  # fmt: skip
    return dest


def _child(args: list[str]) -> dict[str, object]:
    """Run this script's ``--child`` mode and return what it printed (one JSON line) plus its peak RSS."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True)
    doc: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    doc["wall_s"] = round(time.perf_counter() - t0, 2)
    return doc


def _words(audio: Path) -> list[tuple[float, float, str]]:
    from keylime_prod.config import WhisperSettings
    from keylime_prod.transcript import recognise

    heard = recognise(audio, WhisperSettings(), speaker="Host")
    return [(w.start, w.end, w.word) for w in heard.words]


def _share_right(words: list[tuple[float, float, str | None]], turns: list[dict[str, object]]) -> float:
    right = 0
    for a, b, who in words:
        mid = (a + b) / 2
        right += who in {t["speaker"] for t in turns if float(t["start"]) - 0.25 <= mid <= float(t["end"]) + 0.25}  # type: ignore[arg-type]
    return right / max(len(words), 1)


def child(mode: str, audio: Path, step: float, words_file: Path | None) -> dict[str, object]:
    from keylime_prod.config import SpeakerSettings
    from keylime_prod.speakers import diarize, names_of
    from keylime_prod.speakers.turns import der
    from keylime_prod.transcript import TimedWord, by_voice

    if mode == "levels":
        return _levels(step > 0)
    if mode == "whisper":
        t0 = time.perf_counter()
        w = _words(audio)
        return {"seconds": round(time.perf_counter() - t0, 2), "words": len(w)}
    settings = SpeakerSettings(diarize=True, window_step_s=step, voices={k: Path(v) for k, v in HOSTS.items()})
    if mode == "baseline":
        from keylime_prod.speakers.turns import speech_frames
        from keylime_prod.speakers.voice import HOP, SAMPLE_RATE

        raw = ffmpeg.run(ffmpeg.decode_args(audio, sample_rate=SAMPLE_RATE, channels=1), where=audio).stdout
        x = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4")
        sp = speech_frames(x)
        idx = np.flatnonzero(np.diff(np.r_[0, sp.astype(np.int8), 0]))
        hyp = [("one", a * HOP / SAMPLE_RATE, b * HOP / SAMPLE_RATE) for a, b in zip(idx[::2], idx[1::2], strict=True)]
        named = [(next(iter(HOSTS)), 0.0, len(x) / SAMPLE_RATE)]
    else:
        t0 = time.perf_counter()
        turns = diarize([audio], settings)
        names = names_of(turns, [GUEST], {}).names
        hyp = [(t.label, t.start, t.end) for t in turns.turns]
        named = [(names[t.label], t.start, t.end) for t in turns.turns]
        if mode == "cost":
            return {"seconds": round(time.perf_counter() - t0, 2), "voices": len(turns.voices)}
    out: dict[str, object] = {}
    key = audio.stem
    if key == "hard-mixdown":
        ref = [(str(t["speaker"]), float(t["start"]), float(t["end"])) for t in HARD["turns"]]
        out = {k: round(v, 3) for k, v in der(ref, hyp).items()} | {"voices": len({h[0] for h in hyp})}
    elif key == "conversation":
        ref = [(str(t["speaker"]), float(t["start"]), float(t["end"])) for t in TRUTH[key]["turns"]]
        out = {k: round(v, 3) for k, v in der(ref, hyp).items()} | {"voices": len({h[0] for h in hyp})}
    elif words_file is not None:
        heard = [TimedWord(a, b, w, 1.0, "Host") for a, b, w in json.loads(words_file.read_text())]
        named_words = by_voice(heard, named)
        share = _share_right([(w.start, w.end, w.speaker) for w in named_words], TRUTH[key]["turns"])
        out = {"words": len(named_words), "right": round(share, 4)}
    return out


def _levels(by_speaker: bool) -> dict[str, object]:
    import tempfile

    from keylime_prod.audio import master
    from keylime_prod.config import Assets, AudioSettings, SpeakerSettings, episode_from_data
    from keylime_prod.speakers import diarize, names_of

    audio = DATA / "uneven_voices.flac"
    voices = ()
    if by_speaker:
        turns = diarize([audio], SpeakerSettings(diarize=True, voices={k: Path(v) for k, v in HOSTS.items()}))
        voices = tuple((t.label, t.start, t.end) for t in turns.turns)
        names = names_of(turns, [GUEST], {}).names
    ep = episode_from_data(DATA / "bench.toml", "bench", {
        "number": 1, "title": "t", "publish_date": "2020-01-01", "summary": "s", "recordings": [str(audio)],
        "hosts": [{"name": n} for n in HOSTS], "guests": [{"name": GUEST}],
    })  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        m = master(ep, AudioSettings(), Assets(), Path(tmp), speakers=voices)
        rate = 44100
        raw = ffmpeg.run(ffmpeg.decode_args(m.mp3, sample_rate=rate, channels=1), where=m.mp3).stdout
        y = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4")
        loud: dict[str, float] = {}
        for who in {str(t["speaker"]) for t in TRUTH["uneven_voices"]["turns"]}:
            cut = np.concatenate([
                y[int(m.body_to_episode(float(t["start"])) * rate) : int(m.body_to_episode(float(t["end"])) * rate)]
                for t in TRUTH["uneven_voices"]["turns"] if t["speaker"] == who
            ])  # fmt: skip
            wav = Path(tmp) / "cut.wav"
            ffmpeg.run(["-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "-", "-y", str(wav)],
                       input_bytes=cut.astype("<f4").tobytes())  # fmt: skip
            loud[who] = round(ffmpeg.measure_ebur128(wav).integrated_lufs, 2)
        doc = json.loads(m.report.read_text())
        figures = doc["details"]["parts"][0]["leveler"].get("speakers", {})
    out: dict[str, object] = {"mp3_lufs": loud, "spread_lu": round(max(loud.values()) - min(loud.values()), 2)}
    if by_speaker:
        out["master_json"] = {names[k]: (v["before_lufs"], v["after_lufs"]) for k, v in figures.items()}
    return out


def _looped(dest: Path, minutes: float) -> Path:
    if dest.exists():
        return dest
    parts = [DATA / "three_voices.flac", DATA / "conversation.flac"]
    rate = 16000
    xs = [np.frombuffer(ffmpeg.run(ffmpeg.decode_args(p, sample_rate=rate, channels=1), where=p).stdout, "<f4")
          for p in parts]  # fmt: skip
    cycle = np.concatenate(xs)
    n = int(minutes * 60 * rate)
    y = np.tile(cycle, n // len(cycle) + 1)[:n]
    ffmpeg.run(["-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "-", "-c:a", "flac", "-y", str(dest)],
               input_bytes=y.astype("<f4").tobytes())  # fmt: skip
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/keylime-bench-speakers"))
    p.add_argument("--no-cost", action="store_true")
    p.add_argument("--no-levels", action="store_true")
    p.add_argument("--no-accuracy", action="store_true")
    p.add_argument("--child", nargs=4, metavar=("MODE", "AUDIO", "STEP", "WORDS"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        mode, audio, step, words = a.child
        doc = child(mode, Path(audio), float(step), Path(words) if words != "-" else None)
        use = resource.getrusage(resource.RUSAGE_SELF)  # this child alone: its CPU time and peak RSS
        doc |= {"cpu_s": round(use.ru_utime + use.ru_stime, 2), "peak_rss_mib": round(use.ru_maxrss / 1024)}
        print(json.dumps(doc))
        return
    a.workdir.mkdir(parents=True, exist_ok=True)
    words_file = a.workdir / "three_voices.words.json"
    if not words_file.exists():
        words_file.write_text(json.dumps(_words(DATA / "three_voices.flac")))
    mixdown = _hard_mixdown(a.workdir / "hard-mixdown.flac")
    for name in () if a.no_accuracy else ("three_voices", "conversation", "hard-mixdown"):
        if name == "three_voices":
            print("accuracy on real voices")
        audio = str(mixdown if name == "hard-mixdown" else DATA / f"{name}.flac")
        for label, mode, step in (("baseline (one voice)", "baseline", 0.8), ("windows every 0.8 s (default)",
                                  "diarize", 0.8), ("windows every 1.6 s", "diarize", 1.6)):  # fmt: skip
            r = _child([mode, audio, str(step), str(words_file)])
            print(f"  {name:13s} {label:30s} {json.dumps(r)}")
    if not a.no_levels:
        print("levels on the MP3 (ffmpeg ebur128 over each speaker's true turns; raw file: -17, -21, -33 LUFS)")
        for label, flag in (("stretch leveler alone (baseline)", "0"), ("each speaker levelled first", "1")):
            r = _child(["levels", str(DATA / "uneven_voices.flac"), flag, "-"])
            print(f"  {label:34s} {json.dumps(r)}")
    if a.no_cost:
        return
    looped = _looped(a.workdir / f"looped-{a.minutes:g}min.flac", a.minutes)
    # Per audio hour: what the looped file costs beyond the same child on the 30 s call (imports, model loading,
    # the hosts' samples: paid once per episode, not per hour), plus that fixed part once.
    short = str(DATA / "conversation.flac")
    extra_h = (a.minutes * 60 - 30.4) / 3600
    print(f"cost per audio hour: {a.minutes:g} minutes of the same voices looped, beyond the 30 s call, plus that once")

    def per_hour(long: dict[str, object], fixed: dict[str, object], key: str) -> float:
        return (float(long[key]) - float(fixed[key])) / extra_h + float(fixed[key])  # type: ignore[arg-type]

    w_long, w_fixed = _child(["whisper", str(looped), "0", "-"]), _child(["whisper", short, "0", "-"])
    whisper_wall, whisper_cpu = per_hour(w_long, w_fixed, "wall_s"), per_hour(w_long, w_fixed, "cpu_s")
    print(
        f"  whisper base int8 (recognise): {whisper_wall:.0f} s wall, {whisper_cpu:.0f} CPU s, peak "
        f"{w_long['peak_rss_mib']} MiB (raw: {json.dumps(w_long)}, the 30 s call: {json.dumps(w_fixed)})"
    )
    for step in (0.8, 1.6):
        r, f = _child(["cost", str(looped), str(step), "-"]), _child(["cost", short, str(step), "-"])
        wall, cpu = per_hour(r, f, "wall_s"), per_hour(r, f, "cpu_s")
        print(
            f"  diarize, windows every {step:g} s: {wall:.0f} s wall ({wall / whisper_wall:.2f}x Whisper), "
            f"{cpu:.0f} CPU s ({cpu / whisper_cpu:.2f}x), peak {r['peak_rss_mib']} MiB, {r['voices']} voices "
            f"(raw: {json.dumps(r)}, the 30 s call: {json.dumps(f)})"
        )


if __name__ == "__main__":
    main()
