"""Chroma for tonality: spectral peaks, tuned, harmonically weighted, folded onto C, C#, ..., B.

An HPCP-style pitch-class profile (Gómez 2006) computed from the shared 2048-point STFT
(22 050 Hz, 10.8 Hz bins: the same resolution as essentia's 4096 points at 44.1 kHz):

1. **Spectral peaks** between 100 Hz and 5 kHz: local maxima of the magnitude no more than 30 dB
   below the frame's largest bin, and above an absolute floor (a -100 dBFS sine). A peak's
   frequency and level come from a parabola through the log magnitudes of its bin and the two
   neighbours, so a partial is placed to a few cents even though the bins are a semitone wide
   at 150 Hz. Taking peaks instead of every bin keeps the broadband energy of drums and noise
   (which fills every bin) out of the pitch classes; a constant level or DC gives no peak at all.
2. **Tuning**: the deviation of the peaks from the equal-tempered A440 grid, as the
   amplitude-weighted circular mean over the first ``TUNING_WARMUP_S`` seconds that have peaks
   (recordings a quarter tone off A440 are common in GTZAN). Those frames are held as peak
   lists until the tuning is known, then folded; later frames are folded at once, so the
   stream stays bounded (a few hundred kB of warm-up peaks).
3. **Harmonic weighting**: a peak also counts, with weight ``HARMONIC_DECAY ** (h - 1)``, for
   the pitch whose ``h``-th harmonic (h = 2, 3, 4) it could be: an octave (same pitch class)
   or a twelfth (a fifth below). As HPCP's ``harmonics`` parameter.
4. **Folding**: each peak goes to its nearest semitone with weight cos²(π d) for a distance
   ``d`` of up to half a semitone, so a peak between two semitones counts little for either.

Values are sums of peak *power* per pitch class, not normalised per frame: quiet frames stay
small, so the key estimate can gate by level, and segments normalise to max 1 themselves. Power
(not magnitude, not log) was chosen on dev (docs/benchmarks/key.md): the loud notes carry the
key, and compressing lets reverb tails and bleed count as much as the chord. For the same
reason the 30 dB peak range loses nothing: a peak 30 dB down adds a thousandth of the loud one's
power, and the ~100 peaks per frame a 60 dB range found (the same keys on dev, 30 dB and 60 dB)
become ~25, which is most of the cost.

Cost (docs/benchmarks/key.md, bench/chroma_cpu.py): ~0.02-0.03 CPU-s per 3-minute song, from
~0.1 with the dense peak test and two harmonic folds this replaced.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import GrowingArray, row_chunks
from featherbeat.analysis.spans import np_median

CHROMA_FMIN = 100.0
CHROMA_FMAX = 5000.0
PEAK_RANGE_DB = 30.0  # peaks within this many dB of the frame's largest bin
_PEAK_RANGE = np.float32(10.0 ** (-PEAK_RANGE_DB / 20.0))
# Magnitude of a -100 dBFS sine in a 2048-point Hann frame (amplitude * N / 4): below it is
# round-off and resampler noise, never a note.
PEAK_FLOOR = np.float32(1e-5 * 2048 / 4)
HARMONICS = 4
HARMONIC_DECAY = 0.6
TUNING_WARMUP_S = 20.0
_FRAME_RATE_GUESS = 22050 / 512  # frames/s of the shared STFT, for the warm-up length


def spectral_peaks(
    magnitude: np.ndarray, lo: int, hi: int, df: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame index, semitones above A440, power) of the peaks in bins ``lo..hi`` of each frame.

    Frequencies and powers are parabolically interpolated on the log magnitude. Sparse on
    purpose (this is the chroma's whole cost): one comparison of the band with the frame's
    threshold, then only the bins above it (~15 % of the band at 30 dB) are checked against
    their neighbours, by index into the flat magnitude, and only the peaks among those (~5 %)
    are interpolated. A dense local-maximum test over the band and ``np.nonzero`` on a 2-D
    mask cost three times as much.
    """
    n = magnitude.shape[0]
    if n == 0 or hi <= lo:
        empty = np.zeros(0, dtype=np.float32)
        return np.zeros(0, dtype=np.int64), empty, empty
    m = np.ascontiguousarray(magnitude, dtype=np.float32)
    width = m.shape[1]
    threshold = np.maximum(m.max(axis=1) * _PEAK_RANGE, PEAK_FLOOR)
    above = np.flatnonzero(m[:, lo : hi + 1] > threshold[:, None])
    span = hi + 1 - lo
    j = above + (above // span) * (width - span) + lo  # flat index into m
    flat = m.reshape(-1)
    b = flat[j]
    left = flat[j - 1]
    right = flat[j + 1]
    # Integer indices, not a boolean mask per array: one nonzero, then cheap takes.
    keep = np.flatnonzero((b > left) & (b >= right))
    j, b, left, right = j[keep], b[keep], left[keep], right[keep]
    t = j // width
    tiny = np.float32(1e-30)  # an exactly zero neighbour (digital silence) is not -inf
    a = np.log(np.maximum(left, tiny))
    c = np.log(np.maximum(right, tiny))
    lb = np.log(b)
    ac = a - c
    # a < b >= c at a peak, so the curvature a - 2b + c is negative: the parabola has a maximum.
    offset = np.float32(0.5) * ac / np.minimum(a - np.float32(2.0) * lb + c, np.float32(-1e-12))
    log_mag = lb - np.float32(0.25) * ac * offset
    k = (j - t * width).astype(np.float32)
    semitones = np.float32(12.0) * np.log2((k + offset) * np.float32(df / 440.0))
    return t, semitones, np.exp(np.float32(2.0) * log_mag)


def fold(
    frames: np.ndarray, semitones: np.ndarray, power: np.ndarray, n: int, tuning: float
) -> np.ndarray:
    """(n, 12) pitch-class sums of the peaks, C = 0, with harmonic weighting.

    The peaks are folded once onto their own pitch classes; the harmonic weighting is then a
    12 x 12 matrix on that fold (``_HARMONIC_MATRIX``): harmonics 2 and 4 are octaves (the same
    pitch class), harmonic 3 is taken as 19 equal-tempered semitones (an octave and a fifth;
    the true 19.02 differs by 2 cents, a change of the cos² weight below 0.4 %). One fold
    instead of one per distinct harmonic halves the per-peak work.
    """
    if frames.size == 0:
        return np.zeros((n, 12))
    # Semitones above C, offset by _PC_BIAS octaves so that they are positive (the band is
    # 100 Hz - 5 kHz: C2..D#8): truncation is then floor, and the pitch class a table lookup
    # instead of an integer modulo.
    s = semitones - np.float32(tuning - 9.0 - 12.0 * _PC_BIAS - 0.5)
    nearest = s.astype(np.int64)  # floor(s + 0.5) in the biased semitones
    d = s - nearest.astype(np.float32) - np.float32(0.5)  # distance to it, -0.5..0.5
    w = power * np.cos(np.float32(np.pi) * d) ** 2
    idx = frames * 12 + _PITCH_CLASS[nearest]
    own = np.bincount(idx, weights=w, minlength=n * 12).reshape(n, 12)
    return own @ _HARMONIC_MATRIX


def _harmonic_matrix() -> np.ndarray:
    """(12, 12): row = pitch class of a peak, column = the pitch classes it counts for."""
    m = np.zeros((12, 12))
    for h in range(1, HARMONICS + 1):
        shift = int(round(12.0 * np.log2(h)))  # 0, 12, 19, 24 semitones
        for pc in range(12):
            m[pc, (pc - shift) % 12] += HARMONIC_DECAY ** (h - 1)
    return m


_HARMONIC_MATRIX = _harmonic_matrix()
# Octaves added in fold(): the band's semitones, biased, lie in ~125..190 at any tuning; the
# table covers 0..287 (a peak is at least half a bin above 0 Hz, so never below it).
_PC_BIAS = 10
_PITCH_CLASS = np.arange(24 * 12) % 12


def estimate_tuning(semitones: np.ndarray, power: np.ndarray) -> float:
    """Deviation from A440 in semitones (-0.5..0.5): amplitude-weighted circular mean."""
    if semitones.size == 0:
        return 0.0
    amplitude = np.sqrt(power, dtype=np.float32)
    angle = np.float32(2.0 * np.pi) * semitones.astype(np.float32, copy=False)
    x = float(np.dot(amplitude, np.cos(angle)))
    y = float(np.dot(amplitude, np.sin(angle)))
    return float(np.arctan2(y, x) / (2.0 * np.pi)) if x or y else 0.0


def _first_peaks(frames: np.ndarray) -> np.ndarray:
    """Index of the first peak of every distinct frame in ``frames`` (sorted, as found)."""
    if frames.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], frames[1:] != frames[:-1])))


