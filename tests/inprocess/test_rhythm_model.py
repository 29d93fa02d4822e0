"""The learned rhythm model in numpy: streamed inference, decoding, the committed weights on
signals made here, and the fallback to the DSP tracker when the weights are missing or damaged.

No torch here: the product runs the network in numpy and CI never trains.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile as sf

from featherbeat.analysis.features.onset import OnsetStrength
from featherbeat.analysis.pipeline import analyze
from featherbeat.analysis.rhythm import learned
from featherbeat.testing import signals

SR = signals.SR


def _random_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Weights of the right shapes (the network's arithmetic does not depend on training)."""
    rng = np.random.default_rng(seed)
    ch, nb = learned.CHANNELS, learned.bpm_bins().size
    arrays = {
        "norm_mean": rng.normal(0, 0.1, learned.N_INPUT),
        "norm_std": rng.uniform(0.5, 1.5, learned.N_INPUT),
        "inp_w": rng.normal(0, 0.2, (ch, learned.N_INPUT, 3)),
        "inp_b": rng.normal(0, 0.1, ch),
        "dilations": np.array(learned.DILATIONS),
        "beat_w": rng.normal(0, 0.3, (2, ch, 1)),
        "beat_b": np.zeros(2),
        "tempo_w": rng.normal(0, 0.3, (nb, ch, 1)),
        "tempo_b": np.zeros(nb),
        "bpm_bins": learned.bpm_bins(),
    }
    for i in range(len(learned.DILATIONS)):
        arrays[f"block{i}_w"] = rng.normal(0, 0.1, (ch, ch, 3))
        arrays[f"block{i}_b"] = rng.normal(0, 0.05, ch)
    return arrays


def _model_input(y: np.ndarray) -> np.ndarray:
    frames: list[np.ndarray] = []
    det = OnsetStrength(SR)
    sink = learned.ModelInput(frames.append)
    det.sink = sink
    for i in range(0, y.size, 10_000):  # odd block size: the pooling carries a frame over
        det.push(y[i : i + 10_000])
    det.finish()
    sink.flush()
    return np.concatenate(frames)


def test_streamed_blocks_equal_the_whole_track_exactly():
    net = learned.RhythmNet(_random_arrays())
    x = np.random.default_rng(1).normal(0, 1, (3000, learned.N_INPUT)).astype(np.float32)
    whole, logits = net.forward(x)
    streamed = learned.StreamedNet(net, block=500)
    for i in range(0, x.shape[0], 333):
        streamed.push(x[i : i + 333])
    acts, mean_logits = streamed.finish()
    assert acts.shape == whole.shape
    np.testing.assert_allclose(acts, whole, atol=1e-6)
    np.testing.assert_allclose(mean_logits, logits.mean(axis=0), rtol=1e-5, atol=1e-4)


def test_model_input_is_43_frames_per_second_and_72_channels():
    clicks = signals.click_track(120.0, 10.0)
    x = _model_input(clicks.audio)
    assert x.shape[1] == learned.N_INPUT
    rate = learned.frame_rate(OnsetStrength(SR).rate)
    assert x.shape[0] == pytest.approx(10.0 * rate, abs=2)
    # Flux channels peak at the clicks: the frame nearest each beat is a local maximum.
    flux = x[:, learned.N_GROUPS :].sum(axis=1)
    idx = np.round((clicks.beats - learned.frame_time_offset(OnsetStrength(SR).rate)) * rate)
    idx = idx.astype(int)
    assert np.mean(flux[idx] > np.median(flux) * 3) > 0.9


def test_decode_finds_beats_meter_and_tempo_from_clean_activations():
    fps, bpm, meter = 43.07, 100.0, 3
    n = int(30 * fps)
    period = 60.0 * fps / bpm
    frames = np.round(np.arange(10, n - 5, period)).astype(int)
    beat = np.full(n, 0.02, np.float32)
    beat[frames] = 0.9
    down = np.full(n, 0.02, np.float32)
    down[frames[2::meter]] = 0.8
    bins = learned.bpm_bins()
    logits = -((np.log(bins / bpm)) ** 2) / 0.001
    dec = learned.decode(beat, down, logits, fps, 0.0)
    assert dec.tempo == pytest.approx(bpm, rel=0.02)
    np.testing.assert_allclose(dec.beats, frames / fps, atol=1.5 / fps)
    assert dec.meter == 3
    np.testing.assert_allclose(dec.downbeats, frames[2::meter] / fps, atol=1.5 / fps)
    assert dec.tempo_confidence > 0.7


