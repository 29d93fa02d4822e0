"""The Profile: everything featherbeat knows about one track, held as compact numpy arrays.

A Profile is what :func:`featherbeat.analyze` returns and what every serializer in
``featherbeat.analysis.formats`` reads. It never holds the signal itself: only per-frame
curves (tens of floats per second) and event lists, so its size grows by a few hundred kB per
hour of audio.

Times are seconds from the start of the track. Loudness values are dBFS (0 = full scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ANALYSIS_SAMPLE_RATE = 22050
"""The rate every track is resampled to before analysis (as Spotify's analyzer does)."""

LOUDNESS_FLOOR_DB = -60.0
"""The floor of every loudness in dBFS (curves, segments, sections, the track): "silence".
Spotify documents loudness within -60..0 dB; below -60 is silence for every use we have."""


def _empty(shape: tuple[int, ...] = (0,)) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


def _times() -> np.ndarray:
    return np.zeros(0, dtype=np.float64)


def _same_length(owner: str, **arrays: np.ndarray) -> None:
    """Raise ValueError unless every array has as many rows as the first one."""
    (first, ref), *rest = arrays.items()
    n = np.shape(ref)[0] if np.ndim(ref) else 0
    for name, values in rest:
        m = np.shape(values)[0] if np.ndim(values) else 0
        if m != n:
            raise ValueError(f"{owner}.{name} has {m} entries for {n} {owner}.{first}")


@dataclass
class Source:
    """What was decoded: the input as the decoder saw it."""

    name: str = ""
    duration: float = 0.0  # seconds of audio actually decoded
    sample_rate: int = 0  # of the input
    channels: int = 0  # of the input
    num_samples: int = 0  # at ANALYSIS_SAMPLE_RATE
    decoder: str = ""  # e.g. "libsndfile MP3 2ch 44100->22050"


@dataclass
class Curves:
    """Per-frame curves. Frame i of a curve is centred at i / rate seconds.

    The onset curve has its own, finer rate because beat times are read from it; the others
    are at ``frame_rate`` (coarser, so an hour of chroma and timbre stays a few MB).
    """

    onset_rate: float = 0.0
    onset: np.ndarray = field(default_factory=_empty)  # onset strength, >= 0
    frame_rate: float = 0.0
    loudness: np.ndarray = field(default_factory=_empty)  # dBFS per frame, >= LOUDNESS_FLOOR_DB
    energy: np.ndarray = field(default_factory=_empty)  # RMS, linear 0..1
    # Fine level (dBFS, floor -60) at envelope_rate (86/s): segment attacks; empty when not
    # computed (then segments read ``loudness``).
    envelope_rate: float = 0.0
    envelope: np.ndarray = field(default_factory=_empty)
    centroid: np.ndarray = field(default_factory=_empty)  # spectral centroid in Hz
    chroma: np.ndarray = field(default_factory=lambda: _empty((0, 12)))  # (n, 12), C..B
    # (n, 12) per-frame frequency shape of the spectrum: mean level above a floor, then DCT
    # coefficients (features/timbre.py); segments project it on Spotify's scale.
    timbre: np.ndarray = field(default_factory=lambda: _empty((0, 12)))
    # Onset strength of the bands below 200 Hz (kick, bass) at onset_rate; empty when not
    # computed. Read by the downbeat tracker (OnsetStrength.low).
    onset_low: np.ndarray = field(default_factory=_empty)
    # Bass magnitude spectrum, 35-260 Hz in 21 bands, at bass_rate frames/s; empty when not
    # computed. Read by the downbeat tracker (OnsetStrength.bass).
    bass_rate: float = 0.0
    bass: np.ndarray = field(default_factory=lambda: _empty((0, 21)))
    # The learned rhythm model's outputs (rhythm/learned.py), empty when it did not run: beat
    # and downbeat activations (n, 2) at activation_rate frames/s (frame i centred at
    # activation_offset + i / activation_rate s), and the tempo head's logits averaged over
    # the track (one per class of learned.bpm_bins()).
    activation_rate: float = 0.0
    activation_offset: float = 0.0
    activations: np.ndarray = field(default_factory=lambda: _empty((0, 2)))
    tempo_logits: np.ndarray = field(default_factory=_empty)


@dataclass
class Peaks:
    """Waveform peaks for drawing: min and max of the signal per bucket of 1 / rate seconds."""

    rate: float = 0.0  # buckets per second
    min: np.ndarray = field(default_factory=_empty)  # (m,), -1..1
    max: np.ndarray = field(default_factory=_empty)  # (m,), -1..1


@dataclass
class Rhythm:
    tempo: float = 0.0  # BPM, 0 when there is no pulse
    tempo_confidence: float = 0.0  # 0..1
    time_signature: int = 4  # beats per bar, 3..7
    time_signature_confidence: float = 0.0
    beats: np.ndarray = field(default_factory=_empty)  # beat times
    beat_confidence: np.ndarray = field(default_factory=_empty)  # (len(beats),), 0..1
    beat_position: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int16)
    )  # 1-based position in bar, 1 = downbeat
    tatums: np.ndarray = field(default_factory=_empty)
    tatum_confidence: np.ndarray = field(default_factory=_empty)
    tempo_curve_times: np.ndarray = field(default_factory=_empty)  # local tempo, sampled
    tempo_curve_bpm: np.ndarray = field(default_factory=_empty)
    # Beats, tatums and bars as intervals (rhythm.bars.with_intervals fills these in): each
    # lasts until the next; a bar runs from a downbeat to the next one.
    beat_duration: np.ndarray = field(default_factory=_times)  # (len(beats),)
    tatum_duration: np.ndarray = field(default_factory=_times)  # (len(tatums),)
    bar_start: np.ndarray = field(default_factory=_times)
    bar_duration: np.ndarray = field(default_factory=_times)
    bar_confidence: np.ndarray = field(default_factory=_times)  # mean of its beats' confidences

    @property
    def downbeats(self) -> np.ndarray:
        return self.beats[self.beat_position == 1]

    @property
    def positions_known(self) -> bool:
        """True when every beat has a position in bar (0 marks an unknown one)."""
        return bool(np.all(self.beat_position >= 1))

    def check(self) -> None:
        """Raise ValueError unless every per-beat, per-tatum and per-bar array lines up."""
        _same_length(
            "rhythm",
            beats=self.beats,
            beat_confidence=self.beat_confidence,
            beat_position=self.beat_position,
            beat_duration=self.beat_duration,
        )
        _same_length(
            "rhythm",
            tatums=self.tatums,
            tatum_confidence=self.tatum_confidence,
            tatum_duration=self.tatum_duration,
        )
        _same_length(
            "rhythm",
            bar_start=self.bar_start,
            bar_duration=self.bar_duration,
            bar_confidence=self.bar_confidence,
        )
        _same_length("rhythm", tempo_curve_times=self.tempo_curve_times, bpm=self.tempo_curve_bpm)
        if np.any(self.beat_position < 0):
            raise ValueError("rhythm.beat_position must be >= 0 (0 = unknown, 1 = downbeat)")


