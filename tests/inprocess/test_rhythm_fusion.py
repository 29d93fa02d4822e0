"""The fused tracker (rhythm/fusion.py): the learned model's cues inside the DSP tracker.

Real onset curves of signals made here; the model's outputs are either the committed network's
(end to end through analyze) or hand-made activations and tempo logits, so that each cue is
seen to move the decision it is meant to move.
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
from featherbeat.analysis.rhythm import DETECTION_LAG_S, fusion, learned, tempo, track
from featherbeat.analysis.rhythm.beats import BeatLogOdds
from featherbeat.testing import signals

SR = signals.SR
ACT_RATE = 43.07
ACT_OFFSET = 0.0058


def _logits_at(bpm: float, width: float = 0.002) -> np.ndarray:
    bins = learned.bpm_bins()
    return (-(np.log(bins / bpm) ** 2) / width).astype(np.float32)


def _activations(duration: float, beats: np.ndarray, downbeats: np.ndarray) -> np.ndarray:
    n = int(duration * ACT_RATE)
    acts = np.full((n, 2), 0.02, np.float32)
    for col, times in ((0, beats), (1, downbeats)):
        idx = np.round((times - ACT_OFFSET) * ACT_RATE).astype(int)
        idx = idx[(idx >= 0) & (idx < n)]
        acts[idx, col] = 0.9
    return acts


def _curves(y: np.ndarray, acts: np.ndarray, logits: np.ndarray) -> Curves:
    onset, low, rate = onset_strength(y)
    return Curves(
        onset=onset,
        onset_low=low,
        onset_rate=rate,
        activations=acts,
        tempo_logits=logits,
        activation_rate=ACT_RATE,
        activation_offset=ACT_OFFSET,
    )


def _f(ref: np.ndarray, est: np.ndarray) -> float:
    return mir_eval.beat.f_measure(mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(est))


def test_head_prior_peaks_at_the_heads_tempo_and_is_bounded():
    bpms = tempo.bpm_grid(tempo.LOCAL_GRID)
    prior = fusion.head_log_prior(_logits_at(150.0), bpms)
    assert prior is not None
    assert bpms[np.argmax(prior)] == pytest.approx(150.0, rel=0.03)
    # The floor: a tempo the head rules out costs at most weight * log(floor), not -inf.
    assert prior.min() >= fusion.HEAD_WEIGHT * np.log(fusion.HEAD_FLOOR) - 1e-9
    assert fusion.head_log_prior(np.zeros(5), bpms) is None  # logits of another model
    assert fusion.head_log_prior(np.full(learned.bpm_bins().size, np.nan), bpms) is None


def _beat_evidence(odf, beat_act, rate, lo=0, hi=None):
    """The fused log-odds minus the DSP tracker's: the model's beat evidence alone."""
    hi = odf.size if hi is None else hi
    fused = fusion.FusedLogOdds(odf, beat_act, rate, ACT_RATE, ACT_OFFSET, DETECTION_LAG_S)
    return fused.block(lo, hi) - BeatLogOdds(odf).block(lo, hi)


def test_beat_evidence_is_read_when_the_sound_starts_and_blocks_change_nothing(monkeypatch):
    rate, n = 86.13, 3000
    peak_s = ACT_OFFSET + 430 / ACT_RATE  # on a model frame
    acts = _activations(n / rate + 1, np.array([peak_s]), np.zeros(0))
    odf = np.zeros(n)
    w = _beat_evidence(odf, acts[:, 0], rate)
    # The onset curve peaks DETECTION_LAG_S before the sound: those frames get the evidence
    # (the rescaled activation saturates near its peak, so the evidence is a short plateau).
    top = np.flatnonzero(w >= w.max() - 1e-9)
    assert top.mean() / rate == pytest.approx(peak_s - DETECTION_LAG_S, abs=1.0 / rate)
    assert w.max() > 0 > np.median(w)
    # The Viterbi asks for blocks, and each block is done in chunks: neither moves a value.
    monkeypatch.setattr(fusion, "CHUNK", 257)
    w2 = np.concatenate(
        [
            _beat_evidence(odf, acts[:, 0], rate, 0, 1234),
            _beat_evidence(odf, acts[:, 0], rate, 1234),
        ]
    )
    np.testing.assert_allclose(w2, w)


def test_downbeat_cue_is_high_on_the_activations_downbeats():
    beats = 0.5 + 0.6 * np.arange(40)
    acts = _activations(26.0, beats, beats[1::4])
    cue = fusion.downbeat_cue(acts[:, 1], ACT_RATE, ACT_OFFSET, beats + 0.004)
    assert np.all(cue[1::4] > 2.0)
    assert np.all(np.delete(cue, np.arange(1, 40, 4)) < -2.0)


def test_zero_weights_are_the_dsp_tracker_exactly(monkeypatch):
    clicks = signals.click_track(100.0, 20.0, 4)
    c = _curves(clicks.audio, _activations(21.0, clicks.beats, clicks.beats[::4]), _logits_at(200))
    for name in ("HEAD_WEIGHT", "BEAT_WEIGHT", "DOWNBEAT_WEIGHT"):
        monkeypatch.setattr(fusion, name, 0.0)
    fused, dsp = track(c, mode="fused"), track(c, mode="dsp")
    np.testing.assert_array_equal(fused.beats, dsp.beats)
    np.testing.assert_array_equal(fused.beat_position, dsp.beat_position)
    bare = replace(c, activations=np.zeros((0, 2), np.float32))
    np.testing.assert_array_equal(track(bare, mode="fused").beats, dsp.beats)


def test_the_tempo_head_chooses_the_metrical_level_the_comb_leaves_open(monkeypatch):
    # Quarter clicks at 90 BPM with softer eighth clicks in between: both 90 and 180
    # BPM are a pulse. With the head at 180 and a strong enough weight the fused tracker counts
    # eighths; with the head at 90 it counts quarters.
    y = signals.click_track(90.0, 24.0, subdivide=True).audio
    monkeypatch.setattr(fusion, "HEAD_WEIGHT", 1.0)
    monkeypatch.setattr(fusion, "BEAT_WEIGHT", 0.0)
    flat = np.full((int(25 * ACT_RATE), 2), 0.1, np.float32)
    fast = track(_curves(y, flat, _logits_at(180.0)), mode="fused")
    slow = track(_curves(y, flat, _logits_at(90.0)), mode="fused")
    assert fast.tempo == pytest.approx(180.0, rel=0.03)
    assert slow.tempo == pytest.approx(90.0, rel=0.03)


def test_the_fused_confidence_weighs_readings_by_the_head_too(monkeypatch):
    # Quarter clicks at 90 BPM with softer eighths: 90 and 180 are both readings of the comb.
    # The fused tracker decides with the head in the prior, so its confidence does too: a head
    # sure of the reported tempo makes it surer than the comb alone; zero weight is the DSP's.
    y = signals.click_track(90.0, 24.0, subdivide=True).audio
    monkeypatch.setattr(fusion, "BEAT_WEIGHT", 0.0)
    flat = np.full((int(25 * ACT_RATE), 2), 0.1, np.float32)
    c = _curves(y, flat, _logits_at(90.0))
    dsp = track(c, mode="dsp")
    monkeypatch.setattr(fusion, "HEAD_WEIGHT", 0.0)
    assert track(c, mode="fused").tempo_confidence == dsp.tempo_confidence
    monkeypatch.setattr(fusion, "HEAD_WEIGHT", 1.0)
    sure = track(c, mode="fused")
    assert sure.tempo == pytest.approx(dsp.tempo, rel=0.01)
    assert sure.tempo_confidence > dsp.tempo_confidence + 0.2


def test_the_beat_activation_moves_beats_onto_its_phase(monkeypatch):
    # Clicks on every eighth at 200 BPM: the onset curve alone cannot say which of each pair is
    # the beat at 100 BPM. The activation marks the second of each pair; with the beat cue the
    # tracker follows it.
    eighths = signals.click_track(200.0, 24.0, meter=1)  # all clicks alike
    off = eighths.beats[1::2]
    monkeypatch.setattr(fusion, "HEAD_WEIGHT", 1.0)
    monkeypatch.setattr(fusion, "BEAT_WEIGHT", 1.0)
    c = _curves(eighths.audio, _activations(25.0, off, off[::4]), _logits_at(100.0))
    r = track(c, mode="fused")
    assert r.tempo == pytest.approx(100.0, rel=0.03)
    assert _f(off, r.beats.astype(float)) > 0.95


def test_fused_analysis_of_a_groove_end_to_end(tmp_path):
    from test_rhythm import groove

    y, truth, pos = groove(120.0, 4, bars=14)
    path = tmp_path / "groove.wav"
    sf.write(path, y, SR)
    profile = analyze(str(path), rhythm="fused")
    assert "rhythm_model" not in profile.missing
    assert profile.curves.activations.shape[0] > 0  # the model ran
    r = profile.rhythm
    assert _f(truth, r.beats.astype(float)) > 0.9
    assert r.tempo == pytest.approx(120.0, rel=0.04)
    assert _f(truth[pos == 1], r.downbeats.astype(float)) > 0.9


def test_fused_mode_with_damaged_weights_is_the_dsp_tracker_and_says_so(tmp_path, monkeypatch):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip" * 20)
    monkeypatch.setenv("FEATHERBEAT_RHYTHM_WEIGHTS", str(bad))
    clicks = signals.click_track(120.0, 12.0)
    audio = tmp_path / "clicks.wav"
    sf.write(audio, clicks.audio, SR)
    profile = analyze(str(audio), rhythm="fused")
    why = profile.missing["rhythm_model"]
    assert why.endswith("DSP tracker used") and "\n" not in why
    assert profile.rhythm.tempo == pytest.approx(120.0, rel=0.02)
    assert profile.curves.activations.size == 0
