"""Timbre: the first 12 DCT coefficients of the log-mel spectrum, on Spotify's scale.

Spotify describes its 12 timbre dimensions as a basis of spectro-temporal shapes, the first
tracking loudness and the second brightness; clients compute distances on the raw numbers
(e.g. the Eternal Jukebox adds timbre distance to 10 x pitch distance), so the scale matters
more than the exact basis. We use the classic cepstral basis (MFCC-like: 40 mel bands, log,
DCT-II) and rescale it to the ranges seen in Spotify's responses (see
../shared/spotify/README.md):

- dim 1: mean log-mel level, offset so that a segment's average reads like Spotify's
  (~ 0.9 x loudness_max + 55, i.e. 15..55 on music), clipped at 0 (silence);
- dim 2: brightness, sign flipped so that more high-frequency energy is positive (~-200..140);
- dims 3..12: higher cepstral shape, scaled to roughly +-100.

The scale factors were fitted once on a few freely licensed tracks so that the spread of each
dimension matches Spotify's published examples; they are constants, not tuned per track.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import GrowingArray

N_MELS = 40
MEL_FMIN = 40.0
MEL_FMAX = 10000.0
FLOOR_DB = -100.0
# dim 1 = mean band level (dB) + offset, clipped at 0. Checked on the segments of 70 real tracks:
# dim 1 = 1.10 x loudness_max + 57.3 here, mean 39 (Spotify's examples: 0.88..0.97 x + 54.5..57.3,
# means 35 and 45).
LEVEL_OFFSET = 40.0
# Dims 2..12: (raw orthonormal-DCT coefficient - typical value on music) x gain. Gains map the
# spread of ~0.3 s averages on ten freely licensed tracks (rock, classical, jazz, electronic,
# game music) to the spread in Spotify's examples; the centre keeps each dimension around 0.
# The negative gain makes dim 2 grow with brightness, as Spotify's does.
GAINS = np.array([-1.85, 2.35, 3.7, 3.3, 2.95, 4.4, 3.0, 3.7, 3.1, 2.8, 4.2], dtype=np.float32)
CENTRES = np.array([83.3, 13.5, 10.8, 1.8, 2.7, -0.2, 1.0, -1.8, 0.4, -1.8, 0.1], dtype=np.float32)


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_matrix(frequencies: np.ndarray, n_mels: int = N_MELS) -> np.ndarray:
    """(bins, n_mels) triangular filters, each normalised to average (not sum) its bins' power.

    Averaging keeps a band's value a power *density*, so wide high bands do not read louder
    than narrow low ones for the same spectrum level.
    """
    freqs = np.asarray(frequencies, dtype=np.float64)
    fmax = min(MEL_FMAX, float(freqs[-1]))
    edges = _mel_to_hz(np.linspace(_hz_to_mel(MEL_FMIN), _hz_to_mel(fmax), n_mels + 2))
    weights = np.zeros((freqs.shape[0], n_mels), dtype=np.float64)
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rise = (freqs - lo) / max(mid - lo, 1e-9)
        fall = (hi - freqs) / max(hi - mid, 1e-9)
        tri = np.maximum(0.0, np.minimum(rise, fall))
        if tri.sum() == 0.0:  # narrower than one bin: take the nearest bin
            tri[np.argmin(np.abs(freqs - mid))] = 1.0
        weights[:, m] = tri / tri.sum()
    return weights.astype(np.float32)


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_in, n_out) orthonormal DCT-II basis."""
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[:, 0] = np.sqrt(1.0 / n_in)
    return basis.astype(np.float32)


class Timbre:
    def __init__(self, frequencies: np.ndarray, capacity: int = 1024) -> None:
        self._mel = mel_matrix(frequencies)
        dct = dct_matrix(N_MELS, 12)
        # Fold the scaling into the basis: one matmul per block does it all.
        dct[:, 0] /= np.sqrt(1.0 / N_MELS) * N_MELS  # -> plain mean of the band levels
        dct[:, 1:] *= GAINS[None, :]
        self._dct = dct
        self._bias = np.concatenate(([LEVEL_OFFSET], -GAINS * CENTRES)).astype(np.float32)
        self._out = GrowingArray(12, capacity=capacity)

    def update(self, power: np.ndarray) -> None:
        bands = power @ self._mel
        level = 10.0 * np.log10(np.maximum(bands, 10.0 ** (FLOOR_DB / 10.0)))
        timbre = level @ self._dct
        timbre += self._bias
        np.maximum(timbre[:, 0], 0.0, out=timbre[:, 0])
        self._out.extend(timbre)

    def result(self) -> np.ndarray:
        return self._out.result()