class Chroma:
    """Streaming tonal chroma: ``update(magnitude)`` per block of STFT frames, ``result()``.

    One row per STFT frame, like every other curve. ``tuning`` is the deviation from A440 in
    semitones, known once the warm-up has passed (or at ``result()`` for shorter inputs).
    """

    def __init__(
        self, frequencies: np.ndarray, capacity: int = 1024, frame_rate: float = _FRAME_RATE_GUESS
    ) -> None:
        freqs = np.asarray(frequencies, dtype=np.float64)
        self._df = float(freqs[1] - freqs[0]) if freqs.size > 1 else 1.0
        self._lo = max(1, int(np.ceil(CHROMA_FMIN / self._df)))
        self._hi = min(freqs.size - 2, int(np.floor(CHROMA_FMAX / self._df)))
        self._out = GrowingArray(12, capacity=capacity)
        self._warmup = max(1, int(TUNING_WARMUP_S * frame_rate))  # sounding frames
        self._held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._seen = 0  # STFT frames received
        self._sounding = 0  # frames held that had peaks
        self.tuning: float | None = None

    def update(self, magnitude: np.ndarray) -> None:
        n = magnitude.shape[0]
        if n == 0:
            return
        t, s, p = spectral_peaks(magnitude, self._lo, self._hi, self._df)
        if self.tuning is not None:
            self._out.extend(fold(t, s, p, n, self.tuning))
            return
        self._held.append((t + self._seen, s, p))
        self._seen += n
        self._sounding += _first_peaks(t).size
        if self._sounding >= self._warmup:
            self._release()

    def _release(self) -> None:
        """Estimate the tuning from the held peaks and fold them."""
        if self._held:
            t = np.concatenate([h[0] for h in self._held])
            s = np.concatenate([h[1] for h in self._held])
            p = np.concatenate([h[2] for h in self._held])
        else:
            t = np.zeros(0, dtype=np.int64)
            s = p = np.zeros(0, dtype=np.float32)
        # Exactly the first ``warmup`` sounding frames decide, wherever the blocks were cut:
        # streamed and one-shot analyses of the same signal get the same tuning. The peaks
        # are in frame order, so those frames' peaks are a prefix.
        starts = _first_peaks(t)
        cut = starts[self._warmup] if starts.size > self._warmup else t.size
        self.tuning = estimate_tuning(s[:cut], p[:cut])
        if self._seen:  # the warm-up holds everything from the first frame on
            self._out.extend(fold(t, s, p, self._seen, self.tuning))
        self._held = []

    def result(self) -> np.ndarray:
        if self.tuning is None:
            self._release()
        return self._out.result()


