"""Key and mode: key-profile correlation on chroma vectors and on chords rendered as audio."""

from __future__ import annotations

import numpy as np
import pytest

import featherbeat
from featherbeat.analysis.structure.key import estimate_key, key_scores
from featherbeat.testing import signals

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)


def _scale_chroma(tonic: int, degrees: tuple[int, ...], tonic_weight: float = 2.0) -> np.ndarray:
    v = np.zeros(12)
    v[[(tonic + d) % 12 for d in degrees]] = 1.0
    v[tonic] = tonic_weight  # the tonic (and fifth) sound most, as in real music
    v[(tonic + 7) % 12] = 1.5
    return np.tile(v, (20, 1))


@pytest.mark.parametrize("tonic", range(12))
def test_major_and_minor_scales_in_every_key(tonic: int) -> None:
    major = estimate_key(_scale_chroma(tonic, MAJOR_SCALE))
    assert (major.key, major.mode) == (tonic, 1)
    minor = estimate_key(_scale_chroma(tonic, HARMONIC_MINOR))
    assert (minor.key, minor.mode) == (tonic, 0)
    assert 0 < minor.key_confidence <= 1 and 0 < minor.mode_confidence <= 1


def test_silence_flat_and_empty_give_no_key() -> None:
    roundoff = np.random.default_rng(0).uniform(0, 5e-14, (50, 12))  # what silence leaves
    for chroma in (np.zeros((50, 12)), np.ones((50, 12)), np.zeros((0, 12)), roundoff):
        tone = estimate_key(chroma)
        assert (tone.key, tone.mode, tone.key_confidence, tone.mode_confidence) == (-1, -1, 0, 0)


@pytest.mark.parametrize("level", [0.5, -0.25, 1e-3])
def test_constant_level_has_no_key(tmp_path, level: float) -> None:
    # Issue 10.4: a constant level (DC) was reported as a key with confidence 0.68.
    y = np.full(5 * signals.SR, level, dtype=np.float32)
    profile = featherbeat.analyze(signals.write_audio(tmp_path, "dc", y))
    tone = profile.tonality
    assert (tone.key, tone.mode, tone.key_confidence, tone.mode_confidence) == (-1, -1, 0, 0)
    assert all(s.key == -1 and s.key_confidence == 0 for s in profile.sections)


@pytest.mark.parametrize("seconds", [3.0, 12.0])
def test_noise_has_no_key(tmp_path, seconds: float) -> None:
    profile = featherbeat.analyze(signals.write_audio(tmp_path, "noise", signals.noise(seconds)))
    assert (profile.tonality.key, profile.tonality.key_confidence) == (-1, 0.0)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        estimate_key(np.zeros((10, 7)))
    with pytest.raises(ValueError, match="numeric"):
        estimate_key(np.array([["a"] * 12]))


def test_silent_audio_has_no_key(tmp_path) -> None:
    profile = featherbeat.analyze(signals.write_audio(tmp_path, "silence", signals.silence(4.0)))
    assert (profile.tonality.key, profile.tonality.mode) == (-1, -1)
    assert all(s.key == -1 for s in profile.sections)


def test_single_vector_and_nan_are_accepted() -> None:
    v = _scale_chroma(2, MAJOR_SCALE)[0]
    assert estimate_key(v).key == 2
    noisy = _scale_chroma(2, MAJOR_SCALE)
    noisy[3, 4] = np.nan
    assert estimate_key(noisy).key == 2


def test_confidence_grows_with_clarity() -> None:
    clear = estimate_key(_scale_chroma(0, MAJOR_SCALE))
    rng = np.random.default_rng(1)
    muddy = estimate_key(_scale_chroma(0, MAJOR_SCALE) + rng.uniform(0, 2.0, (20, 12)))
    assert clear.key_confidence > muddy.key_confidence


def test_scores_are_correlations() -> None:
    s = key_scores(_scale_chroma(0, MAJOR_SCALE))
    assert s.shape == (2, 12)
    assert np.all(np.abs(s) <= 1.0 + 1e-9)


# I-IV-V-I cadences, rendered with harmonics (what the real chroma feature sees).
CADENCES = {
    ("D", 1): [[62, 66, 69], [67, 71, 74], [69, 73, 76], [62, 66, 69]],  # D G A D
    ("F", 1): [[65, 69, 72], [70, 74, 77], [72, 76, 79], [65, 69, 72]],  # F Bb C F
    ("A", 0): [[57, 60, 64], [62, 65, 69], [64, 68, 71], [57, 60, 64]],  # Am Dm E Am
    ("E", 0): [[64, 67, 71], [69, 72, 76], [71, 75, 78], [64, 67, 71]],  # Em Am B Em
}


@pytest.mark.parametrize(("name", "mode"), list(CADENCES))
def test_key_of_rendered_cadences(tmp_path, name: str, mode: int) -> None:
    audio = signals.progression(CADENCES[(name, mode)] * 2, 1.0)
    path = signals.write_audio(tmp_path, "cadence", audio)
    profile = featherbeat.analyze(path)
    assert "key" not in profile.missing
    assert signals.NOTE_NAMES[profile.tonality.key] == name
    assert profile.tonality.mode == mode
    assert profile.tonality.key_confidence > 0.1
