"""Spotify-style segments: short sound events, each starting just before its onset.

1. Onsets are peaks of the onset-strength curve: a local maximum within ±``PEAK_SECONDS`` that
   rises above the local mean (±``MEAN_SECONDS``) by ``DELTA`` × a robust scale of the curve
   (its 90th percentile, or ``SPARSE_FLOOR`` × its maximum when that is larger),
   at least ``MIN_GAP_SECONDS`` after the previous one. On 42 varied clips this gives a median
   of 4.0 segments per second (10-90 %: 3.2-4.5); Spotify's published examples have 3.4/s.
   (DELTA 0.2 / gap 0.1 s gave 4.5/s; 0.4 / 0.12 s gave 3.8/s but drops soft notes.)
2. Gaps longer than ``MAX_SECONDS`` (sustained notes, silence) are split evenly, so that a
   segment's mean pitch and timbre still describe what sounds in it; such splits have
   confidence 0, like Spotify's leading-silence segment.
3. Each start moves back to the quietest point of the fine level envelope (``Curves.envelope``,
   86/s) within ``PRE_SECONDS`` before the onset: the Echo Nest's segments begin before the
   attack, so ``loudness_start`` is the level before it and ``loudness_max`` its peak.
4. Per segment: loudness at its start, its maximum and when (sub-frame), at its end (= the next
   segment's start, as the Echo Nest documents); pitches (:func:`segment_pitches`); timbre, the
   projection of its spectro-temporal surface (features/timbre.py). The last segment ends at
   the track's duration exactly.

Confidence of an onset: 1 - local mean / peak height, i.e. how much it stands out (0..1).
All steps are vectorised over the whole curve (O(frames) time and memory).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from featherbeat.analysis.features._store import all_finite, release, row_chunks, scratch
from featherbeat.analysis.features.timbre import segment_timbre
from featherbeat.analysis.profile import Curves, Section, Segments
from featherbeat.analysis.spans import (
    LOUDNESS_FLOOR_DB,
    block_means,
    frame_of,
    frame_rows,
    moving_mean_blocks,
    percentile,
)

PEAK_SECONDS = 0.05
MEAN_SECONDS = 0.25
MIN_GAP_SECONDS = 0.12
MAX_SECONDS = 2.0
# A segment starts at the quietest level frame up to this long before its onset (Echo Nest:
# segments begin before the attack).
PRE_SECONDS = 0.05
PITCH_CONTRAST = 0.4  # exponent on the max-normalised chroma (power): see segment_pitches
DELTA = 0.3  # × the curve's scale: its 90th percentile ...
SPARSE_FLOOR = 0.1  # ... or this fraction of its maximum, if larger
# Segments handled per group where a per-segment window or mean would otherwise exist for all of
# them at once (twelve hours: ~170 000 segments): the same values per row, a group's temporaries.
_START_GROUP = 16384  # windows before the attacks: (group, back + 1) indices and levels
_PITCH_GROUP = 8192  # the segments' mean chroma


def pick_onsets(odf: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(onset times in seconds, confidences 0..1) picked from an onset-strength curve."""
    odf = np.asarray(odf).reshape(-1)
    if odf.size < 3 or rate <= 0:
        return np.zeros(0), np.zeros(0)
    if odf.dtype != np.float32 or not all_finite(odf):
        # Not the stored float32 curve, or a damaged one: one float64 copy, cleaned in place.
        odf = np.nan_to_num(np.array(odf, dtype=np.float64), copy=False, nan=0.0)
    # Otherwise the stored curve is read as it is: its float32 values cast to float64 exactly,
    # so every comparison and quotient below is the same as on a float64 copy (six hours of
    # onset curve: 15 MB per copy, and numpy's percentile would copy it once more).
    # Robust scale of the curve; the peak-based floor matters for sparse curves (a click track),
    # whose 90th percentile is the noise floor.
    peak = max(float(part.max()) for _, part in row_chunks(odf))
    scale = max(percentile(odf, 90), SPARSE_FLOOR * peak)
    if scale <= 0:
        return np.zeros(0), np.zeros(0)
    half = max(1, int(round(PEAK_SECONDS * rate)))
    threshold = DELTA * scale
    # Block by block (the local mean's blocks): a peak is a local maximum, above zero, standing
    # above the local mean by the threshold. Only the candidates and their local means are
    # kept, not a moving maximum and a local mean the curve's length (six hours: 15 MB each).
    found: list[np.ndarray] = []
    means: list[np.ndarray] = []
    for o0, local_mean in moving_mean_blocks(odf, max(1, int(round(MEAN_SECONDS * rate)))):
        o1 = o0 + local_mean.size
        x = odf[o0:o1]
        is_peak = x >= _moving_max(odf, half, o0, o1)
        is_peak &= x > 0
        is_peak &= x > local_mean + threshold
        at = np.flatnonzero(is_peak)
        found.append(at + o0)
        means.append(local_mean[at])
        release(odf)
    candidates = np.concatenate(found)
    frames = _thin(candidates, odf, int(round(MIN_GAP_SECONDS * rate)))
    local = np.concatenate(means)[np.searchsorted(candidates, frames)]
    conf = np.clip(1.0 - local / odf[frames].astype(np.float64), 0.0, 1.0)
    release(odf)
    return frames / rate, conf


