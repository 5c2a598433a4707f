"""Our BS.1770 meter and true-peak limiter on signals whose loudness is known analytically, and against ffmpeg."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keylime_prod import ffmpeg
from keylime_prod.audio import loudness

SR = 48000


def tone(freq: float, db: float, seconds: float, channels: int = 2, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    x = (10 ** (db / 20) * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


def meter(x: np.ndarray, block: int = 4800) -> loudness.Meter:
    m = loudness.Meter(SR, x.shape[1])
    for i in range(0, len(x), block):
        m.add(x[i : i + block])
    return m


def test_1khz_sine_reference_level() -> None:
    """EBU Tech 3341: a 1 kHz sine at -20 dBFS in both channels reads -20 LUFS (K-weighting is ~0 dB at 1 kHz)."""
    m = meter(tone(997, -20.0, 10.0))
    assert m.measure().integrated_lufs == pytest.approx(-20.0, abs=0.05)
    assert m.measure().true_peak_dbtp == pytest.approx(-20.0, abs=0.05)


def test_relative_gate_ignores_quiet_passages() -> None:
    """-20 LUFS for 10 s then -50 for 10 s: the quiet part is more than 10 LU down and is gated away."""
    x = np.concatenate([tone(997, -20, 10), tone(997, -50, 10)])
    assert meter(x).measure().integrated_lufs == pytest.approx(-20.0, abs=0.1)


def test_lra_of_two_levels() -> None:
    """EBU Tech 3342 case: 20 s at -20 then 20 s at -30 LUFS gives an LRA of about 10 LU."""
    x = np.concatenate([tone(997, -20, 20), tone(997, -30, 20)])
    assert meter(x).measure().lra_lu == pytest.approx(10.0, abs=0.2)


def test_true_peak_finds_intersample_overs() -> None:
    """A sine at fs/4 sampled 45 degrees off its peaks: the samples read -3 dB below the real peak."""
    x = tone(SR / 4, -6.0, 1.0, channels=1, phase=np.pi / 4)
    sample_peak = loudness.lin_to_db(float(np.abs(x).max()))
    tp = loudness.lin_to_db(loudness.true_peak(x))
    assert sample_peak == pytest.approx(-9.0, abs=0.1)
    assert tp == pytest.approx(-6.0, abs=0.25)


def test_meter_agrees_with_ffmpeg(jfk: Path) -> None:
    raw = ffmpeg.run(ffmpeg.decode_args(jfk, sample_rate=16000, channels=1)).stdout
    x = np.frombuffer(raw, dtype="<f4").reshape(-1, 1)
    m = loudness.Meter(16000, 1)
    m.add(x)
    ours = m.measure()
    theirs = ffmpeg.measure_ebur128(jfk)
    assert ours.integrated_lufs == pytest.approx(theirs.integrated_lufs, abs=0.1)
    assert ours.true_peak_dbtp == pytest.approx(theirs.true_peak_dbtp, abs=0.2)


def test_limiter_holds_the_ceiling_and_keeps_length() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((SR * 3, 2)) * 0.25).astype(np.float32)
    x[SR : SR + 50] *= 4.0  # a loud burst
    lim = loudness.TruePeakLimiter(SR, 2, -1.5)
    out = np.concatenate([lim.push(x[i : i + 7000]) for i in range(0, len(x), 7000)] + [lim.flush()])
    assert out.shape == x.shape
    assert loudness.lin_to_db(loudness.true_peak(out)) <= -1.5 + 0.05
    assert lim.reduction_db < -6.0
    # Quiet material passes untouched.
    q = x * np.float32(0.05)
    lim2 = loudness.TruePeakLimiter(SR, 2, -1.5)
    out2 = np.concatenate([lim2.push(q), lim2.flush()])
    assert np.array_equal(out2, q) and lim2.limited_frames == 0


def test_sound_bounds_ignores_single_clicks() -> None:
    p = np.full(300, 1e-8)
    p[20] = 1.0  # one 10 ms click in the room noise
    p[100:200] = 1e-2
    assert loudness.sound_bounds(p, -50.0) == (100, 200)
    assert loudness.sound_bounds(np.full(50, 1e-9), -50.0) is None


def test_dither_is_tpdf_and_bounded() -> None:
    rng = np.random.default_rng(1)
    x = np.zeros((100000, 1), np.float32)
    q = loudness.tpdf_dither_to_s16(x, rng)
    assert set(np.unique(q)) <= {-1, 0, 1}
    assert 0.2 < np.mean(q != 0) < 0.3  # TPDF of +-1 LSB rounds to non-zero a quarter of the time
    full = loudness.tpdf_dither_to_s16(np.full((10, 1), 1.5, np.float32), rng)
    assert full.max() == 32767
