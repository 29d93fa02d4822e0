"""Choosing among beat readings by maximum mutual agreement (a committee of trackers).

Several trackers read the same track (the DSP, fused and learned ones of this package). Where
they are right they tend to agree; where the music is hard their errors differ. So each reading
is compared with every other, and the one that agrees most with the rest is kept (Holzapfel,
Davies, Zapata, Oliveira & Gouyon 2012; Zapata, Davies & Gómez 2014, "MaxMA"). How much the
readings agree on average (the mean mutual agreement, MMA) was found there to predict how good
the chosen beats are, without any annotation.

Agreement here is the beat-error information gain of Davies, Degara & Plumbley (2009), made
symmetric and scaled to 0..1: for each beat of one sequence, its offset from the nearest beat
of the other, as a fraction of the other's beat interval there, goes into a circular histogram;
a sequence that keeps a constant relation to the other (the same beats, a steady phase shift,
or twice as many beats) gives a peaked histogram, an unrelated one a flat histogram. Nothing
here is fitted: the number of bins is the published one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BINS = 41  # histogram bins of the beat error (Davies et al. 2009; mir_eval's default)


def beat_errors(beats: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Offset of each beat from the nearest reference beat, in reference beat intervals,
    wrapped to [-0.5, 0.5). Needs at least 2 reference beats."""
    ref = np.asarray(reference, dtype=np.float64)
    b = np.asarray(beats, dtype=np.float64)
    # Each beat is placed within the reference interval that contains it (the intervals at the
    # ends extended), so an error of half an interval is the same either way round.
    k = np.clip(np.searchsorted(ref, b, side="right") - 1, 0, ref.size - 2)
    phase = (b - ref[k]) / (ref[k + 1] - ref[k])
    return (phase + 0.5) % 1.0 - 0.5


def _information(errors: np.ndarray, bins: int) -> float:
    """1 - entropy / log2(bins) of the errors' circular histogram: 1 for a constant error,
    about 0 for errors spread evenly."""
    if errors.size == 0:
        return 0.0
    idx = np.round(errors * bins).astype(np.int64) % bins
    p = np.bincount(idx, minlength=bins)[:bins] / errors.size
    p = p[p > 0]
    return float(1.0 + np.sum(p * np.log2(p)) / np.log2(bins))


def agreement(a: np.ndarray, b: np.ndarray, bins: int = BINS) -> float:
    """Symmetric beat agreement in 0..1: the lower of the two directions' information gains
    (a against b and b against a; each alone is blind to one sequence having extra beats).
    1 for identical sequences; 0 when either has fewer than 2 beats."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return 0.0
    return min(_information(beat_errors(a, b), bins), _information(beat_errors(b, a), bins))


def agreement_matrix(readings: Sequence[np.ndarray], bins: int = BINS) -> np.ndarray:
    """(n, n) pairwise agreements, 1 on the diagonal (symmetric by construction)."""
    n = len(readings)
    m = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            m[i, j] = m[j, i] = agreement(readings[i], readings[j], bins)
    return m


def mean_agreement(matrix: np.ndarray) -> np.ndarray:
    """Each reading's mean agreement with the others."""
    n = matrix.shape[0]
    if n < 2:
        return np.ones(n)
    return (matrix.sum(axis=1) - np.diag(matrix)) / (n - 1)


def choose(readings: Sequence[np.ndarray], bins: int = BINS) -> tuple[int, float]:
    """(index of the reading that agrees most with the others, mean mutual agreement).

    Ties go to the earlier reading, so the caller lists its preferred reading first. The mean
    mutual agreement is the mean over all pairs (0..1; 1 when all readings are the same).
    """
    if not readings:
        raise ValueError("no readings to choose from")
    m = agreement_matrix(readings, bins)
    n = m.shape[0]
    if n == 1:
        return 0, 1.0
    per = mean_agreement(m)
    best = int(np.argmax(per))  # argmax returns the first of equal maxima
    mma = float(m[np.triu_indices(n, 1)].mean())
    return best, mma