def _moving_max(x: np.ndarray, half: int, o0: int = 0, o1: int | None = None) -> np.ndarray:
    """Centred moving maximum over ±``half`` samples (edge-padded) of ``x[o0:o1]``, in
    O(n × half); a block reads only its own frames and ``half`` either side."""
    o1 = x.size if o1 is None else o1
    lo, hi = max(o0 - half, 0), min(o1 + half, x.size)
    padded = np.pad(x[lo:hi], (half - (o0 - lo), half - (hi - o1)), mode="edge")
    m = o1 - o0
    out = padded[:m].copy()
    for k in range(1, 2 * half + 1):
        np.maximum(out, padded[k : k + m], out=out)
    return out


def _thin(frames: np.ndarray, odf: np.ndarray, min_gap: int) -> np.ndarray:
    """Drop peaks closer than ``min_gap`` frames to a stronger kept one (strongest first)."""
    if frames.size < 2 or min_gap <= 1:
        return frames
    # Equal plateaus report every plateau sample as a peak: keep the first of a run.
    frames = frames[np.concatenate([[True], np.diff(frames) > 1])]
    close = np.diff(frames) < min_gap
    if not close.any():
        return frames
    order = np.argsort(-odf[frames].astype(np.float64), kind="stable")
    release(odf)  # the gather touched the stored curve's pages all along (12 hours: 15 MB)
    taken = np.zeros(odf.size + 2 * min_gap, dtype=bool)
    keep = np.zeros(frames.size, dtype=bool)
    for i in order:  # only reached when peaks crowd; bounded by the number of peaks
        f = frames[i] + min_gap
        if not taken[f - min_gap + 1 : f + min_gap].any():
            taken[f] = True
            keep[i] = True
    return frames[keep]


