"""The committee (rhythm/committee.py): beat readings compared with each other, the one that
agrees most with the rest kept.

The agreement is checked on sequences whose relation is known (the same beats, jittered, at
another metrical level, unrelated); the choice on committees whose majority is known; and
``track(mode="committee")`` on real onset curves of signals made here, with hand-made model
outputs, and end to end through ``analyze`` with the committed network.
"""

from __future__ import annotations

from dataclasses import replace

import mir_eval
import numpy as np
import pytest
import soundfile as sf

from featherbeat.analysis.features.onset import onset_strength
from featherbeat.analysis.pipeline import analyze
from featherbeat.analysis.profile import Curves
from featherbeat.analysis.rhythm import committee, fusion, learned, track
from featherbeat.testing import signals

ACT_RATE = 43.07
ACT_OFFSET = 0.0058


def _grid(bpm: float, seconds: float = 30.0, start: float = 0.3) -> np.ndarray:
    return np.arange(start, seconds, 60.0 / bpm)


def _jitter(beats: np.ndarray, sd: float, seed: int) -> np.ndarray:
    return np.sort(beats + np.random.default_rng(seed).normal(0.0, sd, beats.size))


def test_agreement_is_one_for_identical_readings_and_symmetric():
    a = _grid(120.0)
    b = _jitter(_grid(97.0), 0.01, 1)
    assert committee.agreement(a, a) == pytest.approx(1.0)
    assert committee.agreement(a, b) == committee.agreement(b, a)
    assert 0.0 <= committee.agreement(a, b) <= 1.0
    m = committee.agreement_matrix([a, b, _grid(140.0)])
    np.testing.assert_array_equal(m, m.T)
    np.testing.assert_array_equal(np.diag(m), 1.0)


def test_agreement_orders_same_beats_above_other_level_above_unrelated():
    beats = _grid(120.0)
    same = _jitter(beats, 0.005, 2)  # the same beats, 5 ms apart
    double = _grid(240.0)  # the same pulse counted twice as fast
    unrelated = np.sort(np.random.default_rng(3).uniform(0.3, 30.0, beats.size))
    a_same = committee.agreement(beats, same)
    a_double = committee.agreement(beats, double)
    a_unrelated = committee.agreement(beats, unrelated)
    assert a_same > a_double > a_unrelated
    assert a_same > 0.6
    assert a_unrelated < 0.25


def test_agreement_is_blind_to_a_constant_offset():
    # Information gain measures how consistent the error is, not how large: the off-beats of a
    # sequence shifted by a quarter beat agree with it fully. (The committee cannot tell phase
    # errors apart.)
    beats = _grid(100.0)
    assert committee.agreement(beats, beats + 0.15) == pytest.approx(1.0)


def test_agreement_with_too_few_beats_is_zero():
    assert committee.agreement(np.array([1.0]), _grid(120.0)) == 0.0
    assert committee.agreement(np.zeros(0), np.zeros(0)) == 0.0


def test_choose_keeps_a_reading_of_the_majority():
    right = _grid(128.0)
    readings = [
        np.sort(np.random.default_rng(4).uniform(0.3, 30.0, 60)),  # lost
        _jitter(right, 0.006, 5),
        _jitter(right, 0.006, 6),
        _grid(128.0 * 1.37),  # another tempo, unrelated by a simple ratio
    ]
    best, mma = committee.choose(readings)
    assert best in (1, 2)
    assert 0.0 < mma < 1.0


def test_choose_gives_a_tie_to_the_first_and_mma_one_when_all_agree():
    a = _grid(110.0)
    assert committee.choose([a, a.copy(), a.copy()]) == (0, pytest.approx(1.0))
    assert committee.choose([a]) == (0, 1.0)
    with pytest.raises(ValueError):
        committee.choose([])


def _logits_at(bpm: float, width: float = 0.002) -> np.ndarray:
    bins = learned.bpm_bins()
    return (-(np.log(bins / bpm) ** 2) / width).astype(np.float32)


def _activations(duration: float, beats: np.ndarray) -> np.ndarray:
    n = int(duration * ACT_RATE)
    acts = np.full((n, 2), 0.02, np.float32)
    idx = np.round((beats - ACT_OFFSET) * ACT_RATE).astype(int)
    acts[idx[(idx >= 0) & (idx < n)], 0] = 0.9
    return acts


def test_track_keeps_the_onset_trackers_when_the_model_hears_another_tempo(monkeypatch):
    # Clicks at 100 BPM; the model's activation and tempo head say 137 BPM. With the fused
    # cues off, fused and DSP read the clicks and out-vote the learned reading.
    clicks = signals.click_track(100.0, 24.0, 4)
    other = _grid(137.0, 24.0, 0.45)
    onset, low, rate = onset_strength(clicks.audio)
    c = Curves(
        onset=onset,
        onset_low=low,
        onset_rate=rate,
        activations=_activations(25.0, other),
        tempo_logits=_logits_at(137.0),
        activation_rate=ACT_RATE,
        activation_offset=ACT_OFFSET,
    )
    monkeypatch.setattr(fusion, "HEAD_WEIGHT", 0.0)
    monkeypatch.setattr(fusion, "BEAT_WEIGHT", 0.0)
    assert track(c, mode="learned").tempo == pytest.approx(137.0, rel=0.03)  # it does disagree
    chosen, dsp = track(c, mode="committee"), track(c, mode="dsp")
    np.testing.assert_array_equal(chosen.beats, dsp.beats)
    assert chosen.tempo == pytest.approx(100.0, rel=0.02)
    # Without the model's outputs the committee is the DSP tracker.
    bare = replace(c, activations=np.zeros((0, 2), np.float32))
    np.testing.assert_array_equal(track(bare, mode="committee").beats, dsp.beats)


def _f(ref: np.ndarray, est: np.ndarray) -> float:
    return mir_eval.beat.f_measure(mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(est))


def test_committee_analysis_of_a_groove_is_one_of_the_readings(tmp_path):
    from test_rhythm import groove

    y, truth, pos = groove(120.0, 4, bars=14)
    path = tmp_path / "groove.wav"
    sf.write(path, y, signals.SR)
    r = analyze(str(path), rhythm="committee").rhythm
    readings = [analyze(str(path), rhythm=m).rhythm.beats for m in ("fused", "dsp", "learned")]
    assert any(b.size == r.beats.size and np.allclose(b, r.beats, atol=1e-4) for b in readings)
    assert _f(truth, r.beats.astype(float)) > 0.9
    assert r.tempo == pytest.approx(120.0, rel=0.04)
    assert _f(truth[pos == 1], r.downbeats.astype(float)) > 0.9
