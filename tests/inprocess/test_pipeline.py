"""analyze(): the whole streaming pass on generated audio, progress, reduced mode, guarded stages."""

from __future__ import annotations

import io

import numpy as np
import pytest

import featherbeat
from featherbeat.analysis.errors import DecodeError, InputTooLongError
from featherbeat.analysis.pipeline import guard
from featherbeat.analysis.profile import Profile
from featherbeat.testing import signals

SR = 22050


@pytest.fixture(scope="module")
def clicks_path(tmp_path_factory):
    clicks = signals.click_track(120.0, 20.0, 4)
    y = clicks.audio + signals.chord([57, 60, 64], 20.0) * 0.2  # A minor under the clicks
    path = signals.write_audio(tmp_path_factory.mktemp("pipe"), "clicks", y, SR, "flac")
    return path, clicks


def test_profile_of_a_click_track(clicks_path):
    path, clicks = clicks_path
    profile = featherbeat.analyze(path)
    assert isinstance(profile, Profile)
    assert profile.duration == pytest.approx(20.0, abs=1e-3)
    assert profile.source.name == "clicks.flac" and profile.source.channels == 1
    n = -(-profile.source.num_samples // 512)
    curves = profile.curves
    for name in ("loudness", "energy", "centroid"):
        assert getattr(curves, name).shape == (n,), name
    assert curves.chroma.shape == (n, 12) and curves.timbre.shape == (n, 12)
    assert curves.onset.shape[0] > 0 and curves.onset_rate > curves.frame_rate
    assert profile.peaks.min.shape[0] == pytest.approx(20 * profile.peaks.rate, abs=1)
    assert profile.tempo == pytest.approx(120.0, rel=0.04)
    # Beats where the clicks are (within 70 ms, as mir_eval's F-measure window).
    est = profile.beats
    hits = sum(np.min(np.abs(est - b)) < 0.07 for b in clicks.beats[2:-2])
    assert hits >= 0.9 * (clicks.beats.shape[0] - 4)
    assert profile.analysis_time > 0 and profile.timestamp > 0


def test_progress_is_monotonic_staged_and_bounded(clicks_path):
    path, _ = clicks_path
    calls: list[tuple[float, str]] = []
    featherbeat.analyze(path, progress=lambda f, s: calls.append((f, s)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and calls[-1] == (1.0, "done")
    stages = [s for _, s in calls]
    order = ["decoding", "rhythm", "structure", "done"]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == order
    assert len(calls) <= 110  # at most about one call per percent


def test_file_object_input(clicks_path):
    path, _ = clicks_path
    profile = featherbeat.analyze(io.BytesIO(path.read_bytes()))
    assert profile.duration == pytest.approx(20.0, abs=1e-3)
    assert profile.tempo == pytest.approx(120.0, rel=0.04)


def test_reduced_keeps_rhythm_and_loudness_only(clicks_path):
    path, _ = clicks_path
    profile = featherbeat.analyze(path, reduced=True)
    assert profile.reduced and profile.status_code == 1
    assert profile.tempo == pytest.approx(120.0, rel=0.04) and profile.beats.shape[0] > 30
    assert profile.curves.loudness.shape[0] > 0 and profile.curves.chroma.shape[0] == 0
    for stage in ("segments", "key", "sections"):
        assert "reduced" in profile.missing[stage]
    assert len(profile.segments) == 0 and profile.sections == []


def test_silence_has_no_beats(tmp_path):
    path = signals.write_audio(tmp_path, "quiet", signals.silence(6.0), SR, "wav")
    profile = featherbeat.analyze(path)
    assert profile.tempo == 0.0 and profile.rhythm.tempo_confidence == 0.0
    assert profile.beats.shape[0] == 0
    assert np.all(profile.curves.loudness == -60.0)


def test_max_duration(tmp_path):
    path = signals.write_audio(tmp_path, "long", signals.noise(12.0), SR, "ogg")
    with pytest.raises(InputTooLongError):
        featherbeat.analyze(path, max_duration=5.0)
    assert featherbeat.analyze(path, max_duration=30.0).duration == pytest.approx(12.0, abs=0.05)


def test_decode_error_is_a_value_error(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage garbage garbage")
    with pytest.raises(ValueError, match="x.wav"):
        featherbeat.analyze(bad)
    with pytest.raises(DecodeError):
        featherbeat.analyze(bad)


def test_a_failing_stage_is_recorded_not_raised():
    from featherbeat.analysis.profile import Tonality
    from featherbeat.analysis.structure.key import estimate_key

    profile = Profile()
    # A real stage fed what it cannot use raises inside; the guard records it and the
    # assignment never happens, so the field keeps its empty default.
    with guard(profile, "key"):
        profile.tonality = estimate_key(np.array(["not a chroma"]))
    assert profile.tonality == Tonality()
    assert profile.missing["key"].startswith("failed (ValueError: chroma must be numeric")
    with guard(profile, "loudness"):
        profile.loudness = 0.0  # a stage that succeeds records nothing
    assert "loudness" not in profile.missing and profile.loudness == 0.0
    assert profile.status_code == 1 and "key: failed" in profile.detailed_status


def test_a_stage_result_that_breaks_the_invariants_counts_as_failed():
    from featherbeat.analysis.profile import Rhythm

    profile = Profile()
    bad = Rhythm(beats=np.array([0.5, 1.0]), beat_confidence=np.ones(2))  # no positions
    with guard(profile, "rhythm"):
        bad.check()
        profile.rhythm = bad
    assert profile.rhythm.beats.size == 0
    assert profile.missing["rhythm"].startswith("failed (ValueError: rhythm.beat_position has 0")


def test_analysis_runs_with_one_blas_thread_and_restores_it(clicks_path):
    from featherbeat.analysis.pipeline import _one_blas_thread, _openblas

    blas = _openblas()
    if blas is None:
        pytest.skip("numpy is not linked to OpenBLAS here")
    setter, getter = blas
    setter(2)
    with _one_blas_thread():
        assert getter() == 1
    assert getter() == 2
    featherbeat.analyze(clicks_path[0])
    assert getter() == 2
