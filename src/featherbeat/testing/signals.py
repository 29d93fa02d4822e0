"""Test audio made at test time: click tracks, tempo ramps, swing, tones and chords, noise, silence.

Every generator returns mono float32 in -1..1 at ``sr`` (22 050 Hz unless told) and, where there
is a ground truth, the truth alongside it. ``write_audio`` saves a signal as wav/flac/ogg/opus/
mp3 (libsndfile) or m4a (PyAV, AAC) into a folder, normally pytest's ``tmp_path``.
Nothing here reads ../shared: tests never depend on committed or borrowed audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 22050

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass
class Clicks:
    """A click track and its truth."""

    audio: np.ndarray
    sr: int
    beats: np.ndarray  # beat times, seconds
    positions: np.ndarray  # 1-based position in bar per beat
    tempo: float  # BPM (the starting tempo for a ramp)

    @property
    def downbeats(self) -> np.ndarray:
        return self.beats[self.positions == 1]


def _click(sr: int, freq: float, length: float = 0.03) -> np.ndarray:
    """A short decaying sine burst: a sharp onset with a definite pitch (accent = other pitch)."""
    t = np.arange(int(length * sr)) / sr
    return (np.sin(2 * np.pi * freq * t) * np.exp(-t * 150.0)).astype(np.float32)


def _render(times: np.ndarray, levels: np.ndarray, duration: float, sr: int) -> np.ndarray:
    """levels: 2 = downbeat (high, loud), 1 = beat, 0 = off-beat (quiet)."""
    y = np.zeros(int(round(duration * sr)), dtype=np.float32)
    strong, weak = _click(sr, 1800.0), _click(sr, 900.0)
    gains = (0.25, 0.5, 0.9)
    for time, level in zip(times, levels, strict=True):
        click = strong if level == 2 else weak
        i = int(round(time * sr))
        n = min(click.shape[0], y.shape[0] - i)
        if n > 0:
            y[i : i + n] += click[:n] * gains[int(level)]
    return y


def click_track(
    tempo: float = 120.0,
    duration: float = 20.0,
    meter: int = 4,
    *,
    sr: int = SR,
    offset: float = 0.5,
    swing: float = 0.0,
    subdivide: bool = False,
) -> Clicks:
    """Clicks at ``tempo`` BPM, the first of every ``meter`` beats accented (higher, louder).

    ``subdivide`` adds quieter off-beat clicks (eighth notes); ``swing`` (0..1) delays them
    towards the triplet position (0.5 -> 2/3 of the beat at swing 1).
    """
    period = 60.0 / tempo
    beats = np.arange(offset, duration - 0.05, period)
    positions = (np.arange(beats.shape[0]) % meter + 1).astype(np.int16)
    times, levels = list(beats), list(np.where(positions == 1, 2, 1))
    if subdivide:
        off = period * (0.5 + swing / 6.0)
        extra = beats + off
        extra = extra[extra < duration - 0.05]
        times += list(extra)
        levels += [0] * extra.shape[0]
    y = _render(np.array(times), np.array(levels), duration, sr)
    return Clicks(audio=y, sr=sr, beats=beats, positions=positions, tempo=tempo)


def tempo_ramp(
    start_bpm: float, end_bpm: float, duration: float = 30.0, *, meter: int = 4, sr: int = SR
) -> Clicks:
    """Clicks whose tempo moves linearly from ``start_bpm`` to ``end_bpm`` over the track."""
    beats = [0.5]
    while True:
        frac = beats[-1] / duration
        bpm = start_bpm + (end_bpm - start_bpm) * frac
        nxt = beats[-1] + 60.0 / bpm
        if nxt >= duration - 0.05:
            break
        beats.append(nxt)
    times = np.array(beats)
    positions = (np.arange(times.shape[0]) % meter + 1).astype(np.int16)
    y = _render(times, np.where(positions == 1, 2, 1), duration, sr)
    return Clicks(audio=y, sr=sr, beats=times, positions=positions, tempo=start_bpm)


def midi_to_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def tone(freq: float, duration: float = 2.0, *, sr: int = SR, amplitude: float = 0.5) -> np.ndarray:
    """A sine with 10 ms fades (no clicks at the ends)."""
    t = np.arange(int(round(duration * sr))) / sr
    y = amplitude * np.sin(2 * np.pi * freq * t)
    ramp = min(int(0.01 * sr), y.shape[0] // 2)
    if ramp:
        env = np.linspace(0.0, 1.0, ramp)
        y[:ramp] *= env
        y[-ramp:] *= env[::-1]
    return y.astype(np.float32)


def chord(
    notes: list[int], duration: float = 2.0, *, sr: int = SR, harmonics: int = 4
) -> np.ndarray:
    """MIDI ``notes`` played together, each with a few decaying harmonics (piano-ish spectrum)."""
    y = np.zeros(int(round(duration * sr)), dtype=np.float64)
    for note in notes:
        f0 = midi_to_hz(note)
        for h in range(1, harmonics + 1):
            if f0 * h < sr / 2 - 100:
                y += tone(f0 * h, duration, sr=sr, amplitude=1.0 / h)
    peak = np.max(np.abs(y)) or 1.0
    return (0.6 * y / peak).astype(np.float32)


def progression(chords: list[list[int]], seconds_each: float = 2.0, *, sr: int = SR) -> np.ndarray:
    """Chords one after another (e.g. I-IV-V-I to make a key unambiguous)."""
    return np.concatenate([chord(c, seconds_each, sr=sr) for c in chords])


def noise(
    duration: float = 5.0, *, sr: int = SR, amplitude: float = 0.3, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.uniform(-1.0, 1.0, int(round(duration * sr)))).astype(np.float32)


def silence(duration: float = 5.0, *, sr: int = SR) -> np.ndarray:
    return np.zeros(int(round(duration * sr)), dtype=np.float32)


def to_rate(y: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample with soxr (a test helper: e.g. to write a 44.1 kHz MP3 of a 22.05 kHz signal)."""
    import soxr

    return soxr.resample(y, sr_from, sr_to).astype(np.float32)


