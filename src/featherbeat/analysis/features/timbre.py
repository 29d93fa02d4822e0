"""Timbre: a segment's spectro-temporal surface projected on 12 basis functions (Echo Nest's).

The Echo Nest documentation describes timbre as "a linear combination of 12 basis functions"
of a segment's spectro-temporal surface (time x frequency x level), the first one flat
(average loudness), the second brightness, the third flatness, the fourth attack, then finer
shapes. Spotify kept that format and scale. We build it in two linear steps:

1. Per frame (this class): 40 mel bands (40 Hz .. 10 kHz, each the *average* power of its bins,
   so wide bands do not read louder), level in dB of the power per bin of a full-scale-
   normalised spectrum (white noise at -20 dBFS reads -20 dB in every band), floored at
   ``FLOOR_DB``, then an orthonormal DCT-II over the bands. Stored per frame:
   column 0 = mean band level above the floor (0 for digital silence), columns 1..11 = the DCT
   coefficients 1..11 (column 1 negated, so that it grows with brightness). These are the
   frequency shapes of the surface; they are kept for sections too.
2. Per segment (:func:`segment_timbre`): the surface over the segment's frames is projected on
   12 separable time x frequency cosines (``BASIS``: (time order, frequency order) pairs, as
   the picture of Echo Nest's basis shows: flat, then frequency slopes and ripples, one attack
   shape (louder at the start than at the end) and one time ripple), then mapped to Spotify's
   scale by a per-dimension gain and a share of the level (a basis function with a non-zero
   mean responds to level; that is also why Spotify's silence vector is not all zeros).
   Dimension 1 is loudness-like: ``max(0, gain x level + offset)``, 0 for silence.
   Digital silence has a flat surface at the floor: every projection is 0, so the mapping
   gives exactly ``SILENCE`` (Spotify's and The Echo Nest's vector for silent segments).

Scale constants: fitted once (bench/fidelity.py) so that, over full-length songs, the median and
interquartile range of each dimension fall in the middle of the range of Spotify's genuine
responses (../shared/spotify/examples); they are constants, not tuned per track.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from featherbeat.analysis.features._store import CHUNK_ROWS, GrowingArray, release, scratch

N_MELS = 40
MEL_FMIN = 40.0
MEL_FMAX = 10000.0
# Floor of the surface, per bin of a full-scale-normalised spectrum. Low enough never to clip
# music (a floor at -100 dB clipped quiet high bands and moved section boundaries: 3.5 -> 3.9
# sections per minute on full songs); digital silence (FFT round-off, ~-360 dB) sits on it.
FLOOR_DB = -160.0

# Spotify's / The Echo Nest's timbre of a digitally silent segment (loudness -60 dB): a fixed
# point of their projection, found identical in 2010 and Spotify-era responses.
SILENCE = np.array(
    [0.0, 171.13, 9.469, -28.48, 57.491, -50.067, 14.833, 5.359, -27.228, 0.973, -10.64, -7.228]
)
# (time order, frequency order) of each basis function: 1 flat, 2 brightness (frequency slope),
# 3 flatness (frequency curvature), 4 attack (time slope), then frequency ripples, slope x attack
# and one time ripple.
BASIS = (
    (0, 0),
    (0, 1),
    (0, 2),
    (1, 0),
    (0, 3),
    (0, 4),
    (1, 1),
    (0, 5),
    (0, 6),
    (0, 7),
    (2, 0),
    (0, 8),
)
# Per dimension: timbre = SILENCE + GAIN x projection + LEVEL x (mean level above the floor);
# dimension 1 instead max(0, GAIN x level + LEVEL). Fitted with bench/fidelity.py --fit-timbre
# (10 full-length freely licensed songs against Spotify's 12 responses). Dimension 1's gain,
# 0.91 per dB, matches the 0.88-0.97 x loudness_max slope of Spotify's own responses.
GAIN = np.array(
    [
        0.9135,
        2.4142,
        3.4567,
        23.2951,
        3.0915,
        5.3074,
        4.7624,
        4.0682,
        3.2947,
        2.9473,
        16.7491,
        3.0672,
    ]
)
LEVEL = np.array(
    [
        -37.3778,
        0.5719,
        -0.6238,
        -0.0388,
        -0.7037,
        0.2122,
        -0.4168,
        -0.2203,
        0.2183,
        -0.0341,
        0.1016,
        0.2018,
    ]
)


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
    """Per-frame frequency shape of the surface (see the module docstring, step 1)."""

    def __init__(self, frequencies: np.ndarray, capacity: int = 1024, n_fft: int = 2048) -> None:
        # Power per bin -> mean square per bin of a full-scale signal: a periodic Hann window
        # of n_fft has sum(w^2) = 3 n_fft / 8, and a one-sided spectrum holds half the power
        # in each of ~n_fft / 2 bins, so white noise of mean square s reads s in every bin.
        scale = 2.0 / (n_fft * 3.0 * n_fft / 8.0)
        self._mel = mel_matrix(frequencies) * np.float32(scale)
        dct = dct_matrix(N_MELS, 12)
        dct[:, 0] = 1.0 / N_MELS  # -> plain mean of the band levels
        dct[:, 1] *= -1.0  # brightness grows with high-frequency level
        self._dct = dct
        self._out = GrowingArray(12, capacity=capacity)

    def update(self, power: np.ndarray) -> None:
        bands = power @ self._mel
        # dB above the floor, >= 0; log10(1) is exactly 0, so digital silence is a flat
        # surface at exactly 0 (subtracting the floor after the log leaves round-off).
        bands *= np.float32(10.0 ** (-FLOOR_DB / 10.0))
        level = 10.0 * np.log10(np.maximum(bands, np.float32(1.0)))
        self._out.extend(level @ self._dct)

    def result(self) -> np.ndarray:
        return self._out.result()


def surface_projections(frames: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """(segments, 12) projections of each segment's surface on ``BASIS`` (step 2, before scale).

    ``frames``: the (n, 12) per-frame curve of :class:`Timbre`; segment k spans frames
    [starts[k], starts[k+1]) (the last ends at ``n``). A time order t weighs frame i of a
    T-frame segment by cos(pi t (i + 0.5) / T) (DCT-II along time), normalised so that a
    surface of value 1 where the weight is positive and -1 where it is negative reads 1.
    """
    out = np.empty((np.size(starts), 12))
    for i, j, proj in _projection_groups(frames, starts, n, CHUNK_ROWS):
        out[i:j] = proj
    return out


def _projection_groups(
    frames: np.ndarray, starts: np.ndarray, n: int, group_frames: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(i, j, projections of segments i..j-1) for groups of segments spanning about
    ``group_frames`` frames, cut at segment starts.

    Each segment's sums are the same whatever its group (its own frames, in the same order),
    but the weights and the weighted copy of the frames (12 float64 per frame: 90 MB for six
    hours) exist for one group at a time, and a long track's timbre (mapped from a temp file)
    is resident one group at a time.
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.diff(np.append(starts, n))
    i = 0
    while i < starts.size:
        lo = int(starts[i])
        j = max(i + 1, int(np.searchsorted(starts, lo + group_frames, side="right")) - 1)
        hi = int(starts[j]) if j < starts.size else n
        proj = _projections(frames[lo:hi], starts[i:j] - lo, lengths[i:j], hi - lo)
        release(frames)
        yield i, j, proj
        i = j


def _projections(frames: np.ndarray, starts: np.ndarray, lengths: np.ndarray, n: int) -> np.ndarray:
    seg = np.repeat(np.arange(starts.size), lengths)
    pos = (np.arange(n) - starts[seg] + 0.5) / lengths[seg]
    out = np.empty((starts.size, 12))
    for t in sorted({t for t, _ in BASIS}):
        w = np.cos(np.pi * t * pos)
        norm = np.add.reduceat(np.abs(w), starts) if t else lengths.astype(np.float64)
        cols = [d for d, (tt, _) in enumerate(BASIS) if tt == t]
        freq = [BASIS[d][1] for d in cols]
        sums = np.add.reduceat(frames[:, freq] * w[:, None], starts, axis=0, dtype=np.float64)
        out[:, cols] = sums / np.maximum(norm, 1e-9)[:, None]
    return out


# Frames per group when mapping segments to Spotify's scale: the group's float64 temporaries
# are ~1.6 MB (65 536 frames: ~6 MB), and the Python loop runs ~60 times an hour, not 15.
_TIMBRE_GROUP_FRAMES = 1 << 14


def segment_timbre(
    frames: np.ndarray, starts: np.ndarray, n: int, dtype: type = np.float64
) -> np.ndarray:
    """(segments, 12) timbre on Spotify's scale (see the module docstring), as ``dtype``.

    Projected and mapped a group of segments at a time, straight into the result: the same
    float64 arithmetic per element (then one rounding to ``dtype``, as ``astype`` does),
    without the projections of all segments, three temporaries their size and a float64
    result beside the float32 one (six hours, ~70 000 segments: 6.7 MB each).
    """
    # A result past 1 MB (~45 minutes of segments as float32) lives in a temp file (it is kept
    # until the JSON is written, ~1.4 MB an hour as float32): written a group at a time, each
    # group's pages given back after it.
    out: np.ndarray = scratch((np.size(starts), 12), dtype)
    for i, j, p in _projection_groups(frames, starts, n, _TIMBRE_GROUP_FRAMES):
        level = p[:, :1]  # mean band level above the floor: the flat basis function
        rows = SILENCE[None, :] + GAIN[None, :] * p + LEVEL[None, :] * level
        rows[:, 0] = np.maximum(0.0, GAIN[0] * p[:, 0] + LEVEL[0])
        out[i:j] = rows
        release(out)
    return out
