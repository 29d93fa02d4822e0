"""A growable array for per-frame results: amortised appends, one final trim, no list of chunks.

Collecting chunks in a list and concatenating at the end briefly holds every curve twice; for an
hour of chroma and timbre that is the largest allocation of the whole analysis. Growing one
array in place (x1.5, starting from the expected length when the header gives it) avoids it.
"""

from __future__ import annotations

import numpy as np


class GrowingArray:
    def __init__(self, width: int | None = None, capacity: int = 1024) -> None:
        self._shape_tail = () if width is None else (int(width),)
        self._data = np.zeros((max(16, int(capacity)), *self._shape_tail), dtype=np.float32)
        self._n = 0

    def extend(self, rows: np.ndarray) -> None:
        k = rows.shape[0]
        if self._n + k > self._data.shape[0]:
            cap = max(self._n + k, int(self._data.shape[0] * 1.5))
            grown = np.zeros((cap, *self._shape_tail), dtype=np.float32)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n : self._n + k] = rows
        self._n += k

    def __len__(self) -> int:
        return self._n

    def result(self) -> np.ndarray:
        """The rows so far, as a view: never a copy.

        The spare capacity behind the view was allocated with ``np.zeros`` and never written,
        so the kernel has not given it pages: it costs address space, not resident memory.
        A copy here would briefly double the largest arrays of the analysis.
        """
        return self._data[: self._n]
