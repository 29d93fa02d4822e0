"""Key and mode by key-profile correlation (Krumhansl & Schmuckler's method) on a tonal chroma.

The chroma (features/chroma.py: spectral peaks, tuned, harmonically weighted) is normalised per
frame to max 1, so every sounding frame contributes its *shape* and a loud drum hit or a held
bass note does not outvote the rest; frames more than ``LEVEL_GATE_DB`` below the track's loud
frames fade out of the sum (silence, fades, reverb tails). The summed profile is correlated
(Pearson) with the 24 rotations of a major and a minor key profile; the best is the key.

Profiles: Albrecht & Shanahan (2013), pitch-class distributions of a corpus of 490 Western
classical pieces, chosen on dev among six published pairs (Krumhansl-Kessler 1982, Temperley
2007 Kostka-Payne, Aarden 2003 Essen, Bellman 2005, Sha'ath 2011, Albrecht-Shanahan 2013;
docs/benchmarks/key.md): like Temperley's, their near-zero weights on chromatic degrees separate
neighbouring keys, and their minor profile weighs the tonic and fifth most, which suits rock,
blues and metal, where minor modes dominate. Frame- and segment-wise voting (4 s segments) was
measured and not better than the one sum (docs/benchmarks/key.md), so the sum stays.

Confidences are 0..1. ``key_confidence`` is the best correlation mapped from 0.6..1 onto 0..1:
how well the chroma fits its key profile at all. ``mode_confidence`` grows with the best
correlation and its margin over the same tonic in the other mode (C minor against C major: does
the third and sixth say minor?). On dev, exact accuracy rises with
``key_confidence`` (the table in docs/benchmarks/key.md). No peaks at all (silence, a constant
level, DC), a flat chroma, or one whose shape does not hold for a second (noise: its peaks move
at random from frame to frame) gives key -1, mode -1, confidences 0.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import row_chunks
from featherbeat.analysis.features.chroma import chroma_peakiness
from featherbeat.analysis.profile import Tonality
from featherbeat.analysis.spans import percentile

# Albrecht & Shanahan (2013), "The use of large corpora to train a new type of key-finding
# algorithm", Music Perception 31(1); index 0 = tonic.
MAJOR_PROFILE = np.array(
    [0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081]
)
MINOR_PROFILE = np.array(
    [0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052]
)
MARGIN_SCALE = 0.05  # a correlation margin of ~0.15 gives a confidence near the correlation
# key_confidence maps the best correlation from CHANCE_CORRELATION..1 onto 0..1. On dev the
# correlation alone sorts right from wrong keys better than any margin over the next key did
# (the relative key is nearly always close, right or wrong): exact accuracy by thirds 0.50 /
# 0.59 / 0.94 against 0.67 / 0.53 / 0.82 for correlation x margin (docs/benchmarks/key.md).
# 0.6: a best-of-24 correlation below it says little (unrelated pitch sets reach it), and it
# puts the median confidence of full songs (0.56 on bench/fidelity.py's 10) inside Spotify's
# range (0.42-0.64 in its responses); with 0.5 the median was 0.65, just above.
CHANCE_CORRELATION = 0.6
LEVEL_GATE_DB = 30.0  # frames this far (in chroma power) below the loud frames count less
# Below this per-frame chroma power nothing sounds: a peak at the chroma's floor (a -100 dBFS
# sine) has power 2.6e-5; digital round-off in a chroma handed in from elsewhere is far below.
SILENT_LEVEL = 1e-6
FLAT_RATIO = 1e-3
# Below this 1-second chroma peakiness the sound is noise, not notes (features/chroma.py:
# white and red noise measured <= 1.44, the 52 key-labelled dev clips >= 1.63): no key.
MIN_TONAL_PEAKINESS = 1.5  # a chroma whose spread is below this fraction of its peak has no pitch


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
    v = key_profile(chroma)
    if v is None:
        return np.zeros((2, 12))
    z = (v - v.mean()) / v.std()
    return _TEMPLATES @ z / 12.0


def key_profile(chroma: np.ndarray) -> np.ndarray | None:
    """The level-gated sum of the max-normalised frames (12 values), None when nothing sounds.

    Two sweeps in chunks (features/_store.row_chunks): a long track's chroma kept in a temp
    file is never resident whole, and no float64 copy of it is made.
    """
    c = _validated(chroma)
    if c.shape[0] == 0:
        return None
    # Each frame's peak in the chroma's own float32 (exact: a maximum), half a float64 array;
    # the weights below are computed from it in float64 a chunk at a time, with the same
    # values as from a float64 copy (six hours: 7.5 MB per float64 array of frames).
    peak = np.empty(c.shape[0], dtype=np.float32 if c.dtype == np.float32 else np.float64)
    for a, part in row_chunks(c):
        peak[a : a + part.shape[0]] = part.max(axis=1)
    np.clip(peak, 0.0, None, out=peak)
    np.nan_to_num(peak, copy=False, nan=0.0, posinf=0.0)  # damaged frames: out
    loud = percentile(peak, 95)
    if not loud > SILENT_LEVEL:
        return None
    # Weight = 1 for frames within the gate of the loud ones, proportional to level below it.
    gate = loud * 10.0 ** (-LEVEL_GATE_DB / 10.0)  # chroma is power: dB / 10
    v = np.zeros(12)
    for a, part in row_chunks(c):
        p = peak[a : a + part.shape[0]].astype(np.float64)
        w = np.minimum(p / gate, 1.0) / np.where(p > 0.0, p, 1.0)
        if not np.all(np.isfinite(part)):  # rare: only a damaged chunk pays for a cleaned copy
            part = np.nan_to_num(part, nan=0.0, posinf=0.0, neginf=0.0)
        v += w @ part  # float64: the weights are
    v = np.clip(v, 0.0, None)
    spread = v.max() - v.min()
    if not v.max() > 0.0 or spread <= FLAT_RATIO * v.max():
        return None
    return v


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

    Silence, a constant level, a flat chroma and no frames give key -1, mode -1, confidences 0.
    """
    scores = key_scores(chroma)
    if not np.any(scores) or chroma_peakiness(_validated(chroma)) < MIN_TONAL_PEAKINESS:
        return Tonality()
    mode, tonic = np.unravel_index(int(np.argmax(scores)), scores.shape)
    best = float(scores[mode, tonic])
    return Tonality(
        key=int(tonic),
        key_confidence=float(
            np.clip((best - CHANCE_CORRELATION) / (1.0 - CHANCE_CORRELATION), 0, 1)
        ),
        mode=int(mode),
        mode_confidence=_confidence(best, float(scores[1 - mode, tonic])),
    )
