"""Chroma for tonality: spectral peaks, tuned, harmonically weighted, folded onto C, C#, ..., B.

An HPCP-style pitch-class profile (Gómez 2006) computed from the shared 2048-point STFT
(22 050 Hz, 10.8 Hz bins: the same resolution as essentia's 4096 points at 44.1 kHz):

1. **Spectral peaks** between 100 Hz and 5 kHz: local maxima of the magnitude no more than 60 dB
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
key, and compressing lets reverb tails and bleed count as much as the chord.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import GrowingArray, row_chunks

CHROMA_FMIN = 100.0
CHROMA_FMAX = 5000.0
PEAK_RANGE_DB = 60.0  # peaks within this many dB of the frame's largest bin
_PEAK_RANGE = np.float32(10.0 ** (-PEAK_RANGE_DB / 20.0))
# Magnitude of a -100 dBFS sine in a 2048-point Hann frame (amplitude * N / 4): below it is
# round-off and resampler noise, never a note.
PEAK_FLOOR = np.float32(1e-5 * 2048 / 4)
HARMONICS = 4
HARMONIC_DECAY = 0.6
TUNING_WARMUP_S = 20.0
# Chroma computed on every STRIDE-th STFT frame and held between (Chroma explains). 2 saves
# ~0.04 CPU-s per 3 minutes; on dev it moved one clip whose two best keys tie (0.713 -> 0.694
# weighted), so the full rate stays until a larger test set can tell.
STRIDE = 1
_FRAME_RATE_GUESS = 22050 / 512  # frames/s of the shared STFT, for the warm-up length


def spectral_peaks(
    magnitude: np.ndarray, lo: int, hi: int, df: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame index, semitones above A440, power) of the peaks in bins ``lo..hi`` of each frame.

    Frequencies and powers are parabolically interpolated on the log magnitude. Peaks are found
    on the magnitude itself (the order is the same as on its log), and logs are taken of the
    three bins around each peak only: a tenth of the values of the whole band.
    """
    n = magnitude.shape[0]
    if n == 0 or hi <= lo:
        empty = np.zeros(0, dtype=np.float32)
        return np.zeros(0, dtype=np.int64), empty, empty
    band = magnitude[:, lo - 1 : hi + 2]
    centre = band[:, 1:-1]
    threshold = np.maximum(magnitude.max(axis=1) * _PEAK_RANGE, PEAK_FLOOR)
    is_peak = centre > threshold[:, None]
    is_peak &= centre > band[:, :-2]
    is_peak &= centre >= band[:, 2:]
    t, k = np.nonzero(is_peak)
    a = np.log(band[t, k])
    b = np.log(band[t, k + 1])
    c = np.log(np.maximum(band[t, k + 2], 1e-30))
    # a < b >= c at a peak, so the curvature a - 2b + c is negative: the parabola has a maximum.
    offset = 0.5 * (a - c) / np.minimum(a - 2.0 * b + c, -1e-12)
    log_mag = b - 0.25 * (a - c) * offset
    semitones = 12.0 * np.log2((k + lo + offset) * np.float32(df / 440.0))
    return t, semitones, np.exp(2.0 * log_mag)


def fold(
    frames: np.ndarray, semitones: np.ndarray, power: np.ndarray, n: int, tuning: float
) -> np.ndarray:
    """(n, 12) pitch-class sums of the peaks, C = 0, with harmonic weighting.

    Harmonics 2 and 4 are octaves: the same pitch class at the same distance, so harmonics
    1, 2 and 4 are one fold with the summed weight; harmonic 3 (an octave and a fifth, 19.02
    semitones) gets its own.
    """
    out = np.zeros(n * 12)
    if frames.size == 0:
        return out.reshape(n, 12)
    base = semitones - np.float32(tuning - 9.0)  # A = pitch class 9
    for shift, weight in _HARMONIC_FOLDS:
        s = base - shift
        nearest = np.round(s)
        w = power * np.cos(np.float32(np.pi) * (s - nearest)) ** 2
        idx = frames * 12 + nearest.astype(np.int64) % 12
        out += np.bincount(idx, weights=w * np.float32(weight), minlength=n * 12)
    return out.reshape(n, 12)


