"""Benchmark the two Whisper engines on the same weights and the same audio, in one invocation.

Each configuration runs in its own child process (so peak RSS is its own) through the real stage,
``keylime_prod.transcript.transcribe``: ffmpeg decode, Silero VAD, the engine. Printed per configuration: model load
time, transcription time, real-time factor (audio seconds per wall second, load excluded), CPU seconds (user + system
of the child: on a shared machine a fairer measure of work than wall time), WER against the reference (jiwer, after
lower-casing and dropping punctuation) with its deleted words, and peak RSS. The first configuration is the
baseline: the others print their speed ratio to it.

A configuration is ``engine:model:compute_type[:batch[:nowords][:dN]]``: ``batch`` is ``whisper.batch_size``
(faster-whisper only; 0 is sequential decoding, default: the setting's default), ``nowords`` turns word timestamps
off, which with batch 0 is exactly the mode before issue 14; ``dN`` is ``whisper.decoders`` (batched decoders side
by side, default: the setting's default).

    # issue 14: batched (default) vs sequential with words vs the old sequential mode vs openai-whisper, same weights
    python bench/transcribe.py --demo --repeat 4 --threads 2 --compare \
      faster-whisper:base:int8:0:nowords,faster-whisper:base:int8:0,faster-whisper:base:int8:4,openai-whisper:base:float32
    # both engines, the default model, real human speech (jfk.wav, whisper.cpp samples, MIT)
    python bench/transcribe.py
    # the default engine on several models / compute types, a longer real-speech sample (jfk x8 with pauses)
    python bench/transcribe.py --compare faster-whisper:tiny.en:float32,faster-whisper:tiny.en:int8 --repeat 8
    # memory on a long file: the demo speech looped to 60 minutes, default engine and model only
    python bench/transcribe.py --demo --long 60 --compare faster-whisper:base:int8
    # hints never make a transcript worse: every real-speech file (tests/data, LibriVox and jfk.wav) without hints,
    # with the show's glossary + episode-258's hints, and with a glossary unrelated to anything said; batched
    # (the default) and sequential. WER, deleted words, loops and windows decoded again, per file and glossary.
    python bench/transcribe.py --real --threads 2 --compare faster-whisper:base:int8,faster-whisper:base:int8:0

Threads default to 1 (``--threads``): on a shared 2-core machine one thread per engine is the fair, stable setting.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JFK = ROOT / "tests" / "data" / "jfk.wav"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
DATA = ROOT / "tests" / "data"
#: Real read speech with its reference text (tests/data/README.md says where each comes from).
REAL: dict[str, Path | str] = {
    "sonnet1_librivox.flac": DATA / "sonnet1_librivox.txt",
    "sense_librivox.flac": DATA / "sense_librivox.txt",
    "jfk.wav": JFK_TEXT,
}
#: A glossary about nothing anyone says in the real-speech files.
UNRELATED = ("Kubernetes", "PostgreSQL", "photosynthesis", "quantitative easing", "cardiac catheterization")


def normalise(text: str) -> str:
    """Lower-case, drop punctuation (keeping inner apostrophes and hyphens as spaces), collapse spaces."""
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text.lower())  # "1,263" as written and "1263" as spoken are one word
    text = text.replace("-", " ")
    text = re.sub(r"[^\w\s']", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> tuple[float, int]:
    """Word error rate and deleted-word count after :func:`normalise` (jiwer)."""
    import jiwer

    out = jiwer.process_words(normalise(reference), normalise(hypothesis))
    return out.wer, out.deletions


def make_sample(src: Path, repeat: int, gap: float, dest: Path) -> Path:
    """``src`` repeated ``repeat`` times with ``gap`` seconds of silence between, via our ffmpeg wrapper."""
    from keylime_prod import ffmpeg

    if repeat <= 1:
        return src
    parts = []
    for i in range(repeat):
        parts.append(f"[0:a]aresample=16000,aformat=channel_layouts=mono[s{i}]")
        parts.append(f"anullsrc=r=16000:cl=mono:d={gap}[g{i}]")
    chain = "".join(f"[s{i}][g{i}]" for i in range(repeat))
    graph = ";".join(parts) + f";{chain}concat=n={2 * repeat}:v=0:a=1[o]"
    ffmpeg.run(["-v", "error", "-i", str(src), "-filter_complex", graph, "-map", "[o]", "-y", str(dest)])
    return dest


def demo_sample(dest: Path) -> tuple[Path, str]:
    """The episode-258 demo speech (both raw parts joined) and its script, spelled as written (not as spoken)."""
    import importlib.util

    from keylime_prod import ffmpeg
    from keylime_prod.config import tomllib

    spec = importlib.util.spec_from_file_location("make_demo_media", ROOT / "scripts" / "make_demo_media.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    mod.speakable = lambda text: " ".join(text.split())  # undo the respellings made for espeak-ng
    ep = tomllib.loads((ROOT / "configs" / "episodes" / "episode-258.toml").read_text("utf-8"))
    part1, part2 = mod.episode_sections(ep)
    reference = " ".join(sec.text for sec in [*part1, *part2])
    raw = ROOT / "configs" / "raw" / "episode-258"
    graph = "[0:a]aresample=16000,aformat=channel_layouts=mono[a];[1:a]aresample=16000,aformat=channel_layouts=mono[b];"
    graph += "[a][b]concat=n=2:v=0:a=1[o]"
    ffmpeg.run(["-v", "error", "-i", str(raw / "part-1-lara.flac"), "-i", str(raw / "part-2-jason.m4a"),
                "-filter_complex", graph, "-map", "[o]", "-y", str(dest)])  # fmt: skip
    return dest, reference


def demo_glossary() -> list[str]:
    """What the pipeline gives the recogniser for the demo episode: the show's glossary, then the episode's hints."""
    from keylime_prod import transcript
    from keylime_prod.config import load_episode, load_show

    show = load_show(ROOT / "configs" / "show.toml")
    episode = load_episode(ROOT / "configs", "episode-258")
    return [*show.whisper.glossary, *transcript.episode_hints(episode, show.show.hosts)]


def reference_of(name: str) -> str:
    """The reference text of a real-speech file in :data:`REAL`."""
    ref = REAL[name]
    return ref.read_text("utf-8") if isinstance(ref, Path) else ref


def loops(text: str) -> str:
    """A phrase said over and over in ``text`` (the engine's own test), or ``""``."""
    from keylime_prod.transcript import engines

    return engines.repetition(text.split())


def real_child(args: argparse.Namespace) -> None:
    """One configuration over every real-speech file and glossary, in one process (the model loads once): a JSON
    line per run."""
    from keylime_prod import transcript
    from keylime_prod.config import WhisperSettings
    from keylime_prod.transcript import weights

    extra: dict[str, object] = {} if args.batch is None else {"batch_size": args.batch}
    settings = WhisperSettings(engine=args.engine, model=args.model, compute_type=args.compute_type,
                               threads=args.threads, beam_size=args.beam_size, **extra)  # fmt: skip
    glossaries = {"none": [], "show": demo_glossary(), "unrelated": list(UNRELATED)}
    for name in REAL:
        for label, terms in glossaries.items():
            with tempfile.TemporaryDirectory() as out:
                result = transcript.transcribe(DATA / name, settings, Path(out), glossary=terms,
                                               cache_dir=weights.default_cache_dir())  # fmt: skip
            text = " ".join(s.text for s in result.segments)
            ref = reference_of(name)
            err, deleted = wer(ref, text)
            hits = [t for t in terms if t.lower() in text.lower() and t.lower() not in ref.lower()]
            print(json.dumps({"file": name, "glossary": label, "wer": err, "deleted": deleted, "loop": loops(text),
                              "redone": [f"{r.start:.1f}-{r.end:.1f} s: {r.reason} -> {r.kept}" for r in result.redone],
                              "unsaid_terms": hits}), flush=True)  # fmt: skip


def real(args: argparse.Namespace) -> None:
    """The hints table: per configuration, file and glossary."""
    missing = [n for n, ref in REAL.items() if not (DATA / n).exists() or (isinstance(ref, Path) and not ref.exists())]
    if missing:
        sys.exit(f"missing real-speech material: {missing} (scripts/make_real_speech.py makes it)")
    for spec in args.compare.split(","):
        engine, model, compute, *more = spec.split(":")
        argv = [sys.executable, __file__, "--real-child", "--engine", engine, "--model", model, "--compute-type",
                compute, "--threads", str(args.threads), "--beam-size", str(args.beam_size)]  # fmt: skip
        if more and more[0]:
            argv += ["--batch", more[0]]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{spec}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        print(f"\n{spec} (threads {args.threads}, beam {args.beam_size})")
        print(f"{'file':22} {'WER none':>9} {'show':>6} {'unrel.':>6} {'del none':>9} {'show':>5} {'unrel.':>6}  "
              "loops / windows redone / unsaid terms")  # fmt: skip
        for name in REAL:
            by = {r["glossary"]: r for r in rows if r["file"] == name}
            if len(by) < 3:
                continue
            notes = [f"{g}: loop {r['loop']}" for g, r in by.items() if r["loop"]]
            notes += [f"{g}: redone {x}" for g, r in by.items() for x in r["redone"]]
            notes += [f"{g}: wrote {', '.join(r['unsaid_terms'])}" for g, r in by.items() if r["unsaid_terms"]]
            print(f"{name:22} {by['none']['wer']:9.3f} {by['show']['wer']:6.3f} {by['unrelated']['wer']:6.3f} "
                  f"{by['none']['deleted']:9d} {by['show']['deleted']:5d} {by['unrelated']['deleted']:6d}  "
                  f"{'; '.join(notes) or '-'}")  # fmt: skip


def child(args: argparse.Namespace) -> None:
    """Run one configuration and print a JSON line (the parent parses it)."""
    from keylime_prod import transcript
    from keylime_prod.config import WhisperSettings
    from keylime_prod.transcript import weights

    extra: dict[str, object] = {}
    if args.batch is not None:
        extra["batch_size"] = args.batch
    if args.decoders is not None:
        extra["decoders"] = args.decoders
    settings = WhisperSettings(
        engine=args.engine,
        model=args.model,
        compute_type=args.compute_type,
        threads=args.threads,
        beam_size=args.beam_size,
        glossary=tuple(args.glossary),
        word_timestamps=not args.nowords,
        **extra,
    )
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = transcript.transcribe(Path(args.audio), settings, Path(out), cache_dir=weights.default_cache_dir())
        total = time.perf_counter() - t0
    load = float(result.options.get("load_seconds", 0.0))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = usage.ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "text": " ".join(s.text for s in result.segments),
                "audio": result.audio_seconds,
                "load": load,
                "run": total - load,
                "rss_mib": rss,
                "cpu": usage.ru_utime + usage.ru_stime,
                "segments": len(result.segments),
            }
        )
    )


