"""Streaming onset strength: log-filtered SuperFlux spectral flux (Böck & Widmer 2013).

Why this detection function: beats and downbeats are read from it, so it must (a) rise sharply
at note and drum onsets of any instrument, (b) ignore vibrato and tremolo (which make a plain
spectral flux fire on sustained notes), and (c) cost next to nothing. SuperFlux does all three:

1. STFT, Hann window of 1024 samples (46 ms at 22 050 Hz), hop 256 (86.13 frames/s).
2. Magnitudes summed into ~80 triangular bands spaced 12 per octave (30 Hz .. 11 kHz), so a
   kick, a bass note and a hi-hat each weigh by musical range, not by FFT-bin count.
3. log(1 + x) compression, so soft onsets count and loud tracks do not dominate.
4. Flux against the previous frame *max-filtered over 3 neighbouring bands*: a partial that
   merely wobbles by a band is not counted as new energy (vibrato suppression).
5. Half-wave rectified sum over bands.

Besides the full-band curve we keep the same flux over the bands below 200 Hz (kick drum and
bass): the downbeat tracker uses it, because bars tend to start with the bass.

Memory: one window of samples plus one spectrum frame of state; the output is one float per
frame per curve (86 floats/s; about 2.5 MB per curve for an hour).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from featherbeat.analysis.features._store import GrowingArray
from featherbeat.analysis.spans import sorted_unique

N_FFT = 1024
HOP = 256
LOW_BAND_HZ = 200.0
_BATCH = 256  # frames transformed per numpy call: amortises call overhead, bounds memory
# Bass spectrum: the signal decimated to ~2.76 kHz, 512-point FFT (= 4096 points at 22 050 Hz:
# 5.4 Hz bins, enough to tell bass notes apart), hop 256 (93 ms: the tracker only averages it
# over beats), bins 35-260 Hz summed in pairs (21 bands of 10.8 Hz).
BASS_RATE_HZ = 2756.25
BASS_N_FFT = 512
BASS_HOP = 256
BASS_FMIN, BASS_FMAX = 35.0, 260.0


def _band_centres(
    sample_rate: int, n_fft: int, fmin: float, fmax: float, per_octave: int
) -> np.ndarray:
    """FFT-bin indices of log-spaced band centres (``per_octave`` per octave), duplicates merged.

    At low frequencies several semitone centres fall on the same FFT bin; keeping one of each
    stops the bass from being counted twice.
    """
    bin_hz = sample_rate / n_fft
    n_steps = int(np.floor(per_octave * np.log2(fmax / fmin)))
    centres_hz = fmin * 2.0 ** (np.arange(n_steps + 1) / per_octave)
    bins = sorted_unique(np.round(centres_hz / bin_hz).astype(np.int64))
    return bins[(bins > 0) & (bins < n_fft // 2)]


class _TriangularBands:
    """Triangular filters between consecutive centres, as matrix products over the bins each
    group of bands reads.

    Adjacent triangles form a partition of unity: a bin between centres c_j and c_j+1 gives
    weight r to band j+1 and 1 - r to band j, so each row of the matrix has two non-zeros.
    One dense (bins x bands) BLAS product (one thread: the pipeline and the CLI limit BLAS)
    measured 0.14 ms per 128 frames against 0.28 ms for the two ``np.add.reduceat`` segment
    sums it replaced; but a band reads only the bins between its neighbours' centres, so the
    bands go in ``GROUPS`` groups of consecutive bands, each a product over its own stretch of
    bins (9 % of the dense matrix's multiplications): 0.48 -> 0.07-0.11 ms per 256 frames,
    ~0.02 CPU-s per 3 minutes. The bands agree with the dense product to ~1e-15 relative
    (the same non-zero terms, summed in BLAS's order for a shorter row).
    """

    GROUPS = 12

    def __init__(self, centres: np.ndarray) -> None:
        self.lo, self.hi = int(centres[0]), int(centres[-1])
        k = np.arange(self.lo, self.hi)
        seg = np.searchsorted(centres, k, side="right") - 1
        rise = (k - centres[seg]) / (centres[seg + 1] - centres[seg])
        self.n_bands = centres.size - 2  # bands centred on centres[1:-1]
        # Column j is the band centred on centres[j + 1]: the rising half of segment j and the
        # falling half of segment j + 1.
        weights = np.zeros((k.size, centres.size))
        rows = np.arange(k.size)
        weights[rows, seg + 1] = rise
        weights[rows, seg] = 1.0 - rise
        self.weights = np.ascontiguousarray(weights[:, 1:-1])
        # (first band, end band, first bin row, end bin row, the block of weights) per group.
        self._groups: list[tuple[int, int, int, int, np.ndarray]] = []
        cuts = np.linspace(0, self.n_bands, min(self.GROUPS, self.n_bands) + 1).astype(int)
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            used = np.flatnonzero(np.any(self.weights[:, a:b] != 0.0, axis=1))
            r0, r1 = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)
            self._groups.append((a, b, r0, r1, np.ascontiguousarray(self.weights[r0:r1, a:b])))

    def __call__(self, mag: np.ndarray) -> np.ndarray:
        """Band sums from the magnitudes of FFT bins ``lo .. hi - 1`` (frames, hi - lo)."""
        out = np.empty((mag.shape[0], self.n_bands))
        for a, b, r0, r1, w in self._groups:
            if r1 > r0:
                np.matmul(mag[:, r0:r1], w, out=out[:, a:b])
            else:
                out[:, a:b] = 0.0
        return out


class BassSpectrum:
    """Streaming bass magnitude spectrum: feed the same blocks as :class:`OnsetStrength`.

    Decimation by D = sample_rate / 2756 (8 at 22 050 Hz) with a triangular anti-alias filter
    (two cascaded D-sample boxcars, 2D - 1 taps, weights summing to 1): its nulls sit on the
    multiples of the new rate, so what would fold onto 35-260 Hz is attenuated by >= 39 dB,
    and 260 Hz itself passes at -0.2 dB. The filter is applied block by block as two small
    matrix-vector products, so it costs O(samples) and keeps one block of state.
    Frame ``i`` is centred at ``i / rate`` seconds (half a window of zeros in front).
    """

    def __init__(self, sample_rate: int) -> None:
        self.factor = d = max(1, int(round(sample_rate / BASS_RATE_HZ)))
        self.rate = sample_rate / d / BASS_HOP
        # y[k] = (x[dk : dk+d] @ cur + x[d(k-1) : dk] @ prev) / d^2: a triangle of 2d - 1 taps.
        self._cur = np.arange(d, 0, -1, dtype=np.float64) / d**2
        self._prev = np.arange(d, dtype=np.float64) / d**2
        self._last = np.zeros(d)  # the previous block of d input samples
        self._rest = np.zeros(0, dtype=np.float32)  # < d input samples not yet decimated
        self._buf = np.zeros(BASS_N_FFT // 2)  # decimated samples, starting with the centring pad
        self._window = np.hanning(BASS_N_FFT + 1)[:-1]
        f = np.fft.rfftfreq(BASS_N_FFT, d / sample_rate)
        keep = np.nonzero((f >= BASS_FMIN) & (f <= BASS_FMAX))[0]
        self._lo, self._hi = int(keep[0]), int(keep[0]) + keep.size // 2 * 2
        # Room for 4 hours up front: untouched zero pages are address space, not resident
        # memory, and growing by copying would briefly hold the spectrum twice.
        self._out = GrowingArray((self._hi - self._lo) // 2, capacity=int(4 * 3600 * self.rate))
        self._n_dec = 0

    def push(self, x: np.ndarray) -> None:
        d = self.factor
        x = np.concatenate([self._rest, x]) if self._rest.size else x
        n = x.size // d * d
        self._rest = x[n:].copy()
        if n == 0:
            return
        blocks = x[:n].reshape(-1, d).astype(np.float64)
        # Row k's previous block is row k - 1 (the last one of the previous push for row 0):
        # each row's product once, added shifted, instead of a stacked copy of the blocks.
        back = blocks @ self._prev
        y = blocks @ self._cur
        y[1:] += back[:-1]
        y[0] += self._last @ self._prev
        self._last = blocks[-1].copy()
        self._add(y)

    def _add(self, y: np.ndarray) -> None:
        self._n_dec += y.size
        self._buf = np.concatenate([self._buf, y])
        if self._buf.size < BASS_N_FFT:
            return
        k = 1 + (self._buf.size - BASS_N_FFT) // BASS_HOP
        frames = np.lib.stride_tricks.sliding_window_view(self._buf, BASS_N_FFT)[::BASS_HOP][:k]
        mag = np.abs(np.fft.rfft(frames * self._window, axis=1))[:, self._lo : self._hi]
        self._out.extend(mag[:, 0::2] + mag[:, 1::2])
        self._buf = self._buf[k * BASS_HOP :].copy()

    def finish(self) -> np.ndarray:
        """(frames, 21) float32; one frame per hop of decimated input, as the onset curve."""
        n_wanted = -(-self._n_dec // BASS_HOP)  # counted before the end pad
        self._add(np.zeros(BASS_N_FFT // 2))
        return self._out.result()[:n_wanted]


@dataclass
class OnsetCurves:
    """What :meth:`OnsetStrength.finish` returns; the pipeline copies it into ``Curves``."""

    rate: float  # frames/s of ``onset`` and ``low``
    onset: np.ndarray  # full-band SuperFlux, >= 0, float32
    low: np.ndarray  # the same flux over the bands below 200 Hz (kick, bass)
    bass_rate: float  # frames/s of ``bass``
    bass: np.ndarray  # (frames, 21) bass magnitude spectrum, 35-260 Hz


class OnsetStrength:
    """Feed mono float32 blocks with :meth:`push`; :meth:`finish` returns the
    :class:`OnsetCurves`: the onset curve, its low-band twin and the bass spectrum.

    Frame ``i`` of the curve is centred at ``i * HOP / sample_rate`` seconds (the signal is
    padded with half a window of zeros at both ends, as librosa's ``center=True``).
    """

    def __init__(self, sample_rate: int = 22050) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        # Scale the FFT with the rate so the window stays ~46 ms and the hop ~11.6 ms.
        scale = self.sample_rate / 22050.0
        self.n_fft = int(2 ** round(np.log2(N_FFT * scale)))
        self.hop = max(1, int(round(HOP * self.n_fft / N_FFT)))
        self.rate = self.sample_rate / self.hop
        self._window = np.hanning(self.n_fft + 1)[:-1]
        fmax = min(11000.0, 0.45 * self.sample_rate)
        centres = _band_centres(self.sample_rate, self.n_fft, 30.0, fmax, 12)
        self._bands = _TriangularBands(centres)
        bin_hz = self.sample_rate / self.n_fft
        self._low_bands = int(np.searchsorted(centres[1:-1] * bin_hz, LOW_BAND_HZ))
        self._buf = np.zeros(self.n_fft // 2, dtype=np.float32)  # centring pad
        self._prev: np.ndarray | None = None  # max-filtered log spectrum of the last frame
        self._windowed: np.ndarray | None = None  # work buffer of a batch of frames
        # float32 as they stream (the values the curves always had): no list of float64
        # blocks and no concatenate at the end; a long track's curves go to a temp file.
        self._out = GrowingArray(capacity=1 << 14)
        self._out_low = GrowingArray(capacity=1 << 14)
        self._bass = BassSpectrum(self.sample_rate)
        self._n_in = 0  # samples pushed, to size the output exactly
        self._result: OnsetCurves | None = None  # set by finish()
        # Optional consumer of each batch's log band spectrum and its SuperFlux difference
        # (both (frames, bands), float64): the learned rhythm model reads its input from here,
        # so the STFT is paid once (rhythm/learned.py).
        self.sink: Callable[[np.ndarray, np.ndarray], None] | None = None

    def push(self, block: np.ndarray) -> None:
        if self._result is not None:
            raise RuntimeError("push() after finish()")
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return
        # NaN/Inf would poison every later frame through the flux difference. Tested on the
        # sum (NaN or Inf when any sample is, or when huge samples overflow it, when the
        # conversion changes nothing): one reduction instead of a mask of the block.
        with np.errstate(invalid="ignore", over="ignore"):
            finite = np.isfinite(x.sum())
        if not finite:
            x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        self._n_in += x.size
        self._bass.push(x)
        self._buf = np.concatenate([self._buf, x])
        self._drain()

    def _drain(self) -> None:
        n_frames = (
            0 if self._buf.size < self.n_fft else 1 + (self._buf.size - self.n_fft) // self.hop
        )
        start = 0
        while n_frames > 0:
            k = min(n_frames, _BATCH)
            span = self._buf[start : start + (k - 1) * self.hop + self.n_fft]
            self._frames(np.lib.stride_tricks.sliding_window_view(span, self.n_fft)[:: self.hop])
            start += k * self.hop
            n_frames -= k
        if start:
            self._buf = self._buf[start:].copy()

    def _frames(self, frames: np.ndarray) -> None:
        n = frames.shape[0]
        if self._windowed is None or self._windowed.shape[0] < n:
            self._windowed = np.empty((n, self.n_fft))  # reused: a batch is 2 MB
        windowed = self._windowed[:n]
        # Converted, then windowed in place (as stft.STFT): the same products as
        # ``frames * window``, ~0.012 CPU-s less per 3 minutes than on the strided frames.
        windowed[...] = frames
        windowed *= self._window
        # float64 on purpose: numpy's float32 FFT path is several times slower here.
        spectrum = np.fft.rfft(windowed, axis=1)
        # Magnitudes of whole rows (numpy's abs of contiguous rows beats that of the 448 of 513
        # bins the bands read, 1..~11 kHz, by ~0.005 CPU-s per 3 minutes); the bands read theirs.
        mag = np.abs(spectrum)
        spec = np.log1p(self._bands(mag[:, self._bands.lo : self._bands.hi]))
        # Reference = previous frame, max-filtered over +-1 band (vibrato suppression).
        ref = np.empty_like(spec)
        ref[1:] = spec[:-1]
        ref[0] = spec[0] if self._prev is None else self._prev
        ref_max = ref.copy()
        ref_max[:, 1:] = np.maximum(ref_max[:, 1:], ref[:, :-1])
        ref_max[:, :-1] = np.maximum(ref_max[:, :-1], ref[:, 1:])
        self._prev = spec[-1].copy()
        diff = np.maximum(spec - ref_max, 0.0)
        if self.sink is not None:
            self.sink(spec, diff)
        self._out.extend(diff.sum(axis=1).astype(np.float32))
        self._out_low.extend(diff[:, : self._low_bands].sum(axis=1).astype(np.float32))

    def finish(self) -> OnsetCurves:
        """The curves; a second call returns the same result."""
        if self._result is None:
            self._buf = np.concatenate([self._buf, np.zeros(self.n_fft // 2, dtype=np.float32)])
            self._drain()
            # One frame per hop of input (rounded up), as librosa's centred framing.
            n_wanted = -(-self._n_in // self.hop)
            self._result = OnsetCurves(
                rate=self.rate,
                onset=self._out.result()[:n_wanted],
                low=self._out_low.result()[:n_wanted],
                bass_rate=self._bass.rate,
                bass=self._bass.finish(),
            )
        return self._result


def onset_strength(y: np.ndarray, sample_rate: int = 22050) -> tuple[np.ndarray, np.ndarray, float]:
    """Whole-signal convenience: (onset, low-band onset, frames/s). Streams internally."""
    det = OnsetStrength(sample_rate)
    for i in range(0, len(y), 65536):
        det.push(y[i : i + 65536])
    result = det.finish()
    return result.onset, result.low, result.rate
