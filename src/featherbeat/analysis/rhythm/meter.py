"""Meter and downbeats from beat-synchronous features.

Why these features: bars tend to start with a bass note or kick (low-band onset), with a
louder accent (full-band onset), and with a chord change (chroma differs from the previous
beat). For each meter M in 3..7 and each phase, we ask how much the beats at the phase stand
out from the others (a two-sample contrast in units of the beat-level spread). A prior favours
4 and 3 because they cover nearly all popular and classical music; 5, 6 (as 6 beats) and 7
need a clearly stronger contrast.
"""

from __future__ import annotations

import numpy as np

METERS = (3, 4, 5, 6, 7)
METER_PRIOR = {3: 0.0, 4: 0.25, 5: -0.6, 6: -0.4, 7: -0.6}  # added to the contrast (z units)


def beat_sync_mean(
    curve: np.ndarray, rate: float, beat_times: np.ndarray, lo: float, hi: float
) -> np.ndarray:
    """Mean of ``curve`` from lo to hi seconds around each beat."""
    if curve.size == 0 or beat_times.size == 0:
        return np.zeros(beat_times.size)
    c = np.concatenate([[0.0], np.cumsum(curve, dtype=np.float64)])
    a = np.clip(np.round((beat_times + lo) * rate).astype(int), 0, curve.size - 1)
    b = np.clip(np.round((beat_times + hi) * rate).astype(int) + 1, a + 1, curve.size)
    return (c[b] - c[a]) / (b - a)


def chroma_change(chroma: np.ndarray, rate: float, beat_times: np.ndarray) -> np.ndarray:
    """1 - cosine similarity between the chroma of the beat starting here and of the beat before."""
    nb = beat_times.size
    if chroma.ndim != 2 or chroma.shape[0] == 0 or nb < 2:
        return np.zeros(nb)
    edges = np.clip(np.round(beat_times * rate).astype(int), 0, chroma.shape[0] - 1)
    edges = np.append(
        edges, min(chroma.shape[0], edges[-1] + max(1, int(np.median(np.diff(edges)))))
    )
    c = np.concatenate([np.zeros((1, 12)), np.cumsum(chroma, axis=0, dtype=np.float64)])
    seg = c[np.maximum(edges[1:], edges[:-1] + 1)] - c[edges[:-1]]
    seg /= np.linalg.norm(seg, axis=1, keepdims=True) + 1e-9
    out = np.zeros(nb)
    out[1:] = 1.0 - np.sum(seg[1:] * seg[:-1], axis=1)
    return out


def _z(x: np.ndarray) -> np.ndarray:
    s = float(np.std(x))
    return (x - float(np.mean(x))) / s if s > 1e-9 else np.zeros_like(x)


def accent(features: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted sum of z-scored beat-level features (the "downbeat-ness" of each beat)."""
    acc = np.zeros(features[0].size)
    for f, w in zip(features, weights, strict=True):
        acc += w * _z(np.asarray(f, dtype=np.float64))
    return acc


def meter_scores(acc: np.ndarray) -> dict[int, tuple[float, int]]:
    """For each meter: (best contrast incl. prior, phase of the downbeat in beat index)."""
    out: dict[int, tuple[float, int]] = {}
    n = acc.size
    for m in METERS:
        if n < 2 * m:
            continue
        best, best_phase = -np.inf, 0
        for ph in range(m):
            on = acc[ph::m]
            mask = np.ones(n, bool)
            mask[ph::m] = False
            off = acc[mask]
            # Welch-like contrast: difference of means over the pooled standard error.
            se = np.sqrt(on.var() / on.size + off.var() / off.size) + 1e-9
            c = (on.mean() - off.mean()) / se / np.sqrt(n)
            if c > best:
                best, best_phase = c, ph
        out[m] = (best + METER_PRIOR[m] / np.sqrt(max(n, 1)) * 4, best_phase)
    return out


def downbeats(acc: np.ndarray) -> tuple[int, float, np.ndarray]:
    """(beats per bar, confidence 0..1, 1-based position in bar for every beat)."""
    n = acc.size
    if n == 0:
        return 4, 0.0, np.zeros(0, dtype=np.int16)
    scores = meter_scores(acc)
    if not scores:
        return 4, 0.0, ((np.arange(n) % 4) + 1).astype(np.int16)
    ranked = sorted(scores.items(), key=lambda kv: kv[1][0], reverse=True)
    meter, (s, phase) = ranked[0]
    runner = ranked[1][1][0] if len(ranked) > 1 else 0.0
    conf = float(np.clip(s - runner, 0.0, 1.0))
    pos = ((np.arange(n) - phase) % meter + 1).astype(np.int16)
    return meter, conf, pos
