"""The training corpus builder's score generator and MIDI writer (train/corpus.py), without
rendering: fluidsynth and torch are training-time tools, not installed in CI."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus():
    spec = importlib.util.spec_from_file_location("train_corpus", ROOT / "train" / "corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_corpus"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", range(12))
def test_scores_have_consistent_beat_and_bar_labels(corpus, seed):
    sc = corpus.make_score(np.random.default_rng(seed), 34.0)
    meters = {m[0]: m[1] for m in corpus.METERS}
    bpb = meters[sc.meter]
    assert np.all(np.diff(sc.beats) > 0)
    assert sc.positions[0] == 1 and set(np.unique(sc.positions)) == set(range(1, bpb + 1))
    assert np.array_equal(sc.positions, np.arange(sc.positions.size) % bpb + 1)
    # The labelled tempo is the score's: the median beat period within 20 % of 60 / bpm
    # (rubato and fermatas move single beats, not the median).
    assert np.median(np.diff(sc.beats)) == pytest.approx(60.0 / sc.bpm, rel=0.2)
    assert sc.beats[-1] >= 34.0 and 40.0 <= sc.bpm <= 220.0
    assert sc.notes, "a score plays something"
    onsets = np.array([n.t for n in sc.notes])
    assert onsets.min() >= 0.0


def test_same_seed_same_score(corpus):
    a = corpus.make_score(np.random.default_rng(5), 30.0)
    b = corpus.make_score(np.random.default_rng(5), 30.0)
    assert np.array_equal(a.beats, b.beats) and len(a.notes) == len(b.notes)


def test_midi_file_is_well_formed(corpus, tmp_path):
    sc = corpus.make_score(np.random.default_rng(3), 20.0)
    path = tmp_path / "x.mid"
    corpus.write_midi(sc, path)
    data = path.read_bytes()
    assert data[:4] == b"MThd"
    _, fmt, ntrk, division = struct.unpack(">IHHH", data[4:14])
    assert (fmt, ntrk, division) == (0, 1, corpus.TICKS)
    assert data[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", data[18:22])
    assert len(data) == 22 + length and data.endswith(b"\x00\xff\x2f\x00")
    # Every note-on has its note-off: count status bytes 0x9n / 0x8n after delta times.
    assert data.count(b"\xff\x51\x03") == 1  # one tempo event (120 BPM: ticks are seconds)
