"""Spotify-style segments: short sound events, each starting at an onset.

1. Onsets are peaks of the onset-strength curve: a local maximum within ±``PEAK_SECONDS`` that
   rises above the local mean (±``MEAN_SECONDS``) by ``DELTA`` × a robust scale of the curve
   (its 90th percentile, or ``SPARSE_FLOOR`` × its maximum when that is larger),
   at least ``MIN_GAP_SECONDS`` after the previous one. On 42 varied clips this gives a median
   of 4.0 segments per second (10-90 %: 3.2-4.5); Spotify's published examples have 3.4/s.
   (DELTA 0.2 / gap 0.1 s gave 4.5/s; 0.4 / 0.12 s gave 3.8/s but drops soft notes.)
2. Gaps longer than ``MAX_SECONDS`` (sustained notes, silence) are split evenly, so that a
   segment's mean pitch and timbre still describe what sounds in it; such splits have
   confidence 0, like Spotify's leading-silence segment.
3. Per segment, over the frames it spans: loudness at its start (the level just before the
   attack), its maximum and when, at its end (= the next segment's start, as Spotify documents); the mean chroma normalised so the
   strongest pitch class is 1; the mean timbre vector.

Confidence of an onset: 1 - local mean / peak height, i.e. how much it stands out (0..1).
All steps are vectorised over the whole curve (O(frames) time and memory).
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.profile import Curves, Segments
from featherbeat.analysis.spans import (
    LOUDNESS_FLOOR_DB,
    block_means,
    frame_of,
    frame_rows,
    moving_mean,
)

PEAK_SECONDS = 0.05
MEAN_SECONDS = 0.25
MIN_GAP_SECONDS = 0.12
MAX_SECONDS = 2.0
DELTA = 0.3  # × the curve's scale: its 90th percentile ...
SPARSE_FLOOR = 0.1  # ... or this fraction of its maximum, if larger


def pick_onsets(odf: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(onset times in seconds, confidences 0..1) picked from an onset-strength curve."""
    odf = np.nan_to_num(np.asarray(odf, dtype=np.float64).reshape(-1), nan=0.0)
    if odf.size < 3 or rate <= 0:
        return np.zeros(0), np.zeros(0)
    # Robust scale of the curve; the peak-based floor matters for sparse curves (a click track),
    # whose 90th percentile is the noise floor.
    scale = max(float(np.percentile(odf, 90)), SPARSE_FLOOR * float(odf.max()))
    if scale <= 0:
        return np.zeros(0), np.zeros(0)
    half = max(1, int(round(PEAK_SECONDS * rate)))
    local_max = _moving_max(odf, half)
    local_mean = moving_mean(odf, max(1, int(round(MEAN_SECONDS * rate))))
    is_peak = (odf >= local_max) & (odf > local_mean + DELTA * scale) & (odf > 0)
    frames = np.flatnonzero(is_peak)
    frames = _thin(frames, odf, int(round(MIN_GAP_SECONDS * rate)))
    conf = np.clip(1.0 - local_mean[frames] / odf[frames], 0.0, 1.0)
    return frames / rate, conf


def _moving_max(x: np.ndarray, half: int) -> np.ndarray:
    """Centred moving maximum over ±``half`` samples (edge-padded), in O(n × half)."""
    padded = np.pad(x, half, mode="edge")
    out = padded[: x.size].copy()
    for k in range(1, 2 * half + 1):
        np.maximum(out, padded[k : k + x.size], out=out)
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
    order = np.argsort(-odf[frames], kind="stable")
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


def find_segments(curves: Curves) -> Segments:
    """Segments of the track described by ``curves`` (onsets alone place Spotify's segments)."""
    loud = np.asarray(curves.loudness, dtype=np.float64).reshape(-1)
    rate = float(curves.frame_rate)
    n = loud.size
    if n == 0 or rate <= 0:
        return Segments()
    duration = n / rate
    onsets, conf = pick_onsets(curves.onset, float(curves.onset_rate))
    starts, confs = _boundaries(onsets, conf, duration)
    a = frame_of(starts, rate, n - 1)
    # Two starts can fall in one frame at coarse frame rates: keep the first of each frame.
    first = np.concatenate([[True], np.diff(a) > 0])
    starts, confs, a = starts[first], confs[first], a[first]
    b = np.append(a[1:], n)
    loud = np.nan_to_num(loud, nan=LOUDNESS_FLOOR_DB)
    seg_max = np.maximum.reduceat(loud, a)
    seg_id = np.repeat(np.arange(a.size), b - a)
    at_max = np.where(loud == seg_max[seg_id], np.arange(n), n)
    max_frame = np.minimum.reduceat(at_max, a)
    chroma = frame_rows(curves.chroma, n)
    timbre = frame_rows(curves.timbre, n)
    pitches = block_means(chroma, a, n)
    peak = pitches.max(axis=1, keepdims=True)
    # No pitch at all (silence): a flat vector, Spotify's picture of "no dominant pitch".
    # Digital silence still leaves FFT round-off in the chroma, so judge silence by level,
    # not by an exact zero.
    silent = (seg_max <= LOUDNESS_FLOOR_DB + 1.0)[:, None] | (peak <= 0)
    pitches = np.where(silent, 1.0, pitches / np.where(peak > 0, peak, 1.0))
    ends = np.append(starts[1:], duration)
    # Level at each boundary: the quieter of the frames either side, i.e. before the attack
    # (an onset's own frame is often already loud). A segment ends at the next one's start.
    edge = np.minimum(loud[np.maximum(a - 1, 0)], loud[a])
    return Segments(
        start=starts,  # float64: float32 times drift by ~0.2 ms after an hour
        duration=ends - starts,
        confidence=confs.astype(np.float32),
        loudness_start=edge.astype(np.float32),
        loudness_max=seg_max.astype(np.float32),
        loudness_max_time=(max_frame - a) / rate,
        loudness_end=np.append(edge[1:], loud[-1]).astype(np.float32),
        pitches=pitches.astype(np.float32),
        timbre=block_means(timbre, a, n).astype(np.float32),
    )
