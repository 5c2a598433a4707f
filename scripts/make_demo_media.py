#!/usr/bin/env python3
"""Make the demo media committed under ``configs/``: music beds, disclaimer, cover and the raw episode-258 speech.

Needs, at development time only:

* **espeak-ng** (a system package: ``apt-get install espeak-ng``) for the spoken parts, and
* the **ffmpeg binary from imageio-ffmpeg**, reached through :func:`keylime_prod.ffmpeg.binary`, plus Pillow and
  numpy (both project dependencies).

The files this script writes are committed, and the committed files are what the project uses: users and CI never
need espeak-ng and never run this script. Re-run it only to change the demo media, then commit the results.

Usage (from the repository root)::

    python scripts/make_demo_media.py                  # writes into configs/
    python scripts/make_demo_media.py --out-root /tmp/media --only cover,intro

Everything is deterministic where the tools allow it: fixed noise seeds, ffmpeg's ``bitexact`` flags (no encoder
version strings in the files), a fixed Pillow drawing. espeak-ng's output depends on its version (1.51 made the
committed files). Every output is written atomically (temp file beside it, then ``os.replace``) and measured at the
end with ffmpeg's own EBU R128 scanner (ITU-R BS.1770-4 integrated loudness, 4x oversampled true peak).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from a checkout, without `pip install -e`
    sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg, fsutil  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("make_demo_media")

#: Flags that keep encoder/muxer version strings and timestamps out of the files, so re-runs give the same bytes.
BITEXACT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]

MUSIC_RATE = 44100
SPEECH_RATE = 48000  # the raw recordings: 48 kHz, as a field recorder or interface would deliver
MUSIC_LUFS = -18.0  # beds a little under the -16 LUFS target, so the master's levelling has work to do
DISCLAIMER_LUFS = -19.0


# ------------------------------------------------------------------------------------------------------ helpers


def _f(x: float) -> str:
    """A number for an ffmpeg expression: fixed-point (no exponent, no SI suffix surprises)."""
    return f"{x:.6f}"


def midi_hz(note: int) -> float:
    """Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _run(args: Sequence[str], *, input_bytes: bytes | None = None, where: Path | str | None = None) -> bytes:
    return ffmpeg.run(["-v", "error", *args], input_bytes=input_bytes, where=where).stdout


def _decode_mono(src: Path, rate: int, filters: Sequence[str] = ()) -> np.ndarray:
    """Decode ``src`` to float32 mono at ``rate`` (soxr resampler) through the project's ffmpeg wrapper."""
    out = ffmpeg.run(ffmpeg.decode_args(src, sample_rate=rate, channels=1, filters=filters), where=src).stdout
    return np.frombuffer(out, dtype="<f4").astype(np.float32)


def _pcm_in(rate: int, channels: int) -> list[str]:
    return ["-f", "f32le", "-ar", str(rate), "-ac", str(channels), "-i", "-"]


def _write_wav(dest: Path, samples: np.ndarray, rate: int) -> None:
    _run(
        [*_pcm_in(rate, 1), "-c:a", "pcm_f32le", "-f", "wav", "-y", str(dest)],
        input_bytes=samples.astype("<f4").tobytes(),
    )


def _gain_to(src: Path, target_lufs: float, tp_ceiling: float = -1.5) -> float:
    """Gain in dB that brings ``src`` to ``target_lufs``, reduced if it would push the true peak over the ceiling."""
    m = ffmpeg.measure_ebur128(src)
    gain = target_lufs - m.integrated_lufs
    if m.true_peak_dbtp is not None and m.true_peak_dbtp + gain > tp_ceiling:
        gain = tp_ceiling - m.true_peak_dbtp
    return gain


def _encode(dest: Path, args: Sequence[str], fmt: str, *, input_bytes: bytes | None = None) -> Path:
    """Run ffmpeg with ``args`` writing format ``fmt`` to a temp file beside ``dest``, then move it into place."""
    with fsutil.atomic_path(dest) as tmp:
        _run([*args, *BITEXACT, "-f", fmt, "-y", str(tmp)], input_bytes=input_bytes, where=dest)
    dest.chmod(0o644)  # mkstemp made it 0600; these are shared media files
    return dest


# ---------------------------------------------------------------------------------------------------- music beds


@dataclass(frozen=True)
class Note:
    """One note of a music bed: when, how long it rings, pitch, level, stereo position and timbre."""

    start: float
    dur: float
    midi: int
    amp: float
    pan: float = 0.0  # -1 left ... +1 right
    kind: str = "pluck"  # pluck | pad | bass | bell


