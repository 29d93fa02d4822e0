"""The cheaper forms of numpy calls the analysis uses (issue 11's cost bar) give numpy's values.

spans.np_percentile / np_median / sorted_unique stand in for np.percentile / np.median /
np.unique, which in numpy 2 import numpy.ma (~0.01 CPU-s per process); learned.py's
convolution and ELU are written with fewer numpy passes. Each is compared with the plain numpy
form on random input, value and type, to the last bit.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from featherbeat.analysis.rhythm import learned
from featherbeat.analysis.spans import np_median, np_percentile, sorted_unique


def _same(got: object, want: object) -> bool:
    if type(got) is not type(want):
        return False
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray)
        return got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)
    return bool((np.isnan(got) and np.isnan(want)) or got == want)  # type: ignore[call-overload]


def _awkward(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    a = rng.standard_normal(shape) * 10 ** rng.uniform(-4, 4)
    if rng.random() < 0.3:
        a = np.round(a)  # ties
    a = a.astype(dtype)
    if a.dtype.kind == "f":
        for value in (np.nan, np.inf, -np.inf):
            if rng.random() < 0.1:
                a.reshape(-1)[rng.integers(0, a.size)] = value
    return a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_np_percentile_is_numpys_percentile(dtype):
    rng = np.random.default_rng(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf, as numpy's own
        for trial in range(1500):
            a = _awkward(rng, (int(rng.integers(1, 300)),), dtype)
            q = [0, 1, 5, 50, 95, 99, 99.5, 100, 37.3][trial % 9]
            want = np.percentile(a, q)
            assert _same(np_percentile(a, q), want), (a.size, q)
            b = a.copy()
            assert _same(np_percentile(b, q, overwrite_input=True), want), (a.size, q)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_np_median_is_numpys_median(dtype):
    rng = np.random.default_rng(8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for trial in range(1500):
            n = int(rng.integers(1, 50))
            if trial % 3 == 0:  # rows, as the running medians over a sliding window
                a = _awkward(rng, (int(rng.integers(1, 20)), n), dtype)
                axis: int | None = 1
            else:
                a = _awkward(rng, (n,), dtype)
                axis = None
            want = np.median(a, axis=axis)
            assert _same(np_median(a, axis=axis), want), (a.shape, axis)
            b = a.copy()
            assert _same(np_median(b, axis=axis, overwrite_input=True), want), (a.shape, axis)
        view = np.lib.stride_tricks.sliding_window_view(np.arange(40.0) % 7, 9)
        assert _same(np_median(view, axis=1), np.median(view, axis=1))


def test_sorted_unique_is_numpys_unique():
    rng = np.random.default_rng(9)
    for n in (0, 1, 2, 5, 100):
        a = rng.integers(-5, 5, n)
        assert _same(sorted_unique(a), np.unique(a))
        f = np.round(rng.standard_normal(n), 1)
        assert _same(sorted_unique(f), np.unique(f))


def test_an_analysis_does_not_import_numpy_ma(tmp_path):
    """The point of the three: a process analysing a track never loads numpy.ma."""
    script = (
        "import sys, numpy as np, soundfile as sf\n"
        "from featherbeat.testing import signals\n"
        "import featherbeat\n"
        f"path = {str(tmp_path / 'clicks.wav')!r}\n"
        "sf.write(path, signals.click_track(120.0, 12.0).audio, 22050)\n"
        "for mode in ('fused', 'learned', 'dsp'):\n"
        "    p = featherbeat.analyze(path, rhythm=mode)\n"
        "    assert p.beats.size > 10 and not p.missing, (mode, p.missing)\n"
        "print('numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_model_convolution_and_elu_equal_the_plain_forms():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((300, 32)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3)).astype(np.float32) * 0.2
    b = rng.standard_normal(32).astype(np.float32)
    for d in (1, 4, 128, 400):
        want = x @ w[:, :, 1].T + b
        if d < x.shape[0]:
            want[d:] += x[:-d] @ w[:, :, 0].T
            want[:-d] += x[d:] @ w[:, :, 2].T
        np.testing.assert_allclose(
            learned._conv(x, learned._stack_taps(w), b, d), want, rtol=1e-5, atol=1e-5
        )
    z = rng.standard_normal(1000).astype(np.float32) * 3
    z[:5] = [0.0, -0.0, 1e-30, -1e-30, np.nan]
    plain = np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))
    np.testing.assert_array_equal(learned._elu(z.copy()), plain)


def test_streamed_net_in_uneven_pushes_equals_the_whole_track():
    """The pending buffer: small pushes, one larger than its spare room (it grows), then more."""
    net = learned.RhythmNet.load()
    rng = np.random.default_rng(11)
    x = rng.random((9000, learned.N_INPUT)).astype(np.float32)
    whole, whole_tempo = net.forward(x)
    streamed = learned.StreamedNet(net, block=512)
    start = 0
    for size in (5, 128, 4000, 1, 300, 128, 64):
        streamed.push(x[start : start + size])
        start += size
    streamed.push(x[start:])
    acts, logits = streamed.finish()
    np.testing.assert_allclose(np.asarray(acts), whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, whole_tempo.mean(axis=0), rtol=1e-4, atol=1e-5)