@dataclass
class Segments:
    """Spotify-style segments: short sound events starting at onsets (structure of arrays)."""

    start: np.ndarray = field(default_factory=_empty)
    duration: np.ndarray = field(default_factory=_empty)
    confidence: np.ndarray = field(default_factory=_empty)
    loudness_start: np.ndarray = field(default_factory=_empty)
    loudness_max: np.ndarray = field(default_factory=_empty)
    loudness_max_time: np.ndarray = field(default_factory=_empty)  # offset from start
    loudness_end: np.ndarray = field(default_factory=_empty)
    pitches: np.ndarray = field(default_factory=lambda: _empty((0, 12)))  # max-normalised to 1
    timbre: np.ndarray = field(default_factory=lambda: _empty((0, 12)))

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def check(self) -> None:
        """Raise ValueError unless every column has one row per segment (12 wide for vectors)."""
        _same_length(
            "segments",
            start=self.start,
            duration=self.duration,
            confidence=self.confidence,
            loudness_start=self.loudness_start,
            loudness_max=self.loudness_max,
            loudness_max_time=self.loudness_max_time,
            loudness_end=self.loudness_end,
            pitches=self.pitches,
            timbre=self.timbre,
        )
        for name, rows in (("pitches", self.pitches), ("timbre", self.timbre)):
            if np.ndim(rows) != 2 or np.shape(rows)[1] != 12:
                raise ValueError(f"segments.{name} must have shape (segments, 12)")


