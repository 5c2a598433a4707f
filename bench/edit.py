"""Measure the edit stage inside the pipeline on the editing material (``scripts/make_edit_media.py``), in one
invocation: per file, an episode over it behind a 3 s intro is built to the tagged MP3 with the defaults (pauses cut,
the rest proposed), then again with every proposal accepted.

Printed per file: what the inserted events became on the master (found or not, by kind), hesitation candidates
outside any inserted event and the words Whisper wrote whose middle fell inside an applied cut outside the events
(real words cut); WER (jiwer) against the reading of a second Whisper run on the uncut master (the baseline) and on
the cut, tagged MP3; the longest silence left inside the body (ffmpeg ``silencedetect`` at the inserted pause's own
level); the detection's and the whole build's seconds and their ratio; peak RSS of the process.

    python bench/edit.py [--set DIR] [--model tiny.en] [--threads 1]

``--set`` is a folder with ``edit_media.json`` and its files (default ``tests/data``; ``scripts/make_edit_media.py
--set held-out --out DIR`` makes a second set from other words and places, ``--set held-out-2`` a third and
``--set held-out-3`` a fourth, each kept for judging a finished change once).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support import configs, media  # noqa: E402

from keylime_prod import ffmpeg, transcript  # noqa: E402
from keylime_prod.audio.artefact import Master  # noqa: E402
from keylime_prod.config import WhisperSettings, load_settings  # noqa: E402
from keylime_prod.edit import read_cuts  # noqa: E402
from keylime_prod.edit.artefact import Edited  # noqa: E402
from keylime_prod.pipeline import run_episode  # noqa: E402
from keylime_prod.transcript.artefact import read_words  # noqa: E402

DATA = ROOT / "tests" / "data"
REFERENCE = {
    "sense_librivox.flac": DATA / "sense_librivox.txt",
    "sonnet1_librivox.flac": DATA / "sonnet1_librivox.txt",
}
RATE = 16000
KIND = {"pause": "pause", "hesitation": "hesitation", "retake": "retake", "false_start": "retake"}
NORM = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
                      jiwer.ReduceToListOfListOfWords()])  # fmt: skip


def decode(path: Path) -> np.ndarray:
    out = ffmpeg.run(["-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(RATE), "-"], where=path)
    return np.frombuffer(out.stdout, np.float32)


def longest_silence(path: Path, noise_db: float, span: tuple[float, float]) -> float:
    proc = ffmpeg.run(["-i", str(path), "-af", f"silencedetect=noise={noise_db:.1f}dB:d=0.3", "-f", "null", "-"])
    err = proc.stderr.decode()
    starts = [float(x) for x in re.findall(r"silence_start: ([\d.]+)", err)]
    ends = [float(x) for x in re.findall(r"silence_end: ([\d.]+)", err)]
    inside = [b - a for a, b in zip(starts, ends, strict=False) if span[0] < a and b < span[1]]
    return max(inside, default=0.0)


def wer(reference: str, words: list[str]) -> float:
    return float(jiwer.wer(reference, " ".join(words), reference_transform=NORM, hypothesis_transform=NORM))


def one(path: Path, doc: dict, whisper: WhisperSettings, tmp: Path) -> dict:
    cfg = tmp / "configs"
    tmp.mkdir(parents=True, exist_ok=True)
    intro = media.tone(tmp / "intro.mp3", 330, 3.0, -24.0)
    show = configs.show_config(assets={"intro": intro}, audio={"denoise": {"mode": "off"}}, whisper=whisper)
    configs.write_show(cfg, show)
    configs.write_episode(cfg, configs.episode_config([path]))
    upto = ("transcribe", "tag")
    first = run_episode(load_settings(cfg, tmp / "build"), "ep-1", upto=upto)
    total = sum(s.seconds for s in first.stages)
    master = first.get(Master)
    edited = first.get(Edited)
    assert master is not None and edited is not None
    layout = load_settings(cfg, tmp / "build").layout("ep-1")
    cuts = read_cuts(layout.cuts_json)
    proposed = [c.id for c in cuts.candidates if c.action == "propose"]
    (cfg / "episodes" / "ep-1.cuts.toml").write_text(f"accept = {json.dumps(proposed)}\n", "utf-8")
    second = run_episode(load_settings(cfg, tmp / "build"), "ep-1", upto=upto)
    final = second.get(Edited)
    assert final is not None
    cached = {s.name: s.cached for s in second.stages}

    def on_master(e: dict) -> tuple[float, float]:
        return master.body_to_episode(e["start"]), master.body_to_episode(e["end"])

    events = [(e["kind"], *on_master(e)) for e in doc["events"]]
    found = {}
    for kind, a, b in events:
        hits = [c for c in cuts.of(KIND[kind]) if c.start < b and a < c.end]  # type: ignore[arg-type]
        found.setdefault(kind, []).append(bool(hits))
    outside = [c for c in cuts.of("hesitation") if not any(c.start < b and a < c.end for _, a, b in events)]
    heard = transcript.Heard.load(layout.heard_json)
    words_cut = [
        w.word for w in heard.words
        if any(x.at_start <= (w.start + w.end) / 2 < x.at_end for x in final.applied)
        and not any(a - 0.1 <= (w.start + w.end) / 2 <= b + 0.1 for _, a, b in events)
    ]  # fmt: skip
    ref = REFERENCE[doc["source"]].read_text("utf-8")
    again_before = transcript.transcribe(master.mp3, whisper, tmp / "before")
    again_after = transcript.transcribe(layout.tagged_mp3, whisper, tmp / "after")
    assert again_before.words and again_after.words
    pause = next(e for e in doc["events"] if e["kind"] == "pause")
    a, b = on_master({"start": pause["start"] + 0.3, "end": pause["end"] - 0.3})
    quiet = 20 * np.log10(np.max(np.abs(decode(master.mp3)[int(a * RATE) : int(b * RATE)]))) + 3
    body = final.master.body
    return {
        "found": {k: f"{sum(v)}/{len(v)}" for k, v in found.items()},
        "hesitations_outside_events": [(c.start, c.text) for c in outside],
        "words_cut_outside_events": words_cut,
        "wer_uncut": round(wer(ref, [w.word for w in read_words(again_before.words)]), 3),
        "wer_cut": round(wer(ref, [w.word for w in read_words(again_after.words)]), 3),
        "longest_silence_before_s": round(longest_silence(master.mp3, quiet, (master.body.start, master.body.end)), 2),
        "longest_silence_after_s": round(longest_silence(final.master.mp3, quiet, (body.start, body.end)), 2),
        "removed_s": round(final.map.removed, 2),
        "detect_s": edited.detect_seconds,
        "build_s": round(total, 2),
        "detect_share": f"{edited.detect_seconds / total:.1%}",
        "apply_s": final.apply_seconds,
        "second_run": {k: ("cached" if v else "ran") for k, v in cached.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, default=DATA)
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    # The episode config is written in a temporary folder and names the files by path: a relative --set would be
    # read from there ("recording 1 not found").
    args.set = args.set.resolve()
    whisper = WhisperSettings(model=args.model, compute_type="float32" if "tiny" in args.model else "int8",
                              threads=args.threads)  # fmt: skip
    manifest = json.loads((args.set / "edit_media.json").read_text("utf-8"))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, doc) in enumerate(manifest.items()):
            out = one(args.set / name, doc, whisper, Path(tmp) / str(k))
            print(f"{name}: {json.dumps(out)}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"total {time.perf_counter() - t0:.0f} s, peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
