"""Per-span reductions over per-frame curves and level conversions, shared by rhythm and structure.

Every mean over a run of frames (a moving mean, a segment, a section, a beat) comes from here,
computed from one cumulative sum, so the stages agree to the last bit on what a mean is.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import CHUNK_ROWS, all_finite, release
from featherbeat.analysis.profile import LOUDNESS_FLOOR_DB


def db_to_power(db: np.ndarray) -> np.ndarray:
    return 10.0 ** (np.asarray(db, dtype=np.float64) / 10.0)


def power_to_db(power: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 10.0 ** (LOUDNESS_FLOOR_DB / 10.0)))


def span_means(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Mean of ``values`` rows over each frame span [start, end) (end > start required).

    Uses a cumulative sum, so spans may overlap or leave gaps, at O(frames + spans) cost.
    """
    v = np.asarray(values)
    # Accumulated in float64 without a float64 copy of the input (an hour of onset curve is
    # 2.5 MB per float64 copy).
    cs = np.zeros((v.shape[0] + 1,) + v.shape[1:])
    np.cumsum(v, axis=0, dtype=np.float64, out=cs[1:])
    counts = (ends - starts).reshape((-1,) + (1,) * (v.ndim - 1))
    return (cs[ends] - cs[starts]) / counts


def moving_mean(x: np.ndarray, half: int, block: int = CHUNK_ROWS) -> np.ndarray:
    """Centred moving mean over ±``half`` samples, shrinking at the edges (no zero padding).

    From the cumulative sum c (c[j] = x[0] + ... + x[j - 1], summed in order), a ``block`` of
    outputs at a time: each block sums its stretch of x on from the carried c at its start, so
    every c value, and every mean, is the same to the last bit as from one cumulative sum of
    the whole curve, but only a block of c is ever held (six hours of onset curve: 15 MB saved,
    the result is the only full-length array).
    """
    x = np.asarray(x, dtype=np.float64)
    half = max(0, int(half))
    if x.size == 0 or half == 0:
        return x.astype(np.float64)  # a copy: callers may work on it in place
    n = x.size
    out = np.empty(n)
    carry = 0.0  # c[lo] of the next block
    for o0 in range(0, n, max(1, int(block))):
        o1 = min(n, o0 + max(1, int(block)))
        lo, hi = max(o0 - half, 0), min(o1 + half, n)  # the c indices this block reads
        c = np.empty(hi - lo + 1)
        c[0] = carry
        if hi > lo:
            part = x[lo:hi].copy()
            part[0] += carry  # c[lo + 1] = c[lo] + x[lo]: the same additions, in the same order
            np.cumsum(part, out=c[1:])
        i = np.arange(o0, o1)
        a = np.maximum(i - half, 0)
        b = np.minimum(i + half + 1, n)
        out[o0:o1] = (c[b - lo] - c[a - lo]) / (b - a)
        carry = float(c[max(o1 - half, 0) - lo])
    return out


def frame_of(times: np.ndarray, rate: float, n: int) -> np.ndarray:
    """Index of the frame nearest each time, clipped to 0..n."""
    return np.clip(np.round(np.asarray(times, dtype=np.float64) * rate).astype(np.int64), 0, n)


def frame_rows(values: np.ndarray, n: int) -> np.ndarray:
    """(n, 12) per-frame matrix (chroma, timbre): cut or zero-padded to ``n`` frames, NaN-free.

    The core computes every curve in one pass, but a stage may be missing or a curve one frame
    shorter; aligning here keeps every span reduction in range. A clean float32 input is
    returned as it is (a view): an hour of chroma is 7 MB, and a float64 copy would double it.
    """
    v = np.asarray(values)
    v = v.reshape(-1, 12) if v.size else np.zeros((0, 12), dtype=np.float32)
    if v.shape[0] >= n and v.dtype.kind == "f" and all_finite(v[:n]):
        return v[:n]
    v = np.nan_to_num(v[:n].astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if v.shape[0] < n:
        v = np.vstack([v, np.zeros((n - v.shape[0], 12), dtype=np.float32)])
    return v


def block_means(values: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Mean of ``values`` rows over contiguous blocks [starts[k], starts[k+1]) (the last ends at
    ``n``); ``starts`` strictly increasing from 0. Accumulates in float64 without a float64 copy
    of the input (np.add.reduceat casts as it goes).

    Blocks are summed in groups of about ``CHUNK_ROWS`` frames, each group cut at a block
    start, so every block's sum is the same as in one call over the whole array (checked
    bit for bit in tests), and a curve kept in a temp file is resident one group at a time.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.append(starts[1:], n)[: starts.size]
    sums = np.empty((starts.size, *np.shape(values)[1:]), dtype=np.float64)
    i = 0
    while i < starts.size:
        lo = int(starts[i])
        j = max(i + 1, int(np.searchsorted(starts, lo + CHUNK_ROWS, side="right")) - 1)
        hi = int(ends[j - 1]) if j < starts.size else max(int(ends[-1]), np.shape(values)[0])
        sums[i:j] = np.add.reduceat(values[lo:hi], starts[i:j] - lo, axis=0, dtype=np.float64)
        release(values)
        i = j
    counts = (ends - starts).reshape((-1,) + (1,) * (np.ndim(values) - 1))
    return sums / counts