def _note_expr(n: Note, channel: int) -> str:
    """ffmpeg expression for one note on one channel, gated with ``if(between())`` so it costs nothing outside.

    ``if`` evaluates only the branch taken, so a bed of a hundred notes evaluates a handful of sines per sample.
    """
    # Constant-power pan; a tiny detune between the channels widens pads and bells (a chorus without a filter).
    angle = (n.pan + 1.0) * math.pi / 4.0
    gain = n.amp * (math.cos(angle) if channel == 0 else math.sin(angle))
    detune = 1.0 + (0.0012 if channel else -0.0012) * (n.kind in ("pad", "bell"))
    w = 2.0 * math.pi * midi_hz(n.midi) * detune
    x = f"(t-{_f(n.start)})"
    end = n.start + n.dur
    # Each envelope reaches zero at the note's end, so gating never clicks.
    if n.kind == "pad":
        att = min(0.6, n.dur / 3)
        env = f"min(1,{x}/{_f(att)})*min(1,({_f(end)}-t)/{_f(att)})"
        tone = f"(sin({_f(w)}*{x})+0.22*sin({_f(2 * w)}*{x})+0.08*sin({_f(3 * w)}*{x}))"
    elif n.kind == "bass":
        env = f"min(1,{x}/0.012)*exp(-2.4*{x})*({_f(end)}-t)/{_f(n.dur)}"
        tone = f"(sin({_f(w)}*{x})+0.18*sin({_f(2 * w)}*{x}))"
    elif n.kind == "bell":  # music-box like: a bright 4th partial that dies fast
        env = f"min(1,{x}/0.003)*exp(-2.2*{x})*({_f(end)}-t)/{_f(n.dur)}"
        tone = f"(sin({_f(w)}*{x})+0.3*exp(-7*{x})*sin({_f(4 * w)}*{x})+0.12*sin({_f(2 * w)}*{x}))"
    else:  # soft plucked string
        env = f"min(1,{x}/0.005)*exp(-3.4*{x})*({_f(end)}-t)/{_f(n.dur)}"
        tone = f"(sin({_f(w)}*{x})+0.35*exp(-6*{x})*sin({_f(2 * w)}*{x})+0.1*exp(-9*{x})*sin({_f(3 * w)}*{x}))"
    return f"if(between(t,{_f(n.start)},{_f(end)}),{_f(gain)}*{env}*{tone},0)"


def _chord_bed(
    chords: Sequence[tuple[int, ...]],
    *,
    bar: float,
    steps_per_bar: int,
    pattern: Sequence[int],
    bass_beats: Sequence[float],
    kind: str,
    ring: float,
) -> list[Note]:
    """Pad + arpeggio + bass over a chord progression (one chord per bar; chord = root-position MIDI notes)."""
    notes: list[Note] = []
    step = bar / steps_per_bar
    for i, chord in enumerate(chords):
        t0 = i * bar
        for m in chord:  # pad, overlapping the next bar a little for legato chord changes
            notes.append(Note(t0, bar + 0.5, m, 0.055, 0.0, "pad"))
        tones = [*chord, chord[0] + 12]
        for s in range(steps_per_bar):  # arpeggio an octave up, alternating slightly left and right
            m = tones[pattern[s % len(pattern)]] + 12
            notes.append(Note(t0 + s * step, ring, m, 0.10 if s % 2 == 0 else 0.075, -0.35 if s % 2 else 0.35, kind))
        for b in bass_beats:  # the gentle pulse
            notes.append(Note(t0 + b * bar, bar * 0.5, chord[0] - 12 - (12 if chord[0] > 57 else 0), 0.12, 0.0, "bass"))
    return notes


def intro_notes() -> list[Note]:
    """Intro: D major, 96 bpm 4/4, I-vi-IV-V-I, plucked eighth-note arpeggios over a soft pad."""
    d, bm, g, a = (62, 66, 69), (59, 62, 66), (55, 59, 62), (57, 61, 64)
    return _chord_bed(
        [d, bm, g, a, d, d],
        bar=2.5,
        steps_per_bar=8,
        pattern=[0, 1, 2, 3, 2, 1, 2, 1],
        bass_beats=[0.0, 0.5],
        kind="pluck",
        ring=1.1,
    )


