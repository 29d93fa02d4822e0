"""Key and mode by key-profile correlation (Krumhansl & Schmuckler's method).

The summed chroma of the excerpt is correlated (Pearson) with the 24 rotations of a major and
a minor key profile; the best rotation is the key. We use Temperley's profiles (Kostka-Payne
corpus, 2007): their near-zero weights on out-of-scale degrees separate neighbouring keys better
on audio chroma than Krumhansl-Kessler's probe-tone ratings, which give every degree weight.

Confidences are 0..1 and grow with both the best correlation and its margin:
``key_confidence`` over the best key with another tonic (often the relative major/minor, which
shares the pitches), ``mode_confidence`` over the same tonic in the other mode (C minor against
C major: does the third and sixth say minor?).
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import is_spilled, row_chunks
from featherbeat.analysis.profile import Tonality

# Temperley (2007), "Music and Probability", Kostka-Payne profiles; index 0 = tonic.
MAJOR_PROFILE = np.array(
    [0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400]
)
MINOR_PROFILE = np.array(
    [0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330]
)
MARGIN_SCALE = 0.05  # a correlation margin of ~0.15 gives a confidence near the correlation
# Digital silence leaves FFT round-off (~1e-13) in the chroma; a -60 dBFS tone gives ~0.5 per
# frame (magnitude sums of a 2048-point FFT). Below this mean per-frame peak there is no key.
SILENT_LEVEL = 1e-4
FLAT_RATIO = 1e-3  # a chroma whose spread is below this fraction of its peak has no pitch


def _templates() -> np.ndarray:
    """(2, 12, 12): [mode (0 minor, 1 major), tonic, pitch class] z-scored profiles."""
    rows = []
    for profile in (MINOR_PROFILE, MAJOR_PROFILE):
        rot = np.stack([np.roll(profile, k) for k in range(12)])
        rot = (rot - rot.mean(axis=1, keepdims=True)) / rot.std(axis=1, keepdims=True)
        rows.append(rot)
    return np.stack(rows)


_TEMPLATES = _templates()


def key_scores(chroma: np.ndarray) -> np.ndarray:
    """(2, 12) Pearson correlations of the summed chroma with every mode x tonic template."""
    c = _validated(chroma)
    # Sum in float64 without a float64 copy of the input (an hour of chroma is 7 MB float32).
    v = _column_sums(c)
    if not np.all(np.isfinite(v)):  # rare: NaN/Inf frames; only then pay for a cleaned copy
        v = _column_sums(c, clean=True)
    v = np.clip(v, 0.0, None)
    spread = v.max() - v.min()
    silent = v.max() <= SILENT_LEVEL * max(c.shape[0], 1)
    if silent or spread <= FLAT_RATIO * v.max():
        return np.zeros((2, 12))
    z = (v - v.mean()) / v.std()
    return _TEMPLATES @ z / 12.0


def _column_sums(c: np.ndarray, clean: bool = False) -> np.ndarray:
    """Sum over frames in float64. A long track's chroma (kept in a temp file) is summed chunk
    by chunk so it is never resident whole; in memory it is one call, as it always was."""
    if not is_spilled(c):
        if clean:
            c = np.nan_to_num(c, nan=0.0, posinf=0.0, neginf=0.0)
        return np.asarray(c.sum(axis=0, dtype=np.float64))
    total = np.zeros(c.shape[1:], dtype=np.float64)
    for _, part in row_chunks(c):
        if clean:
            part = np.nan_to_num(part, nan=0.0, posinf=0.0, neginf=0.0)
        total += part.sum(axis=0, dtype=np.float64)
    return total


def _validated(chroma: np.ndarray) -> np.ndarray:
    c = np.asarray(chroma)
    if c.dtype.kind not in "fiu":
        raise ValueError(f"chroma must be numeric, got dtype {c.dtype}")
    if c.ndim == 1 and c.shape[0] == 12:
        c = c[None, :]
    if c.ndim != 2 or c.shape[1] != 12:
        raise ValueError(f"chroma must have shape (frames, 12), got {c.shape}")
    return c


def _confidence(best: float, rival: float) -> float:
    return float(np.clip(best, 0.0, 1.0) * (1.0 - np.exp(-max(best - rival, 0.0) / MARGIN_SCALE)))


def estimate_key(chroma: np.ndarray) -> Tonality:
    """Key (0 = C .. 11 = B) and mode (1 major, 0 minor) of ``chroma`` (frames x 12, C..B).

    Silence, noise with a flat chroma, and no frames give key -1, mode -1, confidences 0.
    """
    scores = key_scores(chroma)
    if not np.any(scores):
        return Tonality()
    mode, tonic = np.unravel_index(int(np.argmax(scores)), scores.shape)
    best = float(scores[mode, tonic])
    other_tonics = np.delete(scores, tonic, axis=1)
    return Tonality(
        key=int(tonic),
        key_confidence=_confidence(best, float(other_tonics.max())),
        mode=int(mode),
        mode_confidence=_confidence(best, float(scores[1 - mode, tonic])),
    )
