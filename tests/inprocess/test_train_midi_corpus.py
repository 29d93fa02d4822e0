"""The real-compositions corpus builder (train/midi_corpus.py) without rendering: beat units of
time signatures, the tempo warp, the MIDI writer, and (where mido, a `train` extra, is
installed) the beat and bar labels read from a MIDI file's tempo map and time signatures."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def midi_corpus():
    sys.path.insert(0, str(ROOT / "train"))
    spec = importlib.util.spec_from_file_location(
        "train_midi_corpus", ROOT / "train" / "midi_corpus.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_midi_corpus"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("num", "den", "ticks", "per_bar"),
    [
        (4, 4, 480, 4),
        (3, 4, 480, 3),
        (2, 2, 960, 2),
        (6, 8, 720, 2),  # compound: the dotted quarter is the beat
        (12, 8, 720, 4),
        (3, 8, 240, 3),
        (7, 8, 240, 7),  # irregular: the eighth is the beat
    ],
)
def test_beat_unit_of_time_signatures(midi_corpus, num, den, ticks, per_bar):
    assert midi_corpus._beat_unit(num, den, 480) == (ticks, per_bar)


@pytest.mark.parametrize("seed", range(8))
def test_warp_is_monotone_and_bounded(midi_corpus, seed):
    grid, new = midi_corpus._warp(np.random.default_rng(seed), 120.0)
    assert new[0] == 0.0 and np.all(np.diff(new) > 0)
    rate = np.diff(new) / np.diff(grid)
    # global scale 0.8..1.25 times local log-rate clipped at +-0.3
    assert rate.min() >= np.exp(-0.3) / 1.25 - 1e-9 and rate.max() <= np.exp(0.3) / 0.8 + 1e-9


def test_written_events_are_a_well_formed_midi_file(midi_corpus, tmp_path):
    events = [
        (0.0, 0, bytes([0xC0, 5])),
        (0.5, 2, bytes([0x90, 60, 100])),
        (1.0, 1, bytes([0x80, 60, 0])),
    ]
    path = tmp_path / "x.mid"
    midi_corpus.write_events(events, path)
    data = path.read_bytes()
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", data[18:22])
    assert len(data) == 22 + length and data.endswith(b"\x00\xff\x2f\x00")
    assert bytes([0x90, 60, 100]) in data and bytes([0x80, 60, 0]) in data


def test_beats_and_bars_follow_tempo_map_and_time_signature(midi_corpus, tmp_path):
    mido = pytest.importorskip("mido")
    tpq = 480
    mid = mido.MidiFile(ticks_per_beat=tpq)
    meta, notes = mido.MidiTrack(), mido.MidiTrack()
    mid.tracks += [meta, notes]
    # 2 bars of 3/4 at 120 BPM, then 90 BPM; 6/8 from bar 5 (tick 12 * 480).
    meta.append(mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=666667, time=6 * tpq))
    meta.append(mido.MetaMessage("time_signature", numerator=6, denominator=8, time=6 * tpq))
    for _ in range(80):  # 80 eighth notes = 40 quarters
        notes.append(mido.Message("note_on", note=60, velocity=90, time=0))
        notes.append(mido.Message("note_off", note=60, velocity=0, time=tpq // 2))
    path = tmp_path / "piece.mid"
    mid.save(str(path))
    piece = midi_corpus.parse(path)
    assert piece is not None and piece.meter_known
    # 3/4: 12 quarter beats, 6 at 0.5 s then 6 at 0.667 s; 6/8: dotted quarters (1 s at 90).
    expected = np.concatenate([np.arange(6) * 0.5, 3.0 + np.arange(6) * 2 / 3])
    np.testing.assert_allclose(piece.beats[:12], expected, atol=1e-4)
    np.testing.assert_allclose(np.diff(piece.beats[12:16]), 1.0, atol=1e-4)
    assert piece.positions[:14].tolist() == [1, 2, 3] * 4 + [1, 2]