@dataclass
class Section:
    start: float
    duration: float
    confidence: float
    loudness: float
    tempo: float
    tempo_confidence: float
    key: int  # -1 when unknown, else 0 = C .. 11 = B
    key_confidence: float
    mode: int  # 1 major, 0 minor, -1 unknown
    mode_confidence: float
    time_signature: int
    time_signature_confidence: float
    label: str = ""  # e.g. "A", "B", "A'" : sections that sound alike share a letter


@dataclass
class Tonality:
    key: int = -1  # -1 when unknown (silence), else pitch class 0 = C
    key_confidence: float = 0.0
    mode: int = -1  # 1 major, 0 minor, -1 unknown
    mode_confidence: float = 0.0


@dataclass
class Profile:
    """The whole analysis of one track. See docs/formats.md for the field-by-field meaning."""

    source: Source = field(default_factory=Source)
    curves: Curves = field(default_factory=Curves)
    peaks: Peaks = field(default_factory=Peaks)
    rhythm: Rhythm = field(default_factory=Rhythm)
    segments: Segments = field(default_factory=Segments)
    sections: list[Section] = field(default_factory=list)
    tonality: Tonality = field(default_factory=Tonality)
    loudness: float = LOUDNESS_FLOOR_DB  # integrated track loudness, dBFS
    end_of_fade_in: float = 0.0
    start_of_fade_out: float = 0.0
    analysis_time: float = 0.0  # wall seconds spent analysing
    timestamp: int = 0  # unix time of the analysis
    missing: dict[str, str] = field(default_factory=dict)  # stage -> why it is missing
    reduced: bool = False  # True when only rhythm and loudness were computed

    # Convenience views most callers want.
    @property
    def duration(self) -> float:
        return self.source.duration

    @property
    def tempo(self) -> float:
        return self.rhythm.tempo

    @property
    def beats(self) -> np.ndarray:
        return self.rhythm.beats

    @property
    def downbeats(self) -> np.ndarray:
        return self.rhythm.downbeats

    def sections_or_whole(self) -> list[Section]:
        """The sections; when none were computed (reduced run, failed stage), one section
        spanning the track with the track's values and confidence 0, so Spotify clients that
        index ``sections[0]`` keep working (``missing`` says why). What every format shows."""
        if self.sections:
            return self.sections
        r, tone = self.rhythm, self.tonality
        return [
            Section(
                start=0.0,
                duration=self.duration,
                confidence=0.0,
                loudness=self.loudness,
                tempo=r.tempo,
                tempo_confidence=r.tempo_confidence,
                key=tone.key,
                key_confidence=tone.key_confidence,
                mode=tone.mode,
                mode_confidence=tone.mode_confidence,
                time_signature=r.time_signature,
                time_signature_confidence=r.time_signature_confidence,
                label="A",
            )
        ]

    @property
    def status_code(self) -> int:
        """0 when every stage ran, 1 when some stage is missing (see ``missing``)."""
        return 1 if self.missing else 0

    @property
    def detailed_status(self) -> str:
        if not self.missing:
            return "OK"
        return "; ".join(f"{stage}: {why}" for stage, why in sorted(self.missing.items()))

    def check(self) -> None:
        """Raise ValueError naming the first broken invariant: the arrays that describe one
        list of events line up. The pipeline checks each stage's result as it lands (a stage
        that breaks them is recorded as failed); serializers check once, then only map."""
        self.rhythm.check()
        self.segments.check()
        _same_length("peaks", min=self.peaks.min, max=self.peaks.max)