def _boundaries(
    onsets: np.ndarray, conf: np.ndarray, duration: float
) -> tuple[np.ndarray, np.ndarray]:
    """Segment starts (first at 0) with confidences, long gaps split evenly (confidence 0)."""
    keep = (onsets > 0) & (onsets < duration)
    starts = np.concatenate([[0.0], onsets[keep]])
    confs = np.concatenate([[0.0], conf[keep]])
    if starts.size and onsets.size and onsets[0] <= 0:
        confs[0] = conf[0]
    edges = np.append(starts, duration)
    pieces = np.maximum(1, np.ceil(np.diff(edges) / MAX_SECONDS - 1e-9)).astype(np.int64)
    if np.all(pieces == 1):
        return starts, confs
    idx = np.repeat(np.arange(starts.size), pieces)
    step = np.arange(idx.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    out = starts[idx] + step * (np.diff(edges)[idx] / pieces[idx])
    return out, np.where(step == 0, confs[idx], 0.0)


def _before_attacks(starts: np.ndarray, loud: np.ndarray, rate: float) -> np.ndarray:
    """Frame of each segment start moved back to the quietest frame just before its attack.

    The Echo Nest's segments begin *before* the onset (loudness_start is the level before the
    attack, loudness_max the attack's peak). An onset is picked where the spectral flux peaks,
    i.e. already on the rise; the level curve's minimum within ``PRE_SECONDS`` before it marks
    where the rise begins. A start never moves to or before the previous segment's start.
    """
    n = loud.size
    a = frame_of(starts, rate, n - 1)
    back = max(1, int(round(PRE_SECONDS * rate)))
    # Level of frames a-back .. a for every start: a (segments, back + 1) window, taken for a
    # group of segments at a time (row by row, the same values): for all ~170 000 segments of
    # twelve hours its indices and levels were ~20 MB at once.
    offsets = np.arange(-back, 1)
    pick = np.empty(a.size, dtype=np.int64)
    for i in range(0, a.size, _START_GROUP):
        idx = np.clip(a[i : i + _START_GROUP, None] + offsets[None, :], 0, n - 1)
        # The latest frame of the minimum (argmin of the reversed window): a flat floor before
        # the attack keeps the start close to the onset.
        pick[i : i + _START_GROUP] = back - np.argmin(loud[idx][:, ::-1], axis=1)
        release(loud)  # a stored curve: the pages just read go back
    moved = np.clip(a - back + pick, 0, n - 1)
    moved[0] = a[0]  # the first segment starts at 0 (or its own onset) as before
    # Keep starts strictly increasing: never before the previous start + 1 frame.
    floor = np.concatenate([[-1], a[:-1]]) + 1
    return np.maximum(moved, floor)


def _level(curves: Curves) -> tuple[np.ndarray, float]:
    """(level in dB, its rate): the fine envelope when computed, else the frame loudness.

    The stored float32 curve itself when it is clean (six hours of envelope: 15 MB as a
    float64 copy); its readers cast the values they take, exactly. A damaged curve is copied
    to float64 and cleaned in place, as before.
    """
    if np.asarray(curves.envelope).size and curves.envelope_rate > 0:
        level, rate = np.asarray(curves.envelope).reshape(-1), float(curves.envelope_rate)
    else:
        level, rate = np.asarray(curves.loudness).reshape(-1), float(curves.frame_rate)
    if level.dtype == np.float32 and all_finite(level):
        return level, rate
    level = np.array(level, dtype=np.float64)
    return np.nan_to_num(level, copy=False, nan=LOUDNESS_FLOOR_DB), rate


def _peaks(level: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(maximum level, its offset in frames with sub-frame precision) within each segment.

    A parabola through the highest frame and its neighbours places the peak between frames
    (Spotify's loudness_max_time is continuous, not on a frame grid); the level itself is the
    highest measured value.
    """
    n = level.size
    g = np.append(f[1:], n)
    # The maximum and the first frame at it, for groups of segments spanning ~65 000 frames at
    # a time: the same values as over the whole curve at once, without four int64 arrays its
    # length, and a stored curve is resident one group at a time.
    seg_max = np.empty(f.size, dtype=level.dtype)
    p = np.empty(f.size, dtype=np.int64)
    i = 0
    while i < f.size:
        lo = int(f[i])
        j = max(i + 1, int(np.searchsorted(f, lo + (1 << 16), side="right")) - 1)
        hi = int(g[j - 1])
        part = level[lo:hi]
        seg_max[i:j] = np.maximum.reduceat(part, f[i:j] - lo)
        seg_id = np.repeat(np.arange(i, j), g[i:j] - f[i:j])
        at_max = np.where(part == seg_max[seg_id], np.arange(lo, hi), n)
        p[i:j] = np.minimum.reduceat(at_max, f[i:j] - lo)
        release(level)
        i = j
    # float64 from here (the stored float32 values cast exactly), as on a float64 copy.
    left = level[np.maximum(p - 1, f)].astype(np.float64)
    right = level[np.minimum(p + 1, g - 1)].astype(np.float64)
    curve = left - 2.0 * level[p].astype(np.float64) + right
    release(level)  # the gathers touched pages all along a stored curve
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.where(curve < 0, 0.5 * (left - right) / curve, 0.0)
    offset = np.clip(p - f + np.clip(delta, -0.5, 0.5), 0.0, (g - f - 1).astype(np.float64))
    return seg_max.astype(np.float64), offset


def find_segments(curves: Curves, duration: float | None = None) -> Segments:
    """Segments of the track described by ``curves`` (onsets alone place Spotify's segments).

    ``duration``: the track's length in seconds (the decoder's); the last segment ends exactly
    there, as Spotify's do, and no segment starts at or after it. Without it, the curves'
    span (to within one frame) is used.
    """
    n = int(np.asarray(curves.loudness).size)
    rate = float(curves.frame_rate)
    if n == 0 or rate <= 0:
        return Segments()
    # Onsets first, so the onset curve's work arrays are gone before the level is copied.
    onsets, conf = pick_onsets(curves.onset, float(curves.onset_rate))
    level, level_rate = _level(curves)
    if level.size == 0:
        return Segments()
    if duration is None or not duration > 0:
        duration = n / rate
    starts, confs = _boundaries(onsets, conf, duration)
    f = _before_attacks(starts, level, level_rate)
    # Chroma and timbre are read on the coarser frames: two starts in one frame (at coarse
    # frame rates) keep the first.
    a = frame_of(f / level_rate, rate, n - 1)
    first = np.concatenate([[True], np.diff(a) > 0])
    f, a, confs = f[first], a[first], confs[first]
    # On the 10 µs grid the JSON is written on, so that written start + duration is the next
    # written start (and the track's written duration at the end), not one rounding step off.
    starts = np.round(f / level_rate, 5)
    # A start on the last frames of a decoder-length track that ends inside that frame.
    inside = np.concatenate([[True], starts[1:] < duration - 1e-5])
    f, a, confs, starts = f[inside], a[inside], confs[inside], starts[inside]
    seg_max, offset = _peaks(level, f)
    chroma = frame_rows(curves.chroma, n)
    timbre = frame_rows(curves.timbre, n)
    # Pitches a group of segments at a time (row by row, the same values): their float64
    # temporaries were five (segments, 12) arrays, ~7 MB each at six hours, and so was the
    # segments' mean chroma (each group's means are the same as in one call: block_means sums
    # every block on its own).
    # The segments are the output, kept until the JSON is written (twelve hours: ~170 000
    # segments, 23 MB, under every later stage): past 1 MB a column lives in a temp file
    # (``_store.scratch``, the same values) and is resident only while a stage reads it.
    pitches = scratch((a.size, 12), np.float32)
    for i in range(0, a.size, _PITCH_GROUP):
        j = i + _PITCH_GROUP
        stop = int(a[j]) if j < a.size else n
        pitches[i:j] = segment_pitches(block_means(chroma[:stop], a[i:j], stop), seg_max[i:j])
        release(pitches)
    ends = np.append(starts[1:], max(round(duration, 5), float(starts[-1]) + 1e-5))
    # Level at each start: just before the attack. A segment's level at its end is the next
    # one's level at its start, as the Echo Nest documents.
    edge = level[f].astype(np.float64)
    last_level = float(level[-1])
    release(level)
    return Segments(
        start=_kept(starts),  # float64: float32 times drift by ~0.2 ms after an hour
        duration=_kept(ends - starts),
        confidence=_kept(confs, np.float32),
        loudness_start=_kept(edge, np.float32),
        loudness_max=_kept(seg_max, np.float32),
        loudness_max_time=_kept(np.minimum(offset / level_rate, ends - starts)),
        loudness_end=_kept(np.append(edge[1:], last_level), np.float32),
        pitches=pitches,
        timbre=segment_timbre(timbre, a, n, np.float32),
    )


def _kept(values: np.ndarray, dtype: npt.DTypeLike | None = None) -> np.ndarray:
    """``values`` (cast to ``dtype`` as ``astype`` does) in a ``scratch`` array: a column of a
    long track's segments goes to a temp file, a short one's stays in memory."""
    out = scratch(values.shape, values.dtype if dtype is None else dtype)
    out[...] = values
    release(out)
    return out


def segment_pitches(chroma: np.ndarray, seg_max: np.ndarray) -> np.ndarray:
    """(segments, 12) pitches: mean chroma, strongest class 1, with Spotify's contrast.

    The chroma holds spectral-peak power (features/chroma.py); its max-normalised square root
    (a magnitude ratio) falls off as Spotify's pitches do: on the 10 full songs of
    bench/fidelity.py, power^0.5 gives mean of loud segments 0.30 and share above 0.5 0.19
    (Spotify's responses 0.25-0.40 and 0.19-0.32, medians 0.34 and 0.26): the share sat on the
    range's edge. Power^0.45 / 0.4 / 0.35 give 0.33 / 0.22, 0.36 / 0.28, 0.39 / 0.31; 0.4 is
    nearest Spotify's medians on both. With the earlier bin-magnitude chroma the same
    statistics needed an exponent of 1.6 on magnitudes; on the peak chroma that gave 0.14 /
    0.11, power^0.8 gave 0.21 / 0.14. A pure tone stays one 1 and near-zeros, noise stays high everywhere, as the
    documentation describes.
    """
    peak = chroma.max(axis=1, keepdims=True)
    # No pitch at all (silence): a flat vector, Spotify's picture of "no dominant pitch".
    # Digital silence still leaves FFT round-off in the chroma, so judge silence by level,
    # not by an exact zero.
    silent = (seg_max <= LOUDNESS_FLOOR_DB + 1.0)[:, None] | (peak <= 0)
    ratio = np.clip(chroma / np.where(peak > 0, peak, 1.0), 0.0, 1.0)
    # The chroma holds peak power (features/chroma.py); PITCH_CONTRAST is chosen on it.
    return np.where(silent, 1.0, ratio**PITCH_CONTRAST)


def sections_until(sections: list[Section], duration: float) -> list[Section]:
    """``sections`` tiling 0..``duration``: each ends where the next starts, the last exactly at
    ``duration`` (Spotify's sections do; ours were cut on the frame grid); none is empty."""
    out: list[Section] = []
    stop = round(duration, 5)  # the 10 µs grid the JSON is written on
    for k, s in enumerate(sections):
        start = round(s.start, 5) if out else 0.0
        end = min(round(sections[k + 1].start, 5) if k + 1 < len(sections) else stop, stop)
        if end - start > 0 or (not out and k + 1 == len(sections)):
            out.append(replace(s, start=start, duration=max(end - start, 0.0)))
        elif out:  # an empty one: the previous section runs on
            out[-1] = replace(out[-1], duration=max(end - out[-1].start, 0.0))
    return out