_SUBTYPES = {
    "wav": "PCM_16",
    "flac": "PCM_16",
    "ogg": "VORBIS",
    "opus": "OPUS",
    "mp3": "MPEG_LAYER_III",
}
_CONTAINERS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "opus": "OGG", "mp3": "MP3"}


def write_audio(folder: Path, name: str, y: np.ndarray, sr: int = SR, fmt: str = "wav") -> Path:
    """Write ``y`` (mono (n,) or (n, channels)) to ``folder/name.fmt``; returns the path.

    Opus only takes 8/12/16/24/48 kHz: other rates are resampled to 48 kHz for it. An empty
    signal gives a header-only file.
    """
    path = Path(folder) / f"{name}.{fmt}"
    data = np.asarray(y, dtype=np.float32)
    if fmt == "m4a":
        _write_m4a(path, data, sr)
        return path
    import soundfile as sf

    if fmt == "opus" and sr not in (8000, 12000, 16000, 24000, 48000):
        data, sr = to_rate(data, sr, 48000), 48000
    channels = 1 if data.ndim == 1 else data.shape[1]
    # In blocks: one huge write into OGG Vorbis segfaults inside libsndfile 1.2.2 (seen with
    # 3 minutes of 44.1 kHz stereo), and blocks keep the writer's memory flat.
    with sf.SoundFile(
        path, "w", sr, channels, format=_CONTAINERS[fmt], subtype=_SUBTYPES[fmt]
    ) as out:
        for i in range(0, data.shape[0], 65536):
            out.write(data[i : i + 65536])
    return path


def _write_m4a(path: Path, y: np.ndarray, sr: int) -> None:
    import av

    channels = 1 if y.ndim == 1 else y.shape[1]
    layout = "mono" if channels == 1 else "stereo"
    planar = np.ascontiguousarray(y.reshape(-1, channels).T, dtype=np.float32)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sr, layout=layout)
        step = 1024
        for i in range(0, planar.shape[1], step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, i : i + step]), format="fltp", layout=layout
            )
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
