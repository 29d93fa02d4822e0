"""OnsetStrength: streaming equivalence, framing, peaks at onsets, the low band, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from featherbeat.analysis.features.onset import (
    BASS_N_FFT,
    HOP,
    BassSpectrum,
    OnsetStrength,
    onset_strength,
)
from featherbeat.testing import signals

SR = signals.SR


def _stream(y: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, np.ndarray, float]:
    det = OnsetStrength(SR)
    i, k = 0, 0
    while i < y.size:
        n = sizes[k % len(sizes)]
        det.push(y[i : i + n])
        i, k = i + n, k + 1
    result = det.finish()
    return result.onset, result.low, result.rate


def test_block_size_does_not_change_the_result():
    y = signals.click_track(120.0, 6.0).audio
    whole, whole_low, rate = _stream(y, [y.size])
    for sizes in ([1], [7, 1000, 3], [4096], [HOP - 1, HOP + 1]):
        if sizes == [1]:
            y_short = y[: SR // 2]  # one sample at a time: keep it short
            ref, _, _ = _stream(y_short, [y_short.size])
            got, _, _ = _stream(y_short, sizes)
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
            continue
        got, low, r = _stream(y, sizes)
        assert r == rate
        np.testing.assert_allclose(got, whole, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(low, whole_low, rtol=1e-6, atol=1e-6)


def test_frame_count_and_rate():
    for n in (0, 1, HOP - 1, HOP, HOP + 1, 22050):
        curve, low, rate = onset_strength(np.zeros(n, dtype=np.float32))
        assert curve.shape == (-(-n // HOP),) and low.shape == curve.shape
        assert rate == pytest.approx(SR / HOP)
    _, _, rate44 = onset_strength(np.zeros(44100, dtype=np.float32), 44100)
    assert rate44 == pytest.approx(86.13, abs=0.01)  # window and hop scale with the rate


def test_peaks_at_clicks_and_silence_is_zero():
    clicks = signals.click_track(100.0, 8.0, offset=0.3)
    y = np.concatenate([signals.silence(1.0), clicks.audio])
    curve, _, rate = onset_strength(y)
    assert np.all(curve[: int(0.9 * rate)] == 0.0)
    peaks = [
        i
        for i in range(1, curve.size - 1)
        if curve[i] > curve[i - 1] and curve[i] >= curve[i + 1] and curve[i] > 0.3 * curve.max()
    ]
    times = np.array(peaks) / rate
    truth = clicks.beats + 1.0
    assert len(peaks) == truth.size
    assert np.max(np.abs(times - truth)) < 1.5 / rate


def test_low_band_hears_the_bass_not_the_hihat():
    t = np.arange(int(0.05 * SR)) / SR
    env = np.exp(-t * 60.0)
    y = np.zeros(4 * SR, dtype=np.float32)
    y[SR : SR + t.size] += (0.8 * np.sin(2 * np.pi * 60 * t) * env).astype(np.float32)  # kick
    y[3 * SR : 3 * SR + t.size] += (0.8 * np.sin(2 * np.pi * 6000 * t) * env).astype(np.float32)
    curve, low, rate = onset_strength(y)
    k, h = int(rate), int(3 * rate)
    assert low[k - 2 : k + 3].max() > 0.5 * curve[k - 2 : k + 3].max()
    assert low[h - 2 : h + 3].max() < 0.05 * curve[h - 2 : h + 3].max()


def test_nan_and_inf_do_not_poison_the_curve():
    y = signals.click_track(120.0, 4.0).audio.copy()
    y[1000:1100] = np.nan
    y[5000] = np.inf
    curve, low, _ = onset_strength(y)
    assert np.all(np.isfinite(curve)) and np.all(np.isfinite(low)) and curve.max() > 0


def test_bad_use_is_refused():
    with pytest.raises(ValueError, match="sample_rate"):
        OnsetStrength(0)
    det = OnsetStrength()
    det.push(np.zeros(1000, dtype=np.float32))
    first = det.finish()
    with pytest.raises(RuntimeError):
        det.push(np.zeros(10, dtype=np.float32))
    assert det.finish() is first and first.onset.shape == (4,)  # finish() twice: same result


def test_bass_spectrum_hears_the_bass_note_and_nothing_above():
    """The decimated bass spectrum: its strongest band follows the bass note, the result does not
    depend on block sizes, one frame per hop, and a tone that would alias onto the bass band
    after decimation (new rate - 150 Hz) is filtered out."""
    t = np.arange(10 * SR) / SR
    y = (0.5 * np.sin(2 * np.pi * np.where(t < 5, 110.0, 55.0) * t)).astype(np.float32)
    det = OnsetStrength(SR)
    for i in range(0, y.size, 3000):
        det.push(y[i : i + 3000])
    result = det.finish()
    bass, rate = result.bass, result.bass_rate
    assert bass.shape == (int(np.ceil(10.0 * rate)), 21)
    whole = BassSpectrum(SR)
    whole.push(y)
    np.testing.assert_allclose(whole.finish(), bass, rtol=1e-5, atol=1e-5)
    lo = np.fft.rfftfreq(BASS_N_FFT, 8 / SR)
    edges = lo[(lo >= 35.0) & (lo <= 260.0)][0::2]  # lower edge of each 2-bin band
    assert 100.0 <= edges[int(np.argmax(bass[int(2 * rate)]))] <= 110.0
    assert 45.0 <= edges[int(np.argmax(bass[int(8 * rate)]))] <= 55.0

    def level(freq: float) -> float:
        b = BassSpectrum(SR)
        b.push((0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32))
        return float(b.finish()[10:-10].max())

    assert level(SR / 8 - 150.0) < 10 ** (-30 / 20) * level(150.0)