def chroma_peakiness(chroma: np.ndarray, window: int = 43) -> float:
    """Median over 1-second windows of max / mean of the summed max-normalised chroma frames.

    1 = flat (noise); ``window`` frames (43 = 1 s at 43 frames/s) are averaged first, so a
    pitch that holds counts and random peaks that move from frame to frame do not.
    """
    c = np.asarray(chroma)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] != 12:
        return 0.0
    window = max(1, min(int(window), c.shape[0]))
    ratios: list[np.ndarray] = []
    # Whole windows per chunk; chunks bound the temporaries and, for a chroma kept in a temp
    # file, the resident pages (row_chunks releases them).
    for _, part in row_chunks(c, rows=window * 256):
        block = np.nan_to_num(part, nan=0.0, posinf=0.0, neginf=0.0)
        block = block[: block.shape[0] // window * window]
        peak = block.max(axis=1)
        scale = np.where(
            peak > 1e-9 * max(float(peak.max()), 1e-30), 1.0 / np.where(peak > 0, peak, 1), 0
        )
        summed = (block * scale[:, None]).reshape(-1, window, 12).sum(axis=1)
        mean = summed.mean(axis=1)
        on = mean > 0
        ratios.append(summed[on].max(axis=1) / mean[on])
    r = np.concatenate(ratios) if ratios else np.zeros(0)
    return float(np_median(r)) if r.size else 0.0
