"""Spectral centroid in Hz: the magnitude-weighted mean frequency, a cheap brightness measure."""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import GrowingArray


class Centroid:
    def __init__(self, frequencies: np.ndarray, capacity: int = 1024) -> None:
        self._freqs = np.asarray(frequencies, dtype=np.float32)
        self._out = GrowingArray(capacity=capacity)

    def update(self, magnitude: np.ndarray) -> None:
        total = magnitude.sum(axis=1)
        weighted = magnitude @ self._freqs
        # Silent frames have no brightness: 0 Hz rather than a division by zero.
        self._out.extend(np.where(total > 1e-6, weighted / np.maximum(total, 1e-12), 0.0))

    def result(self) -> np.ndarray:
        return self._out.result()
