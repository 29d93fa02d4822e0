"""Conditioning of the onset curve shared by tempo, beats and meter."""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.spans import moving_mean


def condition(onset: np.ndarray, rate: float) -> np.ndarray:
    """Onset curve minus its local mean (~0.4 s), half-wave rectified, unit RMS.

    Removing the local mean keeps only what stands out of the texture (Ellis 2007's
    high-pass), so dense passages and sparse ones feed the tempo and beat models alike.
    Silence stays all-zero.
    """
    x = np.asarray(onset, dtype=np.float64)
    if x.size == 0:
        return x
    # In place after the moving average: an hour is 310 000 frames, 2.5 MB per float64 copy.
    out = moving_mean(x, int(round(0.4 * rate)) // 2)
    np.subtract(x, out, out=out)
    np.maximum(out, 0.0, out=out)
    rms = float(np.sqrt(np.dot(out, out) / out.size))
    if rms <= 1e-9:
        return np.zeros_like(out)
    out /= rms
    return out


def smooth(x: np.ndarray, frames: int) -> np.ndarray:
    """Hann smoothing over ``frames`` frames (sum 1).

    Onsets are quantised to frames and jitter by +-1 frame; a short smoothing makes a beat
    that falls between two frames score on both, so periodicity and beat evidence do not
    depend on where the frame grid happens to fall.
    """
    if frames <= 1 or x.size < frames:
        return np.asarray(x, dtype=np.float64)
    kernel = np.hanning(frames + 2)[1:-1]
    return np.convolve(x, kernel / kernel.sum(), mode="same")
