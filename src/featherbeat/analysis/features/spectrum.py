"""One STFT, many per-frame features: loudness, RMS energy, chroma, timbre, spectral centroid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from featherbeat.analysis.features.centroid import Centroid
from featherbeat.analysis.features.chroma import Chroma
from featherbeat.analysis.features.energy import Energy, Envelope
from featherbeat.analysis.features.timbre import Timbre
from featherbeat.analysis.profile import ANALYSIS_SAMPLE_RATE
from featherbeat.analysis.stft import STFT

N_FFT = 2048  # 93 ms: enough frequency resolution for chroma above ~65 Hz (as librosa's default)
HOP = 512  # 23 ms, 43.07 frames/s: chroma, timbre and sections need no finer (attacks: Envelope)


def _none() -> np.ndarray:
    return np.zeros(0, dtype=np.float32)


def _rows() -> np.ndarray:
    return np.zeros((0, 12), dtype=np.float32)


@dataclass
class FrameCurves:
    """What :meth:`FrameFeatures.finish` returns: the curves at ``frame_rate`` (43.07/s).

    The pipeline copies these into :class:`~featherbeat.analysis.profile.Curves`; a reduced
    run leaves chroma, timbre and centroid empty.
    """

    frame_rate: float
    loudness: np.ndarray  # dBFS per frame, floor -60
    energy: np.ndarray  # RMS, linear 0..1
    chroma: np.ndarray = field(default_factory=_rows)  # (n, 12), C..B
    timbre: np.ndarray = field(default_factory=_rows)  # (n, 12)
    centroid: np.ndarray = field(default_factory=_none)  # Hz
    envelope: np.ndarray = field(default_factory=_none)  # fine level, dBFS (Envelope)
    envelope_rate: float = 0.0


@dataclass
class _Tonal:
    """The features a reduced run skips."""

    chroma: Chroma
    timbre: Timbre
    centroid: Centroid


class FrameFeatures:
    """Feed mono float32 blocks at ``sample_rate``; ``finish()`` returns the :class:`FrameCurves`.

    ``reduced=True`` computes loudness and energy only (the service's low-cost retry).
    ``expected_frames`` (from the header's duration) pre-sizes the outputs so that they are
    never copied while growing.
    """

    def __init__(
        self,
        sample_rate: int = ANALYSIS_SAMPLE_RATE,
        *,
        reduced: bool = False,
        expected_frames: int = 1024,
    ) -> None:
        self.sample_rate = int(sample_rate)
        self.reduced = reduced
        self.stft = STFT(N_FFT, HOP)
        cap = max(16, int(expected_frames) + 8)
        freqs = self.stft.frequencies(self.sample_rate)
        self.energy = Energy(capacity=cap)
        self.envelope = Envelope(capacity=cap * HOP // Envelope.HOP + 8)
        self._tonal = (
            None
            if reduced
            else _Tonal(
                Chroma(freqs, capacity=cap, frame_rate=self.sample_rate / HOP),
                Timbre(freqs, capacity=cap),
                Centroid(freqs, capacity=cap),
            )
        )

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / HOP

    def push(self, block: np.ndarray) -> None:
        self.envelope.push(block)
        self._update(self.stft.push(block))

    def finish(self) -> FrameCurves:
        self._update(self.stft.finish())
        loudness, rms = self.energy.result()
        envelope = self.envelope.finish()
        rate = self.sample_rate / Envelope.HOP
        if self._tonal is None:
            return FrameCurves(
                self.frame_rate, loudness, rms, envelope=envelope, envelope_rate=rate
            )
        return FrameCurves(
            self.frame_rate,
            loudness,
            rms,
            chroma=self._tonal.chroma.result(),
            timbre=self._tonal.timbre.result(),
            centroid=self._tonal.centroid.result(),
            envelope=envelope,
            envelope_rate=rate,
        )

    def _update(self, power: np.ndarray) -> None:
        if power.shape[0] == 0:
            return
        self.energy.update(self.stft.mean_square(power))
        if self._tonal is None:
            return  # reduced: loudness and energy only
        magnitude = np.sqrt(power)
        self._tonal.chroma.update(magnitude)
        self._tonal.centroid.update(magnitude)
        self._tonal.timbre.update(power)
