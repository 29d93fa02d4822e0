"""Conditioning of the onset curve shared by tempo, beats and meter."""

from __future__ import annotations

import numpy as np


def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of odd ``width`` (edges use the frames available)."""
    width = max(1, int(width) | 1)
    if x.size == 0 or width == 1:
        return x.astype(np.float64)
    # np.convolve rather than a cumulative sum: no extra full-length index arrays (memory).
    kernel = np.ones(width)
    sums = np.convolve(x, kernel, mode="same")
    counts = np.convolve(np.ones(x.size), kernel, mode="same")
    return sums / counts


def condition(onset: np.ndarray, rate: float) -> np.ndarray:
    """Onset curve minus its local mean (~0.4 s), half-wave rectified, unit RMS.

    Removing the local mean keeps only what stands out of the texture (Ellis 2007's
    high-pass), so dense passages and sparse ones feed the tempo and beat models alike.
    Silence stays all-zero.
    """
    x = np.asarray(onset, dtype=np.float64)
    if x.size == 0:
        return x
    x = np.maximum(x - moving_average(x, int(round(0.4 * rate))), 0.0)
    rms = float(np.sqrt(np.mean(x * x)))
    return x / rms if rms > 1e-9 else np.zeros_like(x)


def smooth(x: np.ndarray, frames: int) -> np.ndarray:
    """Hann smoothing over ``frames`` frames (sum 1).

    Onsets are quantised to frames and jitter by +-1 frame; a short smoothing makes a beat
    that falls between two frames score on both, so periodicity and beat evidence do not
    depend on where the frame grid happens to fall.
    """
    if frames <= 1 or x.size == 0:
        return np.asarray(x, dtype=np.float64)
    kernel = np.hanning(frames + 2)[1:-1]
    return np.convolve(x, kernel / kernel.sum(), mode="same")
