"""Tatums: the regular subdivision of the beat, normally 2 per beat (3 in ternary/swing feels)."""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import take
from featherbeat.analysis.spans import np_median, np_percentile


def strength_at(odf: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Onset strength at the nearest frames, max over +-1 frame (tolerates timing jitter)."""
    if odf.size == 0:
        return np.zeros(frames.size)
    i = np.clip(np.round(frames).astype(int), 0, odf.size - 1)
    lo = np.clip(i - 1, 0, odf.size - 1)
    hi = np.clip(i + 1, 0, odf.size - 1)
    # take(): a long track's working curve is in a temp file (rhythm.track), given back as read.
    return np.maximum(np.maximum(take(odf, lo), take(odf, i)), take(odf, hi))


def subdivision(odf: np.ndarray, beat_frames: np.ndarray) -> int:
    """2 or 3: which grid (halves or thirds of the beat) collects more onset energy between beats."""
    if beat_frames.size < 4:
        return 2
    a, b = beat_frames[:-1], beat_frames[1:]
    d = b - a
    halves = strength_at(odf, a + d / 2).mean()
    thirds = 0.5 * (strength_at(odf, a + d / 3).mean() + strength_at(odf, a + 2 * d / 3).mean())
    # Thirds must clearly win: binary subdivision is by far the commonest.
    return 3 if thirds > 1.3 * halves else 2


def tatums(odf: np.ndarray, rate: float, beat_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tatum times, confidence 0..1): each beat interval split evenly into 2 or 3."""
    if beat_frames.size < 2:
        t = beat_frames / rate if rate > 0 else beat_frames.astype(np.float64)
        return t.astype(np.float64), np.ones(beat_frames.size) * 0.5
    k = subdivision(odf, beat_frames)
    a, b = beat_frames[:-1], beat_frames[1:]
    frac = np.arange(k) / k
    grid = a[:, None] + (b - a)[:, None] * frac[None, :]
    # A beat interval much longer than its neighbours spans a silence (beats there were
    # removed): its beat stands alone, nothing is subdivided inside the gap.
    typical = np_median(
        np.lib.stride_tricks.sliding_window_view(np.pad(b - a, 4, mode="edge"), 9), axis=1
    )
    gap = (b - a) > 1.5 * typical
    grid[gap, 1:] = np.nan
    frames = grid.reshape(-1)
    frames = np.append(frames[~np.isnan(frames)], beat_frames[-1])
    s = strength_at(odf, frames)
    top = np_percentile(s, 95) if s.size else 1.0
    conf = np.clip(s / (top + 1e-9), 0.0, 1.0)
    return frames / rate, conf
