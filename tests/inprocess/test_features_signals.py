"""The test-signal generators everyone relies on: their truth matches their audio."""

from __future__ import annotations

import numpy as np
import pytest

from featherbeat.testing import signals

SR = signals.SR


def _onsets(y: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Sample times where the signal first rises above ``threshold`` after 20 ms of quiet."""
    loud = np.flatnonzero(np.abs(y) > threshold)
    if loud.size == 0:
        return np.zeros(0)
    starts = loud[np.concatenate([[True], np.diff(loud) > int(0.02 * SR)])]
    return starts / SR


def test_click_track_truth():
    c = signals.click_track(90.0, 10.0, 3)
    assert c.audio.dtype == np.float32 and c.audio.shape == (10 * SR,)
    assert np.allclose(np.diff(c.beats), 60 / 90)
    assert c.positions[:6].tolist() == [1, 2, 3, 1, 2, 3]
    assert np.allclose(_onsets(c.audio), c.beats, atol=0.002)
    # Downbeats are louder than the other beats.
    peak = [np.max(np.abs(c.audio[int(t * SR) : int(t * SR) + 300])) for t in c.beats[:3]]
    assert peak[0] > 1.5 * peak[1]


def test_swing_moves_the_off_beats_to_the_triplet():
    c = signals.click_track(120.0, 4.0, 4, subdivide=True, swing=1.0)
    onsets = _onsets(c.audio, 0.02)
    off = onsets[~np.isclose(onsets[:, None], c.beats[None, :], atol=0.002).any(axis=1)]
    assert np.allclose((off[:4] - c.beats[:4]) / 0.5, 2 / 3, atol=0.01)


def test_tempo_ramp_truth():
    c = signals.tempo_ramp(100.0, 140.0, 30.0)
    bpm = 60 / np.diff(c.beats)
    assert bpm[0] == pytest.approx(100, rel=0.02) and bpm[-1] == pytest.approx(140, rel=0.03)
    assert np.all(np.diff(bpm) > 0)
    assert np.allclose(_onsets(c.audio), c.beats, atol=0.002)


def test_tones_chords_noise_silence():
    y = signals.tone(440.0, 1.0)
    spec = np.abs(np.fft.rfft(y))
    assert np.argmax(spec) * SR / y.shape[0] == pytest.approx(440, abs=1)
    assert signals.midi_to_hz(69) == 440.0 and signals.NOTE_NAMES[60 % 12] == "C"
    ch = signals.chord([60, 64, 67], 1.0)
    assert np.max(np.abs(ch)) == pytest.approx(0.6, abs=1e-3)
    assert signals.progression([[60], [65]], 0.5).shape == (SR,)
    n = signals.noise(1.0, amplitude=0.3)
    assert np.max(np.abs(n)) <= 0.3 and abs(float(n.mean())) < 0.01
    assert not np.any(signals.silence(0.5))
