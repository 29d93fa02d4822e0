"""Curves kept in temp files (issue 13): same values, read-only, pages given back, same sums."""

from __future__ import annotations

import numpy as np
import pytest

from featherbeat.analysis.features import _store
from featherbeat.analysis.features._store import (
    GrowingArray,
    all_finite,
    is_spilled,
    release,
    release_all,
    row_chunks,
    scratch,
    take,
)
from featherbeat.analysis.rhythm.novelty import condition
from featherbeat.analysis.spans import (
    block_means,
    moving_mean,
    moving_mean_blocks,
    percentile,
    span_means,
)
from featherbeat.analysis.structure.key import key_scores


def _rss_file_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssFile"))


def _rss_mapped_kb() -> int:
    """Resident pages of file mappings, whether TMPDIR is a disk (RssFile) or tmpfs (RssShmem)."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return sum(int(fields[k].split()[0]) for k in ("RssFile", "RssShmem") if k in fields)


def _filled(data: np.ndarray, spill_bytes: int | None, step: int = 777) -> np.ndarray:
    store = GrowingArray(None if data.ndim == 1 else data.shape[1], 64, spill_bytes=spill_bytes)
    for i in range(0, data.shape[0], step):
        store.extend(data[i : i + step])
    assert len(store) == data.shape[0]
    return store.result()


@pytest.mark.parametrize("shape", [(50_000, 12), (120_000,)])
def test_a_spilled_curve_holds_the_same_values_read_only(shape):
    data = np.random.default_rng(0).random(shape, dtype=np.float32)
    kept = _filled(data, spill_bytes=1 << 16)
    assert is_spilled(kept) and is_spilled(np.asarray(kept[100:]))
    assert kept.dtype == np.float32 and np.array_equal(kept, data)
    with pytest.raises(ValueError):
        kept[0] = 1.0  # shared with the file: a stage must never write into a curve
    small = _filled(data[:1000], spill_bytes=1 << 20)
    assert not is_spilled(small) and np.array_equal(small, data[:1000])


def test_release_gives_the_mapped_pages_back():
    data = np.random.default_rng(1).random((400_000, 12), dtype=np.float32)  # 19 MB
    kept = _filled(data, spill_bytes=1 << 20, step=4096)
    release_all()
    before = _rss_file_kb()
    assert float(kept.sum(dtype=np.float64)) > 0  # touches every page
    touched = _rss_file_kb()
    release(kept[5:])  # any view finds its mapping
    after = _rss_file_kb()
    assert touched - before > 15_000, (before, touched)
    assert touched - after > 15_000, (touched, after)
    # A chunked sweep holds one chunk at a time.
    peak = 0
    for _, part in row_chunks(kept):
        float(part.sum())
        peak = max(peak, _rss_file_kb() - after)
    assert peak < 2 * _store.CHUNK_ROWS * 12 * 4 / 1024 + 1024, peak


def test_all_finite_chunked():
    data = np.ones((_store.CHUNK_ROWS * 2 + 5, 12), dtype=np.float32)
    assert all_finite(data)
    data[-1, 3] = np.nan
    assert not all_finite(data)


@pytest.mark.parametrize("spill", [None, 1 << 16])
def test_block_means_in_groups_equal_one_reduceat_bit_for_bit(spill):
    rng = np.random.default_rng(2)
    n = 3 * _store.CHUNK_ROWS + 1234
    data = (rng.random((n, 12), dtype=np.float32) * 100).astype(np.float32)
    values = _filled(data, spill_bytes=spill, step=8192)
    # Short blocks, and one block longer than a chunk.
    starts = np.unique(np.concatenate([[0], rng.integers(1, n, 4000)]))
    starts = np.concatenate([starts[starts < 10_000], starts[starts > 10_000 + 2 * 65536]])
    expected = np.add.reduceat(data, starts, axis=0, dtype=np.float64)
    expected /= np.diff(np.append(starts, n))[:, None]
    assert np.array_equal(block_means(values, starts, n), expected)


def test_key_of_a_spilled_chroma_matches_in_memory():
    rng = np.random.default_rng(3)
    data = rng.random((200_000, 12), dtype=np.float32) * np.linspace(1, 2, 12, dtype=np.float32)
    spilled = _filled(data, spill_bytes=1 << 16, step=4096)
    assert is_spilled(spilled)
    np.testing.assert_allclose(key_scores(spilled), key_scores(data), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("spill", [None, 1 << 16])
@pytest.mark.parametrize("width", [None, 12])
def test_span_means_in_blocks_equal_one_cumulative_sum_bit_for_bit(spill, width):
    rng = np.random.default_rng(4)
    n = 2 * _store.CHUNK_ROWS + 777
    shape = (n,) if width is None else (n, width)
    data = (rng.random(shape, dtype=np.float32) * 50).astype(np.float32)
    values = _filled(data, spill_bytes=spill, step=8192)
    starts = np.sort(rng.integers(0, n - 1, 3000))
    ends = np.minimum(starts + rng.integers(1, 90_000, starts.size), n)
    cs = np.zeros((n + 1, *shape[1:]))
    np.cumsum(data, axis=0, dtype=np.float64, out=cs[1:])  # the previous, whole-curve sum
    counts = (ends - starts).reshape((-1,) + (1,) * (data.ndim - 1))
    expected = (cs[ends] - cs[starts]) / counts
    for block in (_store.CHUNK_ROWS, 1000, 7):
        assert np.array_equal(span_means(values, starts, ends, block=block), expected), block


def test_moving_mean_blocks_let_the_caller_overwrite_the_curve():
    """condition(overwrite=True) replaces the onset curve by itself minus its local mean in its
    own buffer: the same values as with a second array (what the beat tracker reads)."""
    rng = np.random.default_rng(5)
    x = rng.random(50_000) ** 3
    for half, block in ((17, 1000), (3000, 1000), (1, 7)):
        whole = x - moving_mean(x, half, block=len(x))
        y = x.copy()
        for o0, means in moving_mean_blocks(y, half, block=block):
            np.subtract(y[o0 : o0 + means.size], means, out=y[o0 : o0 + means.size])
        assert np.array_equal(y, whole), (half, block)
    rate = 86.1328125
    buffer = x.copy()
    out = condition(buffer, rate, overwrite=True)
    assert out is buffer and np.array_equal(out, condition(x, rate))
    assert np.array_equal(x, rng.__class__(np.random.PCG64(5)).random(50_000) ** 3)  # x unchanged


@pytest.mark.parametrize("spill", [False, True])
def test_percentile_from_a_float32_copy_equals_numpys_on_float64(spill, monkeypatch):
    """spans.percentile partitions a float32 copy and interpolates as numpy does: the same
    value to the last bit as np.percentile of a float64 copy, on awkward sizes and spreads."""
    if spill:
        monkeypatch.setattr(_store, "SPILL_BYTES", 256)
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 10, 11, 999, 4097, 70001):
        for x in (
            rng.standard_normal(n) * 1e4,
            rng.exponential(size=n) ** 4,
            rng.integers(0, 4, size=n).astype(float),  # ties
        ):
            grown = GrowingArray()
            grown.extend(x.astype(np.float32))
            values = grown.result()
            for q in (0, 5, 50, 90, 95, 99, 100, float(rng.uniform(0, 100))):
                want = np.percentile(np.asarray(values, dtype=np.float64), q)
                assert percentile(values, q) == want, (n, q)
    # float64 input is not rounded to float32: numpy's own answer
    x = rng.standard_normal(1001)
    assert percentile(x, 90) == np.percentile(x, 90)


def test_sections_novelty_in_blocks_equals_all_at_once():
    from featherbeat.analysis.structure.sections import novelty

    feats = np.random.default_rng(4).standard_normal((9000, 25))
    whole = novelty(feats, block=feats.shape[0])
    for block in (1, 7, 4096):
        assert np.array_equal(novelty(feats, block=block), whole)


def test_rhythm_pieces_computed_in_blocks_equal_the_whole_curve_versions():
    """Issue 13: the smoothed onset curve and the beat log-odds are computed a window or a
    Viterbi segment at a time; the values (and so the beats) are the same to the last bit."""
    from featherbeat.analysis.rhythm import beats, meter, tempo
    from featherbeat.analysis.rhythm.novelty import smooth, smooth_span

    rng = np.random.default_rng(5)
    x = condition(rng.exponential(size=30_000) * (rng.random(30_000) < 0.2), 86.13)
    for frames in (1, 3, 5):
        whole = smooth(x, frames)
        for lo, hi in ((0, 1), (0, 17), (3, 4000), (29_990, 30_000), (0, 30_000)):
            assert np.array_equal(smooth_span(x, frames, lo, hi), whole[lo:hi])
    assert np.array_equal(
        tempo.windowed_acf(x, 86.13, smooth_frames=5), tempo.windowed_acf(smooth(x, 5), 86.13)
    )
    w = beats.beat_log_odds(x)
    assert np.array_equal(beats.BeatLogOdds(x).block(100, 9000), w[100:9000])
    periods = beats.period_states(40.0)
    assert np.array_equal(
        beats.viterbi_beats(beats.BeatLogOdds(x), periods), beats.viterbi_beats(w, periods)
    )
    vectors = rng.random((9000, 15))
    whole_change = meter.window_change(vectors, block=vectors.shape[0])
    for block in (1, 5, 4096):
        assert np.array_equal(meter.window_change(vectors, block=block), whole_change)


def test_a_scratch_array_keeps_what_was_written_after_its_pages_go():
    """``scratch``: a large work array lives in a temp file, writable; released pages come
    back with what was written (the mapping is shared), and a chunked writer holds a chunk."""
    assert not is_spilled(scratch((10, 25)))
    data = np.random.default_rng(5).standard_normal((60_000, 25))  # 12 MB of float64
    kept = scratch(data.shape)
    assert is_spilled(kept) and kept.flags.writeable and kept.dtype == np.float64
    release_all()
    before = _rss_mapped_kb()
    peak = 0
    for a in range(0, data.shape[0], 4096):
        kept[a : a + 4096] = data[a : a + 4096]
        peak = max(peak, _rss_mapped_kb() - before)
        release(kept)
    assert peak < 2048, peak  # one 0.8 MB chunk, not 12 MB
    assert np.array_equal(kept, data)
    small = scratch((4, 3), np.float32)
    assert small.dtype == np.float32 and not is_spilled(small)


def test_stages_with_spilled_work_arrays_equal_in_memory(monkeypatch):
    """Sections' unit features, the segments' columns and the fades' buffer in temp files (long
    tracks) give the same sections, labels, segments and fades to the last bit as in memory
    (short tracks)."""
    from featherbeat.analysis.structure import fades, sections, segments
    from featherbeat.testing.profiles import synthetic_curves

    curves, rhythm = synthetic_curves(
        900.0, tempo=124.0, parts=[(t, (t // 45) % 4, 0.0) for t in range(0, 900, 45)]
    )
    ramp = np.minimum(np.arange(curves.loudness.size) / 400.0, 1.0) * 40.0 - 40.0
    curves.loudness = (curves.loudness + ramp).astype(np.float32)  # a 10-second fade-in
    in_memory = sections.find_sections(curves, rhythm), segments.find_segments(curves)
    faded = fades.find_fades(curves, 900.0)
    monkeypatch.setattr(_store, "SPILL_BYTES", 4096)
    spilled = sections.find_sections(curves, rhythm), segments.find_segments(curves)
    assert fades.find_fades(curves, 900.0) == faded and faded[0] > 1.0, faded
    assert is_spilled(spilled[1].timbre) and is_spilled(spilled[1].start)
    assert len(in_memory[0]) > 10 and len({s.label for s in in_memory[0]}) > 1
    assert [vars(s) for s in spilled[0]] == [vars(s) for s in in_memory[0]]
    for name in vars(in_memory[1]):
        a, b = getattr(in_memory[1], name), getattr(spilled[1], name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name


def test_rhythm_with_its_working_curve_in_a_temp_file_equals_in_memory(monkeypatch):
    """rhythm.track's float64 working curve kept in a temp file (past 1 MB, ~25 minutes) and
    released span by span gives the same beats, tatums and bars to the last bit."""
    from featherbeat.analysis import rhythm
    from featherbeat.testing.profiles import synthetic_curves

    curves, _ = synthetic_curves(240.0, tempo=123.0)
    low = np.array(curves.onset, dtype=np.float32) * np.float32(0.5)
    curves.onset_low = low
    for mode in ("dsp", "fused"):
        want = rhythm.track(curves, mode=mode)
        monkeypatch.setattr(_store, "SPILL_BYTES", 4096)
        got = rhythm.track(curves, mode=mode)
        monkeypatch.setattr(_store, "SPILL_BYTES", 1 << 20)
        assert want.beats.size > 400
        for name, value in vars(want).items():
            other = vars(got)[name]
            if isinstance(value, np.ndarray):
                assert value.dtype == other.dtype and np.array_equal(value, other), name
            else:
                assert value == other, name


def test_take_gathers_the_same_elements_a_stretch_of_pages_at_a_time():
    """take(): values[at]; for sorted beat-like indices into a spilled curve only a stretch of
    it is resident at a time (one fancy index made all of it resident)."""
    data = np.random.default_rng(6).standard_normal(2_000_000)  # 16 MB of float64
    kept = scratch(data.shape)
    for a in range(0, data.size, 1 << 16):
        kept[a : a + (1 << 16)] = data[a : a + (1 << 16)]
        release(kept)
    at = np.cumsum(np.random.default_rng(7).integers(30, 50, size=45_000))  # "beats"
    at = at[at < data.size]
    release_all()
    before = _rss_mapped_kb()
    got = take(kept, at)
    grown = _rss_mapped_kb() - before
    assert np.array_equal(got, data[at]) and got.dtype == np.float64
    assert grown < 4096, grown  # a 16 MB curve, every page of it touched
    small = np.arange(10.0)
    assert np.array_equal(take(small, np.array([3, 1])), [3.0, 1.0])


def test_condition_keeps_numpys_dot_up_to_four_hours(monkeypatch):
    """The conditioned curve's scale: np.dot over the whole curve (bit for bit as before) up to
    CHUNKED_RMS_SECONDS, chunked dots past it (a long track's buffer is then never resident
    whole); both agree to ~1e-15."""
    from featherbeat.analysis.rhythm import novelty

    x = np.random.default_rng(8).exponential(size=300_000)
    rate = 86.0
    whole = novelty._mean_square(x, rate)
    assert whole == float(np.dot(x, x) / x.size)
    monkeypatch.setattr(novelty, "CHUNKED_RMS_SECONDS", 60.0)
    chunked = novelty._mean_square(x, rate)
    assert chunked == pytest.approx(whole, rel=1e-12)
    assert (
        chunked
        == sum(
            float(np.dot(x[a : a + _store.CHUNK_ROWS], x[a : a + _store.CHUNK_ROWS]))
            for a in range(0, x.size, _store.CHUNK_ROWS)
        )
        / x.size
    )
