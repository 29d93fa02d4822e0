"""Conditioning of the onset curve shared by tempo, beats and meter."""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import CHUNK_ROWS, release
from featherbeat.analysis.spans import moving_mean_blocks


def condition(onset: np.ndarray, rate: float, *, overwrite: bool = False) -> np.ndarray:
    """Onset curve minus its local mean (~0.4 s), half-wave rectified, unit RMS.

    Removing the local mean keeps only what stands out of the texture (Ellis 2007's
    high-pass), so dense passages and sparse ones feed the tempo and beat models alike.
    Silence stays all-zero.

    ``overwrite=True`` (the caller's own float64 copy): the result is computed in that array,
    block by block, with the same values; six hours of onset curve are 15 MB per float64 array,
    and this way conditioning needs no second one.
    """
    x = np.asarray(onset, dtype=np.float64)
    if x.size == 0:
        return x
    out = x if overwrite and x is onset else np.empty(x.size)
    for o0, means in moving_mean_blocks(x, int(round(0.4 * rate)) // 2):
        o1 = o0 + means.size
        np.subtract(x[o0:o1], means, out=out[o0:o1])
        np.maximum(out[o0:o1], 0.0, out=out[o0:o1])
        release(out)  # a long track's buffer is in a temp file (rhythm.track): block by block
    rms = float(np.sqrt(_mean_square(out, rate)))
    if rms <= 1e-9:
        out.fill(0.0)
        return out
    for o0 in range(0, out.size, CHUNK_ROWS):
        out[o0 : o0 + CHUNK_ROWS] /= rms  # element by element: the same quotients
        release(out)
    return out


# Past this length the conditioned curve's mean square is summed chunk by chunk (see below).
CHUNKED_RMS_SECONDS = 4 * 3600.0


def _mean_square(x: np.ndarray, rate: float) -> float:
    """``np.dot(x, x) / x.size``; past ``CHUNKED_RMS_SECONDS`` the sum of the dots of chunks.

    One dot over the whole curve reads all of it at once: for a long track kept in a temp file
    that made the whole float64 curve resident (12 hours: 30 MB) twice per rhythm stage, its
    highest moments. The chunked sum rounds differently (last bits of the scale of the
    conditioned curve), so it is used only past four hours: every shorter track keeps its
    results to the last bit (docs/benchmarks/memory_speed.md says what it changed at 12 h).
    """
    if x.size <= CHUNKED_RMS_SECONDS * rate:
        return float(np.dot(x, x) / x.size)
    total = 0.0
    for o0 in range(0, x.size, CHUNK_ROWS):
        part = x[o0 : o0 + CHUNK_ROWS]
        total += float(np.dot(part, part))
        release(x)
    return total / x.size


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


def smooth_span(x: np.ndarray, frames: int, lo: int, hi: int) -> np.ndarray:
    """``smooth(x, frames)[lo:hi]`` (a new float64 array) from ``x[lo - frames : hi + frames]``
    only: each output is the same weighted sum of the same frames, so the values are the same
    to the last bit (tests check it), without a smoothed copy of the whole curve (six hours of
    onset curve: 15 MB per float64 copy)."""
    if frames <= 1 or x.size < frames:
        span = np.array(x[lo:hi], dtype=np.float64)
    else:
        a, b = max(lo - frames, 0), min(hi + frames, x.size)
        span = smooth(np.asarray(x[a:b], dtype=np.float64), frames)[lo - a : hi - a]
    # A long track's working curve lives in a temp file (rhythm.track): its callers sweep it a
    # span at a time (the tempo windows, the Viterbi's blocks), so each span's pages go back
    # once it is smoothed into a new array, and the whole curve is never resident for them.
    release(x)
    return span
