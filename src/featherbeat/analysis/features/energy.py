"""RMS energy and loudness (dBFS) per frame, read from the STFT's power spectrum (Parseval).

Loudness is plain dBFS of the Hann-weighted mean square: a full-scale sine reads -3 dB, silence
reads the floor. No perceptual weighting: Spotify's own loudness values track plain dB closely
and a weighting filter would cost a pass over the signal for little gain.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import GrowingArray
from featherbeat.analysis.profile import LOUDNESS_FLOOR_DB


def loudness_db(mean_square: np.ndarray) -> np.ndarray:
    """dBFS of a mean square, floored at ``LOUDNESS_FLOOR_DB``."""
    floor = 10.0 ** (LOUDNESS_FLOOR_DB / 10.0)
    db = 10.0 * np.log10(np.maximum(mean_square, floor))
    return np.maximum(db, LOUDNESS_FLOOR_DB).astype(np.float32)  # exactly -60, not -60.000004


class Energy:
    """Accumulates RMS (linear 0..1) and loudness (dBFS) from per-frame mean squares."""

    def __init__(self, capacity: int = 1024) -> None:
        self._rms = GrowingArray(capacity=capacity)
        self._loudness = GrowingArray(capacity=capacity)

    def update(self, mean_square: np.ndarray) -> None:
        ms = np.clip(mean_square, 0.0, 1.0)
        self._rms.extend(np.sqrt(ms))
        self._loudness.extend(loudness_db(ms))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(loudness dBFS, RMS)."""
        return self._loudness.result(), self._rms.result()