def outro_notes() -> list[Note]:
    """Outro: F major, 80 bpm 3/4 waltz, I-vi-ii-V, music-box arpeggios, then a rolled F chord that rings out."""
    f, dm, gm, c = (65, 69, 72), (62, 65, 69), (67, 70, 74), (60, 64, 67)
    bar = 2.25
    notes = _chord_bed(
        [f, dm, gm, c],
        bar=bar,
        steps_per_bar=6,
        pattern=[0, 1, 2, 3, 2, 1],
        bass_beats=[0.0],
        kind="bell",
        ring=1.4,
    )
    t_end = 4 * bar
    for k, m in enumerate((65, 69, 72, 77, 81)):  # rolled final chord, 60 ms apart
        notes.append(Note(t_end + 0.06 * k, 5.5, m, 0.08, -0.4 + 0.2 * k, "bell"))
    for m in (65, 69, 72):
        notes.append(Note(t_end, 6.0, m, 0.05, 0.0, "pad"))
    notes.append(Note(t_end, 3.0, 41, 0.12, 0.0, "bass"))
    return notes


def music_graph(notes: Sequence[Note], duration: float, fade_in: float, fade_out: float) -> str:
    """lavfi graph: the notes as one stereo ``aevalsrc``, a little room (``aecho``), a gentle low-pass and fades."""
    left = "+".join(_note_expr(n, 0) for n in notes)
    right = "+".join(_note_expr(n, 1) for n in notes)
    return (
        f"aevalsrc=exprs='{left}|{right}':s={MUSIC_RATE}:d={_f(duration)},"
        # aecho appends its decaying tail at EOF: trim back to the nominal length before the fades.
        f"aecho=0.85:0.55:83|131|197:0.22|0.16|0.1,atrim=end={_f(duration)},"
        "lowpass=f=9000,highpass=f=35,"
        f"afade=t=in:d={_f(fade_in)}:curve=qsin,"
        f"afade=t=out:st={_f(duration - fade_out)}:d={_f(fade_out)}:curve=qsin"
    )


def make_music(dest: Path, notes: Sequence[Note], codec_args: Sequence[str], fmt: str, work: Path) -> Path:
    """Render a bed to float WAV, measure it, then encode it once at the gain that puts it at ``MUSIC_LUFS``."""
    raw = work / f"{dest.stem}.wav"
    graph = music_graph(notes, duration=15.0, fade_in=1.2, fade_out=3.0)
    _run(["-f", "lavfi", "-i", graph, "-c:a", "pcm_f32le", "-f", "wav", "-y", str(raw)], where=dest)
    gain = _gain_to(raw, MUSIC_LUFS)
    args = ["-i", str(raw), "-af", f"volume={gain:.3f}dB", "-ac", "2", "-ar", str(MUSIC_RATE), *codec_args]
    return _encode(dest, args, fmt)


# ---------------------------------------------------------------------------------------------------- speech


def espeak_bin() -> str:
    """Path of espeak-ng, or exit with the install hint (it is needed only to regenerate the speech)."""
    exe = shutil.which("espeak-ng")
    if not exe:
        raise SystemExit("espeak-ng not found: install it (apt-get install espeak-ng) to regenerate the speech files")
    return exe