def test_the_committed_weights_load_and_are_small():
    path = learned.WEIGHTS_PATH
    assert path.stat().st_size <= 1_000_000
    net = learned.RhythmNet.load(path)
    n_params = sum(
        a.size for a in (net.inp[0], *(w for w, _ in net.blocks), net.beat[0], net.tempo[0])
    )
    assert n_params <= 100_000


@pytest.mark.parametrize("bpm", [90.0, 128.0])
def test_learned_tracker_finds_the_beats_of_a_groove(tmp_path, bpm):
    # A drum-and-chord groove (the DSP tests' signal) analysed end to end with the model.
    from test_rhythm import groove

    y, truth, _ = groove(bpm, 4, bars=14)
    path = tmp_path / "groove.wav"
    sf.write(path, y, SR)
    profile = analyze(str(path), rhythm="learned")
    assert "rhythm_model" not in profile.missing
    r = profile.rhythm
    f = mir_eval.beat.f_measure(
        mir_eval.beat.trim_beats(truth), mir_eval.beat.trim_beats(r.beats.astype(float))
    )
    assert f > 0.9
    assert r.tempo == pytest.approx(bpm, rel=0.04)


def _damaged(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.npz"
    if kind == "missing":
        return path
    if kind == "garbage":
        path.write_bytes(b"not a zip file at all" * 10)
    elif kind == "truncated":
        data = learned.WEIGHTS_PATH.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "wrong_shape":
        arrays = _random_arrays()
        arrays["block3_w"] = arrays["block3_w"][:, :5]
        np.savez(path, **arrays)
    elif kind == "nan":
        arrays = _random_arrays()
        arrays["inp_w"][0, 0, 0] = np.nan
        np.savez(path, **arrays)
    elif kind == "lacks_key":
        arrays = _random_arrays()
        del arrays["tempo_w"]
        np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "kind", ["missing", "garbage", "truncated", "wrong_shape", "nan", "lacks_key"]
)
def test_damaged_weights_fall_back_to_dsp_with_one_line(tmp_path, monkeypatch, kind):
    path = _damaged(tmp_path, kind)
    with pytest.raises(learned.ModelUnavailableError) as info:
        learned.RhythmNet.load(path)
    assert "\n" not in str(info.value) and str(tmp_path) not in str(info.value)
    monkeypatch.setenv("FEATHERBEAT_RHYTHM_WEIGHTS", str(path))
    clicks = signals.click_track(120.0, 12.0)
    audio = tmp_path / "clicks.wav"
    sf.write(audio, clicks.audio, SR)
    profile = analyze(str(audio), rhythm="learned")
    why = profile.missing["rhythm_model"]
    assert why.endswith("DSP tracker used") and "\n" not in why
    assert "rhythm_model" in profile.detailed_status
    assert profile.rhythm.tempo == pytest.approx(120.0, rel=0.02)  # the DSP tracker answered


def test_a_zip_with_a_bad_member_is_damaged_not_a_crash(tmp_path):
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("inp_w.npy", b"\x93NUMPY garbage")
    with pytest.raises(learned.ModelUnavailableError):
        learned.RhythmNet.load(path)


def test_unknown_rhythm_mode_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATHERBEAT_RHYTHM", "neural-magic")
    clicks = signals.click_track(100.0, 10.0)
    audio = tmp_path / "clicks.wav"
    sf.write(audio, clicks.audio, SR)
    profile = analyze(str(audio))
    assert "rhythm_model" in profile.missing
    assert profile.rhythm.tempo == pytest.approx(100.0, rel=0.02)


def test_dsp_mode_does_not_run_the_model(tmp_path):
    clicks = signals.click_track(100.0, 10.0)
    audio = tmp_path / "clicks.wav"
    sf.write(audio, clicks.audio, SR)
    profile = analyze(str(audio), rhythm="dsp")
    assert profile.curves.activations.size == 0 and not profile.missing
