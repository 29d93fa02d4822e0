"""Sections end to end: a rendered verse/chorus song through featherbeat.analyze."""

from __future__ import annotations

import numpy as np

import featherbeat
from featherbeat.testing import signals

PROGRESSIONS = {
    "A": [[48, 60, 64, 67], [45, 57, 60, 64], [41, 57, 60, 65], [43, 55, 59, 62]],  # C Am F G
    "B": [[41, 65, 69, 72], [43, 67, 71, 74], [40, 64, 67, 71], [45, 69, 72, 76]],  # F G Em Am
}


def _decaying(sound: np.ndarray, seconds: float, rate: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (sound[: t.size] * np.exp(-t * rate)).astype(np.float32)


def _add(y: np.ndarray, at: float, sound: np.ndarray, sr: int) -> None:
    i = int(round(at * sr))
    n = max(min(sound.size, y.size - i), 0)
    y[i : i + n] += sound[:n]


def song(
    parts: str = "ABAB", bars_per_part: int = 8, bpm: float = 120.0, sr: int = signals.SR
) -> np.ndarray:
    """Verse (A: C Am F G, kick and snare) and chorus (B: F G Em Am, louder, hi-hats on the
    off-beats) alternating; every part ``bars_per_part`` bars of 4/4 at ``bpm``."""
    beat = 60.0 / bpm
    bar = 4 * beat
    rng = np.random.default_rng(0)
    t = np.arange(int(0.12 * sr)) / sr
    kick = _decaying(np.sin(2 * np.pi * 60 * t), 0.12, 30, sr)
    snare = 0.4 * _decaying(rng.uniform(-1, 1, t.size), 0.12, 40, sr)
    hat = 0.2 * _decaying(rng.uniform(-1, 1, t.size), 0.03, 150, sr)
    out = []
    for part in parts:
        y = np.zeros(int(round(bars_per_part * bar * sr)), dtype=np.float32)
        gain = 0.5 if part == "A" else 0.8
        for b in range(bars_per_part):
            _add(y, b * bar, signals.chord(PROGRESSIONS[part][b % 4], bar, sr=sr) * gain, sr)
        for k in range(bars_per_part * 4):
            _add(y, k * beat, kick if k % 2 == 0 else snare, sr)
            if part == "B":
                _add(y, (k + 0.5) * beat, hat, sr)
        out.append(y)
    y = np.concatenate(out)
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


def test_rendered_song_sections(tmp_path) -> None:
    path = signals.write_audio(tmp_path, "song", song("ABAB", 8, 120.0))
    profile = featherbeat.analyze(path)
    assert "sections" not in profile.missing
    starts = np.array([s.start for s in profile.sections])
    # Part changes every 8 bars of 2 s. Within one bar: the boundary is found from the sound
    # itself even where the rhythm stage gets the bar phase wrong.
    for change in (16.0, 32.0, 48.0):
        assert np.min(np.abs(starts - change)) <= 2.0, starts
    assert len(profile.sections) <= 6
    labels = [s.label for s in profile.sections if s.duration > 8]
    assert labels[:4] == ["A", "B", "A", "B"]
    loud = {s.label: s.loudness for s in profile.sections}
    assert loud["B"] > loud["A"]  # the chorus is louder
