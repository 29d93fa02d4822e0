"""Waveform peaks for drawing: min and max of the signal per bucket, straight from the samples."""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import GrowingArray
from featherbeat.analysis.profile import ANALYSIS_SAMPLE_RATE, Peaks

BUCKET = 441
"""Samples per bucket: 50 buckets per second at 22 050 Hz, enough to draw a zoomed-in bar."""


class WaveformPeaks:
    def __init__(
        self, sample_rate: int = ANALYSIS_SAMPLE_RATE, bucket: int = BUCKET, capacity: int = 1024
    ) -> None:
        if bucket <= 0:
            raise ValueError("bucket must be positive")
        self.sample_rate, self.bucket = int(sample_rate), int(bucket)
        self._carry = np.zeros(0, dtype=np.float32)
        self._min = GrowingArray(capacity=capacity)
        self._max = GrowingArray(capacity=capacity)

    def push(self, block: np.ndarray) -> None:
        buf = np.concatenate((self._carry, np.asarray(block, dtype=np.float32)))
        whole = buf.shape[0] // self.bucket * self.bucket
        if whole:
            rows = buf[:whole].reshape(-1, self.bucket)
            # Clipped as they stream: a long track's peaks live in a read-only temp file.
            self._min.extend(np.clip(rows.min(axis=1), -1.0, 1.0))
            self._max.extend(np.clip(rows.max(axis=1), -1.0, 1.0))
        self._carry = buf[whole:]

    def finish(self) -> Peaks:
        if self._carry.shape[0]:  # the last, partial bucket
            self._min.extend(np.clip(self._carry.min(keepdims=True), -1.0, 1.0))
            self._max.extend(np.clip(self._carry.max(keepdims=True), -1.0, 1.0))
            self._carry = np.zeros(0, dtype=np.float32)
        low, high = self._min.result(), self._max.result()
        return Peaks(rate=self.sample_rate / self.bucket, min=low, max=high)