def main() -> None:
    """Parse arguments; run every configuration in a child process; print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", type=Path, default=JFK, help="audio file [tests/data/jfk.wav]")
    ap.add_argument("--reference", help="reference text (default: the jfk.wav sentence when --audio is jfk.wav)")
    ap.add_argument("--demo", action="store_true", help="the episode-258 demo speech (espeak-ng, 153 s) and script")
    ap.add_argument("--repeat", type=int, default=1, help="repeat the audio N times with 1.5 s pauses")
    ap.add_argument("--long", type=float, default=0.0, help="minutes of looped audio for a memory check")
    ap.add_argument(
        "--compare",
        default="faster-whisper:tiny.en:float32,openai-whisper:tiny.en:float32",
        help="engine:model:compute_type,... (the first is the baseline)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--glossary", action="append", default=[], help="a term (repeat); --demo: the episode's hints")
    ap.add_argument("--real", action="store_true", help="hints on/off on every real-speech file (tests/data)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--real-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--compute-type", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--nowords", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--decoders", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.real_child:
        real_child(args)
        return
    if args.real:
        real(args)
        return

    if args.demo and not args.glossary:
        args.glossary = demo_glossary()
    reference = args.reference
    if reference is None and args.audio.resolve() == JFK.resolve():
        reference = JFK_TEXT
    with tempfile.TemporaryDirectory() as tmp:
        audio = args.audio
        if args.demo:
            audio, reference = demo_sample(Path(tmp) / "demo.wav")
        repeat = args.repeat
        if args.long:
            from keylime_prod import ffmpeg

            length = ffmpeg.probe(audio).duration or 11.0
            repeat = max(1, round(args.long * 60 / (length + 1.5)))
        if repeat > 1:
            audio = make_sample(audio, repeat, 1.5, Path(tmp) / "sample.wav")
            reference = " ".join([reference] * repeat) if reference else None
        rows = []
        for spec in args.compare.split(","):
            engine, model, compute, *more = spec.split(":")
            argv = [sys.executable, __file__, "--child", "--audio", str(audio), "--engine", engine, "--model", model]
            if more and more[0]:
                argv += ["--batch", more[0]]
            if "nowords" in more[1:]:
                argv.append("--nowords")
            argv += [x for m in more[1:] if re.fullmatch(r"d\d+", m) for x in ("--decoders", m[1:])]
            argv += ["--compute-type", compute, "--threads", str(args.threads), "--beam-size", str(args.beam_size)]
            for g in args.glossary:
                argv += ["--glossary", g]
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{spec}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["spec"] = spec
            r["rtf"] = r["audio"] / r["run"] if r["run"] else float("nan")
            r["wer"], r["deleted"] = wer(reference, r["text"]) if reference else (float("nan"), 0)
            r["loop"] = loops(r["text"])
            rows.append(r)

    print(f"audio: {audio.name if repeat <= 1 else f'{audio.name} x{repeat}'}, {rows[0]['audio']:.1f} s; "
          f"threads {args.threads}, beam {args.beam_size}")  # fmt: skip
    print(f"{'configuration':40} {'load s':>7} {'run s':>7} {'x real':>7} {'vs base':>8} {'CPU s':>7} {'WER':>6} "
          f"{'del':>4} {'RSS MiB':>8}")  # fmt: skip
    base = rows[0]["rtf"] if rows else float("nan")
    for r in rows:
        print(
            f"{r['spec']:40} {r['load']:7.2f} {r['run']:7.2f} {r['rtf']:7.1f} {r['rtf'] / base:7.2f}x "
            f"{r['cpu']:7.1f} {r['wer']:6.3f} {r['deleted']:4d} {r['rss_mib']:8.0f}"
            + (f"  loop {r['loop']}" if r["loop"] else "")
        )
    if len(rows) >= 2:
        print(f"speed ratio {rows[0]['spec']} / {rows[1]['spec']}: {rows[0]['rtf'] / rows[1]['rtf']:.1f}x")


if __name__ == "__main__":
    main()