def _harmonic_folds() -> list[tuple[np.float32, float]]:
    """(semitone shift, weight) per distinct fold: octaves merged, as fold() explains."""
    folds: dict[float, float] = {}
    for h in range(1, HARMONICS + 1):
        shift = 12.0 * np.log2(h)
        key = shift % 12.0 if abs(shift % 12.0) < 1e-9 else shift
        folds[key] = folds.get(key, 0.0) + HARMONIC_DECAY ** (h - 1)
    return [(np.float32(k), w) for k, w in folds.items()]


_HARMONIC_FOLDS = _harmonic_folds()


def estimate_tuning(semitones: np.ndarray, power: np.ndarray) -> float:
    """Deviation from A440 in semitones (-0.5..0.5): amplitude-weighted circular mean."""
    if semitones.size == 0:
        return 0.0
    z = np.sum(np.sqrt(power) * np.exp(2j * np.pi * semitones))
    return float(np.angle(z) / (2.0 * np.pi)) if abs(z) > 0 else 0.0


class Chroma:
    """Streaming tonal chroma: ``update(magnitude)`` per block of STFT frames, ``result()``.

    Computed on every ``STRIDE``-th frame (with 2: 46 ms apart, Hann windows at 50 % overlap
    still weigh every sample evenly) and held for the frames between, so the output has one
    row per STFT frame like every other curve.

    ``tuning`` is the deviation from A440 in semitones, known once the warm-up has passed (or
    at ``result()`` for shorter inputs).
    """

    def __init__(
        self, frequencies: np.ndarray, capacity: int = 1024, frame_rate: float = _FRAME_RATE_GUESS
    ) -> None:
        freqs = np.asarray(frequencies, dtype=np.float64)
        self._df = float(freqs[1] - freqs[0]) if freqs.size > 1 else 1.0
        self._lo = max(1, int(np.ceil(CHROMA_FMIN / self._df)))
        self._hi = min(freqs.size - 2, int(np.floor(CHROMA_FMAX / self._df)))
        self._out = GrowingArray(12, capacity=capacity)
        self._warmup = max(1, int(TUNING_WARMUP_S * frame_rate / STRIDE))  # computed frames
        self._held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._seen = 0  # STFT frames received
        self._computed = 0  # frames whose chroma was computed (every STRIDE-th)
        self._sounding = 0  # computed frames held that had peaks
        self._last = np.zeros(12)  # the last computed row, for the frames after it
        self.tuning: float | None = None

    def update(self, magnitude: np.ndarray) -> None:
        n = magnitude.shape[0]
        if n == 0:
            return
        first = -self._seen % STRIDE  # local index of the first frame to compute
        self._seen += n
        sub = magnitude[first::STRIDE]
        t, s, p = spectral_peaks(sub, self._lo, self._hi, self._df)
        if self.tuning is not None:
            self._emit(fold(t, s, p, sub.shape[0], self.tuning), first, n)
            return
        self._held.append((t + self._computed, s, p))
        self._computed += sub.shape[0]
        self._sounding += np.unique(t).size
        if self._sounding >= self._warmup:
            self._release()

    def _emit(self, rows: np.ndarray, first: int, n: int) -> None:
        """Append ``n`` frames: each computed row held for STRIDE frames, the last row before
        the first computed one for the ``first`` frames that precede it."""
        if first:
            rows = np.vstack([self._last[None, :], rows])
        full = np.repeat(rows, STRIDE, axis=0)
        start = (STRIDE - first) % STRIDE if first else 0
        self._out.extend(full[start : start + n])
        if rows.shape[0]:
            self._last = rows[-1]

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
        # streamed and one-shot analyses of the same signal get the same tuning.
        sounding = np.unique(t)
        if sounding.size > self._warmup:
            keep = t <= sounding[self._warmup - 1]
            self.tuning = estimate_tuning(s[keep], p[keep])
        else:
            self.tuning = estimate_tuning(s, p)
        held_frames = self._seen  # the warm-up holds everything from the first frame on
        if held_frames:
            self._emit(fold(t, s, p, self._computed, self.tuning), 0, held_frames)
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
    return float(np.median(r)) if r.size else 0.0
