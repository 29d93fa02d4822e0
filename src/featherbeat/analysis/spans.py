"""Per-span reductions over per-frame curves and level conversions, shared by rhythm and structure.

Every mean over a run of frames (a moving mean, a segment, a section, a beat) comes from here,
computed from one cumulative sum, so the stages agree to the last bit on what a mean is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from featherbeat.analysis.features._store import CHUNK_ROWS, all_finite, release, row_chunks
from featherbeat.analysis.profile import LOUDNESS_FLOOR_DB


def db_to_power(db: np.ndarray) -> np.ndarray:
    return 10.0 ** (np.asarray(db, dtype=np.float64) / 10.0)


def power_to_db(power: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 10.0 ** (LOUDNESS_FLOOR_DB / 10.0)))


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` of an array without NaNs: its distinct values, sorted, flat.

    numpy 2's ``np.unique`` (and ``np.percentile``, which calls it) asks ``np.ma.is_masked``
    first, and that imports numpy.ma, ~0.01 CPU-s (1 % of a 3-minute analysis) on the first
    call of the process; a sort and a neighbour comparison give the same array.
    """
    a = np.sort(np.asarray(values).reshape(-1))
    if a.size < 2:
        return a
    keep = np.empty(a.size, dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def np_percentile(values: np.ndarray, q: float, *, overwrite_input: bool = False) -> Any:
    """``np.percentile(values, q, overwrite_input=...)`` for a scalar ``q``: the same value, of
    the same type, without importing numpy.ma (see :func:`sorted_unique`).

    For float32 and float64 input numpy's default "linear" method is done here as numpy does
    it: the two order statistics around the virtual index (n - 1) * q / 100 found by
    partitioning (in place with ``overwrite_input``, else a copy), then numpy's ``_lerp`` in the
    array's own dtype with a Python-float weight (the upper end for weights >= 0.5), NaN when
    the array holds one; past the last element both ends are the last one, as numpy's indexes
    -1. Anything else (other dtypes, empty input) goes to numpy itself. Tests compare it with
    numpy on random arrays.
    """
    a = np.asarray(values).reshape(-1)
    n = a.size
    if n == 0 or a.dtype not in (np.float32, np.float64):
        return np.percentile(a, q, overwrite_input=overwrite_input)
    x = a if overwrite_input else a.copy()
    virtual = (n - 1) * (q / 100)
    if virtual >= n - 1:
        below, above = -1, -1
        x.partition(n - 1)
    else:
        below = int(np.floor(virtual))
        above = below + 1
        x.partition([below, above, n - 1] if above < n - 1 else [below, above])
    if np.isnan(x[n - 1]):  # NaN sorts last, and numpy's answer is NaN then
        return x[n - 1]
    gamma = virtual - below
    low, high = x[below], x[above]
    diff = high - low
    return high - diff * (1 - gamma) if gamma >= 0.5 else low + diff * gamma


def np_median(values: np.ndarray, axis: int | None = None, *, overwrite_input: bool = False) -> Any:
    """``np.median(values, axis=..., overwrite_input=...)`` for float or integer input, the
    whole array or (2-D) along its last axis: the same values, of the same type, without
    importing numpy.ma (numpy 2's median checks for NaN through ``np.ma``; see
    :func:`sorted_unique`).

    As numpy: the middle one or two order statistics by partitioning (NaN sorts last), their
    ``np.mean`` (integers in float64), NaN where the array or row holds one. Anything else
    goes to numpy itself. Tests compare it with numpy on random arrays.
    """
    a = np.asarray(values)
    kind = a.dtype.kind
    if kind not in "fiu" or a.size == 0 or not (axis is None or (a.ndim == 2 and axis in (1, -1))):
        return np.median(a, axis=axis, overwrite_input=overwrite_input)
    flat = axis is None
    part = a.reshape(-1) if flat else a
    n = part.shape[-1]
    half = n // 2
    kth = [half - 1, half] if n % 2 == 0 else [half]
    if kind == "f":
        kth.append(n - 1)
    if overwrite_input and part.flags.writeable:
        part.partition(kth, axis=-1)
    else:
        part = np.partition(part, kth, axis=-1)
    middle = part[..., half - 1 : half + 1] if n % 2 == 0 else part[..., half : half + 1]
    median = np.mean(middle, axis=-1)
    if kind == "f":
        last = part[-1] if flat else part[:, -1]
        if flat:
            if np.isnan(last):
                return last
        elif np.isnan(last).any():
            median = np.where(np.isnan(last), last, median)
    return median


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
        return float(np_percentile(np.asarray(v, dtype=np.float64), q))
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
