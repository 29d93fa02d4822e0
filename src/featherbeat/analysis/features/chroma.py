"""Chroma: spectral magnitude folded onto the 12 pitch classes (C, C#, ..., B).

Each FFT bin between ~65 Hz and 5 kHz is shared between the two nearest semitones by a
triangular weight on the log-frequency axis (so a note between bins is not lost), then the
semitones are folded to pitch classes. Below ~65 Hz a 2048-point FFT at 22 050 Hz cannot tell
semitones apart; above 5 kHz there is mostly noise and cymbals. Values are magnitude sums,
NOT normalised per frame: quiet frames stay small, so a key estimate can weigh frames by level,
and segments normalise to max 1 themselves.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import GrowingArray

CHROMA_FMIN = 65.0
CHROMA_FMAX = 5000.0


def chroma_matrix(frequencies: np.ndarray) -> np.ndarray:
    """(bins, 12) weights folding FFT bins onto pitch classes, C = 0."""
    freqs = np.asarray(frequencies, dtype=np.float64)
    weights = np.zeros((freqs.shape[0], 12), dtype=np.float32)
    usable = (freqs >= CHROMA_FMIN) & (freqs <= CHROMA_FMAX)
    midi = 69.0 + 12.0 * np.log2(freqs[usable] / 440.0)
    lower = np.floor(midi)
    frac = midi - lower  # share going to the upper semitone
    rows = np.nonzero(usable)[0]
    np.add.at(weights, (rows, lower.astype(int) % 12), (1.0 - frac).astype(np.float32))
    np.add.at(weights, (rows, (lower.astype(int) + 1) % 12), frac.astype(np.float32))
    return weights


class Chroma:
    def __init__(self, frequencies: np.ndarray, capacity: int = 1024) -> None:
        self._matrix = chroma_matrix(frequencies)
        self._out = GrowingArray(12, capacity=capacity)

    def update(self, magnitude: np.ndarray) -> None:
        self._out.extend(magnitude @ self._matrix)

    def result(self) -> np.ndarray:
        return self._out.result()
