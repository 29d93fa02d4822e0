"""Conditioning of the onset curve shared by tempo, beats and meter."""

from __future__ import annotations

import numpy as np


def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of odd ``width`` (edges use the frames available)."""
    width = max(1, int(width) | 1)
    if x.size == 0 or width == 1:
        return x.astype(np.float64)
    n, half = x.size, width // 2
    c = np.zeros(n + 1)
    np.cumsum(x, out=c[1:])
    # Slices, not index arrays: one extra full-length array (the cumulative sum) in all.
    out = np.empty(n)
    if n > 2 * half:
        out[half : n - half] = (c[2 * half + 1 :] - c[: n - 2 * half]) / width
        edge = np.r_[np.arange(half), np.arange(n - half, n)]
    else:
        edge = np.arange(n)
    lo = np.maximum(edge - half, 0)
    hi = np.minimum(edge + half + 1, n)
    out[edge] = (c[hi] - c[lo]) / (hi - lo)
    return out


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
    out = moving_average(x, int(round(0.4 * rate)))
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
