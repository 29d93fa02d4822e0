"""Per-span reductions over per-frame curves and level conversions, shared by rhythm and structure.

Every mean over a run of frames (a moving mean, a segment, a section, a beat) comes from here,
computed from one cumulative sum, so the stages agree to the last bit on what a mean is.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from featherbeat.analysis.features._store import CHUNK_ROWS, all_finite, release, row_chunks
from featherbeat.analysis.profile import LOUDNESS_FLOOR_DB


def db_to_power(db: np.ndarray) -> np.ndarray:
    return 10.0 ** (np.asarray(db, dtype=np.float64) / 10.0)


def power_to_db(power: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 10.0 ** (LOUDNESS_FLOOR_DB / 10.0)))


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values.astype(np.float64), q)`` (numpy's default "linear" method, finite
    float32 values) from a float32 copy instead of a float64 one.

    numpy copies its input to partition it: for six hours of onset curve that copy is 15 MB
    as float64, and np.percentile of the float32 array itself is computed in float32 (another
    value). Here the two order statistics numpy interpolates between are found in a float32
    copy (read chunk by chunk from a curve kept in a temp file) and interpolated exactly as
    numpy does, in float64: the same value to the last bit (tests check it against numpy).
    """
    v = np.asarray(values).reshape(-1)
    if v.dtype != np.float32:  # a float32 copy would round it: numpy's own, on float64
        return float(np.percentile(np.asarray(v, dtype=np.float64), q))
    n = v.size
    if n == 0:
        raise ValueError("percentile of an empty array")
    x = np.empty(n, dtype=np.float32)
    for a, part in row_chunks(v):
        x[a : a + part.size] = part
    virtual = (n - 1) * (q / 100)  # numpy: (n - 1) * true_divide(q, 100), in float64
    if virtual >= n - 1:
        return float(x.max())
    below = int(np.floor(virtual))
    gamma = virtual - below
    x.partition([below, below + 1])
    low, high = float(x[below]), float(x[below + 1])
    diff = high - low  # numpy's _lerp, which takes the upper end for gamma >= 0.5
    return high - diff * (1 - gamma) if gamma >= 0.5 else low + diff * gamma


def span_means(
    values: np.ndarray, starts: np.ndarray, ends: np.ndarray, block: int = CHUNK_ROWS
) -> np.ndarray:
    """Mean of ``values`` rows over each frame span [start, end) (end > start required).

    Uses a cumulative sum c (c[j] = values[0] + ... + values[j - 1], in float64, summed in
    order), so spans may overlap or leave gaps, at O(frames + spans) cost. The sum is carried
    ``block`` frames at a time, the same additions in the same order as one cumulative sum of
    the whole curve (so the same means to the last bit), but only a block of it is ever held:
    six hours of onset curve would be a 15 MB float64 array beside the curve itself.
    """
    v = np.asarray(values)
    n = v.shape[0]
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    tail = v.shape[1:]
    at_start = np.zeros((starts.size, *tail))
    at_end = np.zeros((ends.size, *tail))
    step = max(1, int(block))
    carry = np.zeros(tail)  # c[c0] of the next block
    for c0 in range(0, n + 1, step):
        c1 = min(n + 1, c0 + step)  # this block holds c[c0 : c1]
        c = np.empty((c1 - c0, *tail))
        c[0] = carry
        if c1 - c0 > 1:
            part = np.array(v[c0 : c1 - 1], dtype=np.float64)
            if c0:
                part[0] += carry  # c[c0 + 1] = c[c0] + values[c0]: the same addition as before
            np.cumsum(part, axis=0, out=c[1:])
        carry = c[-1] + v[c1 - 1] if c1 <= n else carry  # c[c1]
        for idx, dest in ((starts, at_start), (ends, at_end)):
            inside = (idx >= c0) & (idx < c1)
            if inside.any():
                dest[inside] = c[idx[inside] - c0]
        release(v)
    counts = (ends - starts).reshape((-1,) + (1,) * (v.ndim - 1))
    return (at_end - at_start) / counts


def moving_mean_blocks(
    x: np.ndarray, half: int, block: int = CHUNK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """(o0, means of x[o0 : o0 + len]) block by block: :func:`moving_mean` without its output.

    The caller may overwrite ``x[o0 : o0 + len]`` once it has the block (the originals the
    next blocks still read are kept here), so a curve can be replaced by, say, itself minus
    its local mean without a second array its length.
    """
    # float32 (a stored curve) is read as it is and cast a block at a time, exactly.
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    half = max(0, int(half))
    n = x.size
    step = max(1, int(block))
    carry = 0.0  # c[lo] of the next block
    kept = np.zeros(0)  # the original x[o0 - kept.size : o0], which the caller may have changed
    for o0 in range(0, n, step):
        o1 = min(n, o0 + step)
        lo, hi = max(o0 - half, 0), min(o1 + half, n)  # the c indices this block reads
        c = np.empty(hi - lo + 1)
        c[0] = carry
        if hi > lo:
            part = np.empty(hi - lo)
            back = o0 - lo
            part[:back] = kept[kept.size - back :]
            part[back:] = x[o0:hi]
            part[0] += carry  # c[lo + 1] = c[lo] + x[lo]: the same additions, in the same order
            np.cumsum(part, out=c[1:])
        i = np.arange(o0, o1)
        a = np.maximum(i - half, 0)
        b = np.minimum(i + half + 1, n)
        carry = float(c[max(o1 - half, 0) - lo])
        kept = np.concatenate([kept, x[o0:o1]])[-half:] if half else kept
        yield o0, (c[b - lo] - c[a - lo]) / (b - a)


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
    out = np.empty(x.size)
    for o0, means in moving_mean_blocks(x, half, block):
        out[o0 : o0 + means.size] = means
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
    sums /= counts  # in place: the same quotients, one (blocks, width) array fewer
    return sums
