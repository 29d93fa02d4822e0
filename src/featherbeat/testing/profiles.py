"""Profiles built from synthetic curves, for the format, schema and structure tests.

Shared by the format, schema and structure tests so every serializer is
exercised on exactly the same known content. ``synthetic_profile`` runs the real structure
stages on the curves (no stand-ins for our own code); only the curves are made up.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.profile import Curves, Peaks, Profile, Rhythm, Source
from featherbeat.analysis.rhythm.bars import with_intervals
from featherbeat.analysis.structure import fades, key, loudness, sections, segments

FRAME_RATE = 22050 / 512
ONSET_RATE = 22050 / 256
C_MAJOR = np.array([1, 0, 0.3, 0, 0.8, 0.3, 0, 0.9, 0, 0.3, 0, 0.2])  # C, E, G strong


def rotated(pitch_vector: np.ndarray, semitones: int) -> np.ndarray:
    return np.roll(np.asarray(pitch_vector, dtype=np.float64), semitones)


def synthetic_curves(
    duration: float,
    *,
    tempo: float = 120.0,
    parts: list[tuple[float, int, float]] | None = None,
    seed: int = 0,
) -> tuple[Curves, Rhythm]:
    """Curves and a 4/4 rhythm for a track of ``duration`` seconds at ``tempo`` BPM.

    ``parts``: (start seconds, chroma rotation, timbre offset) — each part has its own harmony
    and timbre, so its start is a section boundary with a known place. Onsets on every beat.
    """
    rng = np.random.default_rng(seed)
    parts = parts or [(0.0, 0, 0.0)]
    n = int(duration * FRAME_RATE)
    t = np.arange(n) / FRAME_RATE
    chroma = np.zeros((n, 12))
    timbre = rng.normal(0.0, 5.0, (n, 12))
    starts = [p[0] for p in parts] + [duration]
    for (start, shift, offset), end in zip(parts, starts[1:], strict=True):
        inside = (t >= start) & (t < end)
        chroma[inside] = rotated(C_MAJOR, shift) + rng.uniform(0, 0.1, (int(inside.sum()), 12))
        timbre[inside] += offset
    timbre[:, 0] += 40.0
    period = 60.0 / tempo
    beats = np.arange(0.5, duration - 0.1, period)
    beat_pos = (np.arange(beats.size) % 4 + 1).astype(np.int16)
    # A decaying level after every beat, so segments see an attack and a release.
    since = (t - 0.5) % period
    loud = np.where(t >= 0.5, -8.0 - 20.0 * since / period, -60.0)
    onset = np.zeros(int(duration * ONSET_RATE))
    onset[np.round(beats * ONSET_RATE).astype(int).clip(0, onset.size - 1)] = 1.0
    onset += rng.uniform(0, 0.02, onset.size)
    curves = Curves(
        onset_rate=ONSET_RATE,
        onset=onset.astype(np.float32),
        frame_rate=FRAME_RATE,
        loudness=loud.astype(np.float32),
        energy=(10 ** (loud / 20)).astype(np.float32),
        centroid=np.full(n, 1500.0, dtype=np.float32),
        chroma=chroma.astype(np.float32),
        timbre=timbre.astype(np.float32),
    )
    rhythm = Rhythm(
        tempo=tempo,
        tempo_confidence=0.8,
        time_signature=4,
        time_signature_confidence=0.9,
        beats=beats,
        beat_confidence=np.full(beats.size, 0.9),
        beat_position=beat_pos,
        tatums=np.arange(0.5, duration - 0.1, period / 2),
        tatum_confidence=np.full(np.arange(0.5, duration - 0.1, period / 2).size, 0.7),
        tempo_curve_times=np.arange(0.0, duration, 1.0),
        tempo_curve_bpm=np.full(int(np.ceil(duration)), tempo),
    )
    return curves, rhythm


def synthetic_profile(duration: float = 60.0, **kw) -> Profile:
    """A whole Profile: synthetic curves, real structure stages."""
    curves, rhythm = synthetic_curves(duration, **kw)
    segs = segments.find_segments(curves)
    tone = key.estimate_key(curves.chroma)
    fade_in, fade_out = fades.find_fades(curves, duration)
    peaks_n = int(duration * 100)
    wave = np.sin(np.arange(peaks_n) / 7.0) * 0.5
    return Profile(
        source=Source(
            name="synthetic",
            duration=duration,
            sample_rate=22050,
            channels=1,
            num_samples=int(duration * 22050),
            decoder="synthetic curves",
        ),
        curves=curves,
        peaks=Peaks(
            rate=100.0, min=(wave - 0.1).astype(np.float32), max=(wave + 0.1).astype(np.float32)
        ),
        rhythm=with_intervals(rhythm, duration),
        segments=segs,
        sections=sections.find_sections(curves, rhythm),
        tonality=tone,
        loudness=loudness.track_loudness(curves),
        end_of_fade_in=fade_in,
        start_of_fade_out=fade_out,
        analysis_time=0.5,
        timestamp=1_700_000_000,
    )