def espeak(text: str, voice: str, dest: Path, *, wpm: int, pitch: int) -> Path:
    """Synthesize ``text`` to a 22.05 kHz 16-bit mono WAV (espeak-ng's native output)."""
    argv = [espeak_bin(), "-v", voice, "-s", str(wpm), "-p", str(pitch), "-w", str(dest), "--stdin"]
    log.debug("espeak-ng: %s", subprocess.list2cmdline(argv))
    proc = subprocess.run(argv, input=text.encode("utf-8"), capture_output=True, check=False)
    if proc.returncode != 0 or not dest.is_file():
        raise SystemExit(f"espeak-ng failed for voice {voice}: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return dest


def speakable(text: str) -> str:
    """Respell what espeak-ng mispronounces and flatten newlines.

    espeak-ng reads "KeyLIME" letter by letter, runs "postgraduate" together (Whisper tiny.en then hears "post
    Renate") and says "Klasen" as "Clayson"; "Klahsen" is the German name's own sound. With the show glossary as
    prompt, Whisper writes it "Klasen" again. "Varpio" is fine as written.
    """
    text = re.sub(r"\bKeyLIME\b", "Key Lime", text)
    text = re.sub(r"\bKlasen\b", "Klahsen", text)
    text = re.sub(r"\b([Pp])ostgraduate\b", r"\1ost graduate", text)
    return " ".join(text.split())


_MONTHS = {
    "Jan": "January", "Feb": "February", "Mar": "March", "Apr": "April", "May": "May", "Jun": "June",
    "Jul": "July", "Aug": "August", "Sep": "September", "Oct": "October", "Nov": "November", "Dec": "December",
}  # fmt: skip


def spoken_citation(paper: dict[str, object]) -> str:
    """The paper's citation as a host would read it: authors, title, journal, issue and pages in words."""
    authors = [a.strip().split()[0] for a in str(paper["authors"]).split(",") if a.strip()]
    who = " and ".join(authors) if len(authors) <= 2 else f"{authors[0]} and colleagues"
    text = f"Today's paper is by {who}: {paper['title']}. It was published in {paper['journal']}"
    m = re.search(r"(\d{4}) (\w{3})\w*;(\d+)\((\d+)\):(\d+)-(\d+)", str(paper.get("citation", "")))
    if m:
        year, month, vol, issue, p1, p2 = m.groups()
        text += f", {_MONTHS.get(month, month)} {year}, volume {vol}, issue {issue}, pages {p1} to {p2}."
    else:
        text += f", {paper['year']}."
    return text


@dataclass(frozen=True)
class Section:
    """One chapter's worth of speech inside a raw part; ``start`` is where it should begin after the speech onset."""

    title: str
    text: str
    start: float | None = None


@dataclass(frozen=True)
class Voice:
    """How a host is synthesized and how hot the recording was."""

    espeak_voice: str
    wpm: int
    pitch: int
    target_lufs: float  # uneven levels between parts, as in real raw recordings
    noise_dbfs: float  # RMS of the room noise
    lead_s: float  # room noise before the first word
    tail_s: float  # room noise after the last word
    seed: int
    filters: tuple[str, ...] = ()  # after ROOM: e.g. the compressor of a hot recorder


def episode_sections(ep: dict[str, object]) -> tuple[list[Section], list[Section]]:
    """Texts of the two raw parts, built from the episode config (summary, key points, paper citation).

    Chapters in episode-258.toml start at 00:00, 00:40 and 01:30 of the body: part 1 holds the first two, part 2
    the third, and the second section of part 1 is placed to start 40 s after the first word.
    """
    paper = ep["paper"]
    assert isinstance(paper, dict)
    number = ep["number"]
    welcome = Section(
        "Welcome and the paper",
        speakable(
            f"Welcome to KeyLIME, Key Literature in Medical Education. I'm Lara Varpio. "
            f"This is episode {number}: {ep['title']}. {spoken_citation(paper)} "
            "It asks a question every supervisor knows."
        ),
    )
    why = Section(
        "Why allow failure?",
        speakable(
            f"{ep['summary']} Why would anyone let a resident fail? In postgraduate medical education we usually "
            "step in early, because patients come first. But a resident who is always rescued rarely learns to "
            "notice a mistake, recover from it, or ask for help in time. The authors argue that a failure which "
            "is expected, supervised and debriefed can teach what success cannot. That tension runs through the "
            "paper."
        ),
        start=40.0,
    )
    key_points = ep["key_points"]
    assert isinstance(key_points, list)
    points = " ".join(str(p) for p in key_points)
    found = Section(
        "What the review found",
        speakable(
            "Thanks, Lara. So here is what Klasen and Lingard found in their narrative review. "
            f"{points} For programs in postgraduate medical education, the message is simple: plan for failure, "
            "make it safe, and talk about it afterwards. Two practical points for supervisors: agree on the limits "
            "with the resident before the case starts, and debrief the same day, while the details are fresh. We "
            "would love to hear how your program handles this. That's KeyLIME for this week."
        ),
    )
    return [welcome, why], [found]


#: Part 1, "Lara": a female variant of the US voice, recorded quietly (about -24 LUFS).
LARA = Voice("en-us+f3", wpm=152, pitch=55, target_lufs=-24.0, noise_dbfs=-64.0, lead_s=2.2, tail_s=2.0, seed=2581)
#: Part 2, "Jason": a male variant, lower pitch, recorded hot (about -17 LUFS) in a slightly noisier room.
JASON = Voice(
    "en-us+m3",
    wpm=155,
    pitch=40,
    target_lufs=-17.0,
    noise_dbfs=-60.0,
    lead_s=1.6,
    tail_s=2.6,
    seed=2582,
    # espeak-ng's peaks sit ~20 dB over its loudness: without a recorder-style compressor -17 LUFS would clip.
    filters=("acompressor=threshold=0.1:ratio=4:attack=5:release=80:knee=4",),
)

#: Voice shaping: a small room (two early reflections) and a rumble filter, so the synthetic voice sounds recorded.
ROOM = ["highpass=f=70", "aecho=0.9:0.9:11|23:0.18|0.1"]


def room_noise(seconds: float, rms_dbfs: float, seed: int, work: Path) -> np.ndarray:
    """Pink room noise at ``rms_dbfs`` RMS, darkened like air handling (ffmpeg ``anoisesrc``, fixed seed)."""
    src = f"anoisesrc=d={_f(seconds)}:c=pink:r={SPEECH_RATE}:a=0.5:s={seed},lowpass=f=2000,highpass=f=40"
    raw = work / f"noise-{seed}.wav"
    _run(["-f", "lavfi", "-i", src, "-c:a", "pcm_f32le", "-f", "wav", "-y", str(raw)])
    noise = _decode_mono(raw, SPEECH_RATE)
    rms = float(np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
    return (noise * (10 ** (rms_dbfs / 20) / rms)).astype(np.float32)


def _trim(x: np.ndarray, threshold_db: float = -55.0) -> np.ndarray:
    """Drop espeak-ng's own leading/trailing digital silence, so our lead-in/tail lengths are exact."""
    idx = np.flatnonzero(np.abs(x) > 10 ** (threshold_db / 20))
    return x[idx[0] : idx[-1] + 1] if idx.size else x


@dataclass(frozen=True)
class PartInfo:
    """Where the speech lies in a generated raw part (seconds from the file start)."""

    speech_start: float
    speech_end: float
    section_starts: tuple[tuple[str, float], ...]
    gain_db: float


def make_part(
    dest: Path, sections: Sequence[Section], voice: Voice, codec_args: Sequence[str], fmt: str, work: Path
) -> PartInfo:
    """Synthesize ``sections`` with ``voice`` and write one raw part: lead-in, speech, tail, room noise throughout."""
    pieces: list[np.ndarray] = [np.zeros(int(voice.lead_s * SPEECH_RATE), np.float32)]
    pos = voice.lead_s
    starts: list[tuple[str, float]] = []
    for i, sec in enumerate(sections):
        wav = espeak(sec.text, voice.espeak_voice, work / f"{dest.stem}-{i}.wav", wpm=voice.wpm, pitch=voice.pitch)
        speech = _trim(_decode_mono(wav, SPEECH_RATE, [*ROOM, *voice.filters]))
        if i:
            # A natural breath between sections; longer if the section must start at its chapter time.
            gap = 1.2
            if sec.start is not None:
                gap = max(gap, voice.lead_s + sec.start - pos)
            pieces.append(np.zeros(round(gap * SPEECH_RATE), np.float32))
            pos += gap
        starts.append((sec.title, pos))
        pieces.append(speech)
        pos += len(speech) / SPEECH_RATE
    speech_end = pos
    pieces.append(np.zeros(int(voice.tail_s * SPEECH_RATE), np.float32))
    clean = np.concatenate(pieces)

    # Level the clean speech first (BS.1770 gating ignores the pauses), then add the room under it.
    clean_wav = work / f"{dest.stem}-clean.wav"
    _write_wav(clean_wav, clean, SPEECH_RATE)
    gain = _gain_to(clean_wav, voice.target_lufs, tp_ceiling=-1.0)
    noise = room_noise(len(clean) / SPEECH_RATE + 0.1, voice.noise_dbfs, voice.seed, work)[: len(clean)]
    mixed = clean * np.float32(10 ** (gain / 20)) + noise
    _encode(dest, [*_pcm_in(SPEECH_RATE, 1), *codec_args], fmt, input_bytes=mixed.astype("<f4").tobytes())
    return PartInfo(voice.lead_s, speech_end, tuple(starts), gain)


def make_disclaimer(dest: Path, text: str, work: Path) -> Path:
    """The show's disclaimer read by espeak-ng: 22.05 kHz mono 16-bit FLAC with short breaths either side."""
    wav = espeak(speakable(text), "en-us", work / "disclaimer.wav", wpm=160, pitch=45)
    # A broadcast-style compressor, as a produced announcement would have: raw espeak-ng peaks ~20 dB over its
    # loudness, which would cap it near -23 LUFS under a -1.5 dBTP ceiling.
    speech = _trim(_decode_mono(wav, 22050, ["highpass=f=70", "acompressor=threshold=0.1:ratio=4:attack=5:release=80"]))
    pad = np.zeros(int(0.3 * 22050), np.float32)
    clean_wav = work / "disclaimer-clean.wav"
    _write_wav(clean_wav, np.concatenate([pad, speech, pad]), 22050)
    gain = _gain_to(clean_wav, DISCLAIMER_LUFS)
    return _encode(
        dest,
        ["-i", str(clean_wav), "-af", f"volume={gain:.3f}dB", "-ar", "22050", "-ac", "1",
         "-c:a", "flac", "-sample_fmt", "s16", "-compression_level", "12"],
        "flac",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------- cover


def _font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font if the machine has one (DejaVu, Liberation ...), else Pillow's scalable default."""
    wanted = ["DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "FreeSansBold.ttf"] if bold else [
        "DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf"]  # fmt: skip
    roots = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path("/Library/Fonts"), Path("C:/Windows/Fonts")]
    for name in wanted:
        for root in roots:
            if root.is_dir():
                for hit in sorted(root.rglob(name)):
                    return ImageFont.truetype(str(hit), size)
    return ImageFont.load_default(size=size)


def make_cover(dest: Path, title: str, max_bytes: int = 1_000_000) -> tuple[Path, int]:
    """3000x3000 RGB baseline JPEG (Apple: square, 1400-3000 px, RGB, no alpha): a lime slice and the title."""
    size = 3000
    # Vertical gradient, deep green to dark lime.
    top, bottom = np.array([12, 48, 34], np.float32), np.array([44, 104, 30], np.float32)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
    rows = (top + (bottom - top) * ramp).astype(np.uint8)  # (size, 3)
    img = Image.fromarray(np.repeat(rows[:, None, :], size, axis=1), "RGB")
    draw = ImageDraw.Draw(img)

    # A lime cross-section: rind, pith, ten segments of flesh, a pale centre.
    cx, cy, r = size // 2, 1270, 880
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(64, 140, 28))
    draw.ellipse((cx - r + 45, cy - r + 45, cx + r - 45, cy + r - 45), fill=(236, 246, 200))
    inner = r - 110
    segs = 10
    for k in range(segs):
        a0 = 360 / segs * k - 90 + 2.2
        a1 = 360 / segs * (k + 1) - 90 - 2.2
        draw.pieslice((cx - inner, cy - inner, cx + inner, cy + inner), a0, a1, fill=(166, 214, 54))
        draw.pieslice((cx - inner + 120, cy - inner + 120, cx + inner - 120, cy + inner - 120), a0 + 1, a1 - 1,
                      fill=(190, 230, 80))  # fmt: skip
    draw.ellipse((cx - 70, cy - 70, cx + 70, cy + 70), fill=(236, 246, 200))
    # Two leaves above the slice.
    draw.ellipse((cx + 430, cy - 1010, cx + 900, cy - 760), fill=(28, 92, 30))
    draw.ellipse((cx + 610, cy - 1080, cx + 1000, cy - 860), fill=(40, 118, 34))

    # Title and subtitle, centred below the slice.
    def centred(text: str, y: int, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, fill: tuple[int, ...]) -> None:
        box = draw.textbbox((0, 0), text, font=font)
        draw.text(((size - (box[2] - box[0])) / 2 - box[0], y), text, font=font, fill=fill)

    centred(title, 2190, _font(430), (214, 246, 110))
    centred("Key Literature in Medical Education", 2710, _font(128, bold=False), (236, 246, 200))

    quality = 90
    while True:
        with fsutil.atomic_path(dest) as tmp:
            # Baseline (not progressive), 4:2:0, no EXIF: what every podcast directory accepts.
            img.save(tmp, format="JPEG", quality=quality, optimize=True, progressive=False, subsampling=2)
        dest.chmod(0o644)
        if dest.stat().st_size <= max_bytes or quality <= 50:
            return dest, quality
        quality -= 5


# ---------------------------------------------------------------------------------------------------- main


def _load_toml(path: Path) -> dict[str, object]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def _measure_table(paths: Sequence[Path], root: Path) -> None:
    print(f"{'file':40} {'duration':>9} {'LUFS':>7} {'dBTP':>6} {'size':>10}")
    for p in paths:
        size = p.stat().st_size
        if p.suffix == ".jpg":
            print(f"{p.relative_to(root).as_posix():40} {'-':>9} {'-':>7} {'-':>6} {size:>10,}")
            continue
        info = ffmpeg.probe(p)
        m = ffmpeg.measure_ebur128(p)
        tp = f"{m.true_peak_dbtp:.1f}" if m.true_peak_dbtp is not None else "-"
        dur = f"{info.duration:.2f}s" if info.duration is not None else "?"
        print(f"{p.relative_to(root).as_posix():40} {dur:>9} {m.integrated_lufs:>7.1f} {tp:>6} {size:>10,}")
    total = sum(p.stat().st_size for p in paths)
    print(f"{'total':40} {'':>9} {'':>7} {'':>6} {total:>10,}")


def _report_parts(p1: Path, i1: PartInfo, i2: PartInfo) -> None:
    """Print where the speech and the chapter sections lie, and how long the body will be."""
    for name, info in (("part 1", i1), ("part 2", i2)):
        secs = ", ".join(f"{t!r} at {s:.2f}s" for t, s in info.section_starts)
        print(f"{name}: speech {info.speech_start:.2f}-{info.speech_end:.2f}s, gain {info.gain_db:+.1f} dB; {secs}")
    sp1, sp2 = i1.speech_end - i1.speech_start, i2.speech_end - i2.speech_start
    gap = (ffmpeg.probe(p1).duration or 0.0) - i1.speech_end + i2.speech_start
    print(f"speech: part 1 {sp1:.2f}s + part 2 {sp2:.2f}s = {sp1 + sp2:.2f}s; silence between parts {gap:.2f}s")
    print(f"first word to last word: {sp1 + gap + sp2:.2f}s with the silence between the parts kept")
    print(f"part 2 starts {sp1 + gap:.2f}s after the first word (silence kept), {sp1:.2f}s if each part is trimmed")


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the selected media under ``--out-root`` and print their measurements."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--out-root", type=Path, default=REPO / "configs", help="where assets/ and raw/ go (configs/)")
    ap.add_argument("--configs", type=Path, default=REPO / "configs", help="where show.toml and episodes/ are read")
    ap.add_argument("--only", default="", help="comma list of: intro,outro,disclaimer,cover,raw (default: all)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")

    only = {s.strip() for s in args.only.split(",") if s.strip()} or {"intro", "outro", "disclaimer", "cover", "raw"}
    show = _load_toml(args.configs / "show.toml")["show"]
    ep = _load_toml(args.configs / "episodes" / "episode-258.toml")
    assert isinstance(show, dict)
    out: Path = args.out_root
    assets, raw = out / "assets", out / "raw" / "episode-258"
    made: list[Path] = []

    with tempfile.TemporaryDirectory(prefix="keylime-media-") as tmp:
        work = Path(tmp)
        if "intro" in only:
            log.info("making intro ...")
            mp3 = ["-c:a", "libmp3lame", "-b:a", "128k", "-id3v2_version", "0", "-write_xing", "1"]
            made.append(make_music(assets / "intro.mp3", intro_notes(), mp3, "mp3", work))
        if "outro" in only:
            log.info("making outro ...")
            vorbis = ["-c:a", "libvorbis", "-q:a", "4"]
            made.append(make_music(assets / "outro.ogg", outro_notes(), vorbis, "ogg", work))
        if "disclaimer" in only:
            log.info("making disclaimer ...")
            made.append(make_disclaimer(assets / "disclaimer.flac", str(show["disclaimer_text"]), work))
        if "cover" in only:
            log.info("making cover ...")
            path, quality = make_cover(assets / "cover.jpg", str(show["title"]))
            log.info("cover: JPEG quality %d", quality)
            made.append(path)
        if "raw" in only:
            part1, part2 = episode_sections(ep)
            log.info("making raw part 1 ...")
            p1 = raw / "part-1-lara.flac"
            flac24 = ["-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24", "-compression_level", "12"]
            i1 = make_part(p1, part1, LARA, flac24, "flac", work)
            log.info("making raw part 2 ...")
            p2 = raw / "part-2-jason.m4a"
            i2 = make_part(p2, part2, JASON, ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"], "ipod", work)
            made += [p1, p2]
            _report_parts(p1, i1, i2)

    sys.stdout.flush()
    _measure_table(made, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
