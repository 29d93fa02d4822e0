"""Framing, STFT and per-frame features on signals of known content; streaming == one shot."""

from __future__ import annotations

import numpy as np
import pytest

from featherbeat.analysis.features import timbre
from featherbeat.analysis.features.chroma import Chroma
from featherbeat.analysis.features.peaks import WaveformPeaks
from featherbeat.analysis.features.spectrum import HOP, FrameFeatures
from featherbeat.analysis.stft import STFT, Framer
from featherbeat.testing import signals

SR = 22050


def _frames(framer: Framer, y: np.ndarray, step: int) -> np.ndarray:
    parts = [framer.push(y[i : i + step]).copy() for i in range(0, y.shape[0], step)]
    parts.append(framer.finish().copy())
    return np.concatenate(parts)


@pytest.mark.parametrize("n", [1, 511, 512, 513, 5000])
def test_framer_counts_and_centres(n):
    y = np.arange(1, n + 1, dtype=np.float32)
    frames = _frames(Framer(8, 4), y, 3)
    assert frames.shape == (-(-n // 4), 8)
    # Frame i is centred on sample i * hop: its middle element (index size // 2) is y[i * hop].
    assert np.array_equal(frames[:, 4], y[::4])
    assert np.all(frames[0, :4] == 0)  # left padding


def test_framer_is_independent_of_block_size():
    y = signals.noise(1.0)
    a = _frames(Framer(2048, 512), y, 1000)
    b = _frames(Framer(2048, 512), y, 32768)
    assert np.array_equal(a, b)


def test_stft_mean_square_is_parseval():
    stft = STFT()
    y = signals.tone(1000.0, 1.0, amplitude=0.5)
    power = np.concatenate([stft.push(y), stft.finish()])
    ms = stft.mean_square(power)[5:-5]
    assert np.allclose(ms, 0.125, rtol=0.01)  # a sine of amplitude a has mean square a^2 / 2


def _features(y: np.ndarray, step: int = 32768, **kw):
    ff = FrameFeatures(**kw)
    for i in range(0, y.shape[0], step):
        ff.push(y[i : i + step])
    return ff.finish()


def test_loudness_energy_and_centroid_of_a_sine():
    curves = _features(signals.tone(1000.0, 2.0, amplitude=0.5))
    assert curves.frame_rate == pytest.approx(SR / HOP)
    assert curves.loudness.shape[0] == -(-2 * SR // HOP)
    mid = slice(10, -10)
    assert np.allclose(curves.loudness[mid], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.1)
    assert np.allclose(curves.energy[mid], 0.5 / np.sqrt(2), rtol=0.01)
    assert np.allclose(curves.centroid[mid], 1000.0, rtol=0.05)


def test_silence_reads_the_floor():
    curves = _features(signals.silence(1.0))
    assert np.all(curves.loudness == -60.0) and np.all(curves.energy < 1e-6)
    assert np.all(curves.centroid == 0.0) and np.all(curves.timbre[:, 0] == 0.0)
    assert np.all(np.isfinite(curves.timbre)) and np.all(np.isfinite(curves.chroma))


@pytest.mark.parametrize("midi", [57, 60, 66, 71, 76])
def test_chroma_of_a_tone_peaks_at_its_pitch_class(midi):
    curves = _features(signals.chord([midi], 1.0))
    assert curves.chroma.shape[1] == 12
    assert int(np.argmax(curves.chroma.sum(axis=0))) == midi % 12


def test_chroma_of_a_major_chord():
    curves = _features(signals.chord([60, 64, 67], 1.0, harmonics=1))
    top3 = set(np.argsort(curves.chroma.sum(axis=0))[-3:].tolist())
    assert top3 == {0, 4, 7}


def test_chroma_estimates_the_tuning_and_folds_on_it():
    # A chord 40 cents sharp (a quarter tone off would be ambiguous): the tuning is read from
    # the peaks and every note still lands on its own pitch class, not half on the neighbour.
    sharp = 0.4
    y = sum(signals.tone(signals.midi_to_hz(m + sharp), 3.0, amplitude=0.2) for m in (57, 61, 64))
    stft = STFT(2048, HOP)
    chroma = Chroma(stft.frequencies(SR))
    chroma.update(np.sqrt(np.concatenate([stft.push(y), stft.finish()])))
    c = chroma.result().sum(axis=0)
    assert chroma.tuning == pytest.approx(sharp, abs=0.03)
    assert set(np.argsort(c)[-3:].tolist()) == {9, 1, 4}  # A, C#, E
    # Harmonic weighting lends each note 0.36 to the fifth below (as its possible third
    # harmonic); detuning, if it were not corrected, would put ~half of each note next door.
    assert c[[9, 1, 4]].min() > 4 * np.delete(c, [9, 1, 4]).max()


@pytest.mark.parametrize("block", [3001, 512 * 7 + 1])
def test_chroma_streamed_equals_one_shot_across_the_tuning_warm_up(block):
    # 26 s: the first 20 s are held until the tuning is known, the rest folded as they come,
    # across odd block boundaries (the warm-up ends inside a block).
    y = signals.progression([[60, 64, 67], [65, 69, 72], [67, 71, 74]] * 3, 26.0 / 9)
    one = _features(y).chroma
    ff = FrameFeatures(SR)
    for i in range(0, y.shape[0], block):
        ff.push(y[i : i + block])
    streamed = ff.finish().chroma
    assert streamed.shape == one.shape == (-(-y.shape[0] // HOP), 12)
    assert np.allclose(streamed, one, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("level", [0.0, 0.5, -0.9])
def test_constant_level_has_no_chroma(level):
    # DC has no spectral peak between 100 Hz and 5 kHz: nothing to call a pitch.
    curves = _features(np.full(3 * SR, level, dtype=np.float32))
    assert np.all(curves.chroma == 0.0)


def test_timbre_first_dimension_tracks_loudness_second_brightness():
    quiet = _features(signals.noise(1.0, amplitude=0.02)).timbre[5:-5].mean(axis=0)
    loud = _features(signals.noise(1.0, amplitude=0.5)).timbre[5:-5].mean(axis=0)
    dark = _features(signals.chord([40], 1.0) * 0.5).timbre[5:-5].mean(axis=0)
    # Column 0: mean band level in dB above the surface floor; column 1: spectral slope.
    assert 0.0 < quiet[0] < loud[0] < -timbre.FLOOR_DB
    assert loud[0] - quiet[0] == pytest.approx(20 * np.log10(25), abs=3.0)  # 28 dB louder
    assert loud[1] > dark[1] + 20.0  # white noise is far brighter than a low note
    # On Spotify's scale (per segment): dimension 1 level-like (white noise at -10 dBFS reads
    # like loud music, 30..80), dimension 2 far brighter for noise than for a low note.
    seg = [
        timbre.segment_timbre(c.timbre[5:-5], np.array([0]), c.timbre[5:-5].shape[0])[0]
        for c in (
            _features(signals.noise(1.0, amplitude=0.5)),
            _features(signals.chord([40], 1.0) * 0.5),
        )
    ]
    assert 30.0 < seg[0][0] < 80.0 and seg[0][1] > seg[1][1] + 50.0
    assert np.all(np.abs(seg[0]) < 400)


def test_features_do_not_depend_on_block_size():
    y = signals.click_track(100.0, 6.0).audio + signals.noise(6.0, amplitude=0.01)
    a = _features(y, step=777)
    b = _features(y, step=32768)
    for name in ("loudness", "energy", "centroid", "chroma", "timbre"):
        assert np.allclose(getattr(a, name), getattr(b, name), rtol=1e-4, atol=1e-4), name


def test_reduced_features_skip_chroma_and_timbre():
    curves = _features(signals.noise(1.0), reduced=True)
    assert curves.loudness.shape[0] > 0 and curves.energy.shape == curves.loudness.shape
    assert curves.chroma.shape == (0, 12) and curves.timbre.shape == (0, 12)


def test_waveform_peaks_per_bucket():
    y = np.zeros(441 * 3 + 10, dtype=np.float32)
    y[5], y[441 + 7], y[441 * 3 + 2] = 0.5, -0.7, 0.9
    wp = WaveformPeaks()
    for i in range(0, y.shape[0], 100):
        wp.push(y[i : i + 100])
    peaks = wp.finish()
    assert peaks.rate == pytest.approx(50.0)
    assert peaks.max.tolist() == pytest.approx([0.5, 0.0, 0.0, 0.9])
    assert peaks.min.tolist() == pytest.approx([0.0, -0.7, 0.0, 0.0])


def test_growing_outputs_exceed_their_initial_capacity():
    y = signals.noise(3.0)
    curves = _features(y, step=4096, expected_frames=3)
    assert curves.loudness.shape[0] == -(-y.shape[0] // HOP)
    assert curves.timbre.shape == (curves.loudness.shape[0], 12)
