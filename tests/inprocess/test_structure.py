"""Segments, sections, fades and track loudness on curves of known content and on rendered audio."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

import featherbeat
from featherbeat.analysis.profile import Curves, Rhythm
from featherbeat.analysis.structure import fades, loudness, sections, segments
from featherbeat.testing import signals
from featherbeat.testing.profiles import FRAME_RATE, synthetic_curves


def _level_curves(db: np.ndarray) -> Curves:
    n = db.size
    return Curves(
        frame_rate=FRAME_RATE,
        loudness=db.astype(np.float32),
        chroma=np.zeros((n, 12)),
        timbre=np.zeros((n, 12)),
    )


# ---- segments -------------------------------------------------------------------------------


def test_segments_start_at_onsets() -> None:
    curves, rhythm = synthetic_curves(20.0, tempo=120.0)
    seg = segments.find_segments(curves)
    assert seg.start[0] == 0.0
    # One segment per beat (onsets only on beats) after the first beat at 0.5 s, each starting
    # just before its onset (at most PRE_SECONDS, as the Echo Nest's segments do).
    lead = rhythm.beats[: len(seg) - 1] - seg.start[1:]
    assert np.all(lead >= -0.5 / FRAME_RATE)
    assert np.all(lead <= segments.PRE_SECONDS + 1.0 / FRAME_RATE)
    assert len(seg) == rhythm.beats.size + 1
    end = curves.loudness.size / FRAME_RATE  # the curves' span: the track to within a frame
    assert np.allclose(seg.start + seg.duration, np.append(seg.start[1:], end), atol=1e-6)
    assert np.allclose(seg.pitches.max(axis=1), 1.0)
    assert seg.pitches.argmax(axis=1)[5] == 0  # C major: C is the strongest pitch class
    assert np.all(seg.confidence[1:] > 0.5) and seg.confidence[0] == 0.0
    # Each beat's level decays from -8 dB: the maximum is at the segment's start.
    assert np.allclose(seg.loudness_max[1:-1], -8.0, atol=1.0)
    assert np.all(seg.loudness_max_time[1:-1] < 0.05)
    assert np.all(seg.loudness_start[2:] < seg.loudness_max[2:] - 10)  # before the attack
    assert np.array_equal(seg.loudness_end[:-1], seg.loudness_start[1:])


def test_segments_of_silence_and_of_nothing() -> None:
    quiet = _level_curves(np.full(500, -60.0))
    quiet.onset_rate, quiet.onset = FRAME_RATE * 2, np.zeros(1000)
    seg = segments.find_segments(quiet)
    # Silence: evenly split into pieces of at most MAX_SECONDS, all with confidence 0.
    assert seg.start[0] == 0.0 and np.all(seg.confidence == 0)
    assert np.all(seg.duration <= segments.MAX_SECONDS + 1e-6)
    assert seg.duration.sum() == pytest.approx(500 / FRAME_RATE)
    assert np.all(seg.pitches == 1.0)  # no pitch: flat vector
    assert len(segments.find_segments(Curves())) == 0


def test_pick_onsets_thins_crowded_peaks() -> None:
    odf = np.zeros(1000)
    odf[[100, 103, 300, 600]] = [1.0, 0.8, 1.0, 0.9]
    times, conf = segments.pick_onsets(odf, 100.0)
    assert times.tolist() == pytest.approx([1.0, 3.0, 6.0])
    assert np.all((conf > 0.9) & (conf <= 1.0))


def test_segments_of_rendered_notes(tmp_path) -> None:
    notes = [60, 64, 67, 72, 62, 65, 69, 71] * 2  # C E G C D F A B, 0.4 s each
    audio = np.concatenate([signals.chord([n], 0.4) for n in notes])
    profile = featherbeat.analyze(signals.write_audio(tmp_path, "notes", audio))
    seg = profile.segments
    truth = np.arange(1, len(notes)) * 0.4
    found = seg.start[np.argmin(np.abs(seg.start[:, None] - truth[None, :]), axis=0)]
    assert np.median(np.abs(found - truth)) < 0.03
    # The segment over each note names its pitch class.
    mid = truth - 0.2
    idx = np.searchsorted(seg.start, mid, side="right") - 1
    hits = np.mean(seg.pitches[idx].argmax(axis=1) == np.array(notes[:-1]) % 12)
    assert hits >= 0.8


# ---- sections -------------------------------------------------------------------------------

ABAB = [(0.0, 0, 0.0), (32.0, 5, 40.0), (64.0, 0, 0.0), (96.0, 5, 40.0)]


def test_sections_find_changes_on_downbeats_and_label_repeats() -> None:
    curves, rhythm = synthetic_curves(128.0, tempo=120.0, parts=ABAB)
    found = sections.find_sections(curves, rhythm)
    starts = np.array([s.start for s in found])
    for change in (32.0, 64.0, 96.0):
        assert np.min(np.abs(starts - change)) <= 0.5
    assert set(np.round(starts, 3)) <= set(np.round(np.append(0.0, rhythm.downbeats), 3))
    assert starts[0] == 0.0
    assert sum(s.duration for s in found) == pytest.approx(128.0, abs=0.05)
    labels = {round(s.start): s.label for s in found}
    near = {c: labels[min(labels, key=lambda t: abs(t - c))] for c in (0, 32, 64, 96)}
    assert near[0] == near[64] != near[32] == near[96]
    for s in found:
        assert s.tempo == pytest.approx(120.0, rel=0.01)
        assert s.time_signature == 4 and 0 <= s.time_signature_confidence <= 1
        assert 0 <= s.confidence <= 1 and -60 <= s.loudness <= 0
    b_part = [s for s in found if 40 <= s.start < 64 or 100 <= s.start < 128]
    assert all(s.key == 5 and s.mode == 1 for s in b_part)  # F major in the B parts


def test_sections_without_beats_use_a_time_grid() -> None:
    curves, _ = synthetic_curves(90.0, parts=[(0.0, 0, 0.0), (45.0, 3, 40.0)])
    found = sections.find_sections(curves, Rhythm())
    starts = np.array([s.start for s in found])
    assert np.min(np.abs(starts - 45.0)) <= 0.6


def test_sections_of_silence_and_of_nothing() -> None:
    found = sections.find_sections(_level_curves(np.full(2000, -60.0)), Rhythm())
    assert len(found) == 1 and found[0].key == -1 and found[0].label == "A"
    assert sections.find_sections(Curves(), Rhythm()) == []


def test_labels_are_letters_in_order_of_appearance() -> None:
    means = np.array([[0.0], [10.0], [0.1], [20.0], [10.1]])
    assert sections.cluster_labels(means) == ["A", "B", "A", "C", "B"]
    assert sections._letter(25) == "Z" and sections._letter(26) == "AA"


def _square_matrix_labels(means: np.ndarray) -> list[str]:
    """The labels as computed before the condensed form: average linkage on the full (k, k)
    distance matrix, merged clusters masked with inf (sections.py up to be8f046)."""
    k = means.shape[0]
    if k == 0:
        return []
    link = np.stack([np.sqrt(((means - means[i]) ** 2).sum(axis=1)) for i in range(k)])
    upper = link[np.triu_indices(k, 1)]
    threshold = sections.LABEL_RATIO * float(np.median(upper)) if upper.size else 0.0
    clusters: list[list[int] | None] = [[i] for i in range(k)]
    np.fill_diagonal(link, np.inf)
    for _ in range(k - 1):
        i, j = (int(x) for x in np.unravel_index(int(np.argmin(link)), link.shape))
        if link[i, j] > threshold:
            break
        a, b = clusters[i], clusters[j]
        assert a is not None and b is not None
        merged = (link[i] * len(a) + link[j] * len(b)) / (len(a) + len(b))
        link[i], link[:, i] = merged, merged
        link[i, i] = np.inf
        link[j], link[:, j] = np.inf, np.inf
        a += b
        clusters[j] = None
    owner = np.empty(k, dtype=np.int64)
    for c, members in enumerate(m for m in clusters if m is not None):
        owner[members] = c
    letters: dict[int, str] = {}
    for c in owner.tolist():
        letters.setdefault(c, sections._letter(len(letters)))
    return [letters[c] for c in owner.tolist()]


def test_condensed_labels_equal_the_square_matrix_ones() -> None:
    """The pairs kept once (condensed) give the square matrix's labels exactly, ties included
    (rounded features, repeated sections: the first minimum must be the same pair)."""
    rng = np.random.default_rng(7)
    for trial in range(120):
        k = int(rng.integers(0, 40)) if trial < 100 else int(rng.integers(150, 400))
        means = rng.normal(size=(k, 25))
        if trial % 3 == 0:
            means = np.round(means)
        if trial % 4 == 0 and k:
            means[rng.integers(0, k, size=k // 2)] = means[0]
        assert sections.cluster_labels(means) == _square_matrix_labels(means), (trial, k)


def test_label_memory_is_one_triangle_of_pairs() -> None:
    """Twelve hours give ~2000 candidate sections: their labels hold each pair's distance once
    (k(k - 1)/2 floats: 16 MB at k = 2000), not the square matrix (twice that) or more."""
    k = 1500
    rng = np.random.default_rng(8)
    means = rng.normal(size=(k, 25)) + np.repeat(rng.normal(size=(30, 25)) * 3, k // 30, axis=0)
    tracemalloc.start()
    labels = sections.cluster_labels(means)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(labels) == k and 1 < len(set(labels)) < k
    triangle, square = k * (k - 1) // 2 * 8, k * k * 8
    print(f"k={k}: traced peak {peak / 1e6:.1f} MB, triangle {triangle / 1e6:.1f} MB")
    assert peak < triangle + 2e6 < square, peak


def test_novelty_peaks_at_a_change() -> None:
    feats = np.vstack([np.zeros((40, 3)), np.ones((40, 3))])
    nov = sections.novelty(feats)
    assert int(np.argmax(nov)) == 40
    assert nov[:4].max() == 0 and nov[-4:].max() == 0


def test_hour_long_sections_stay_small_and_fast() -> None:
    """No self-similarity matrix: an hour costs little memory and time beyond its curves."""
    curves, rhythm = synthetic_curves(
        3600.0, tempo=128.0, parts=[(t, (t // 60) % 3, 0.0) for t in range(0, 3600, 60)]
    )
    tracemalloc.start()
    started = time.process_time()
    found = sections.find_sections(curves, rhythm)
    segs = segments.find_segments(curves)
    spent = time.process_time() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert 3600 / sections.SECONDS_PER_SECTION >= len(found) >= 30
    assert len(segs) > 7000
    print(f"hour: {spent:.2f} CPU-s, traced peak {peak / 1e6:.1f} MB")
    assert peak < 60e6  # ~25 MB here; O(frames): a self-similarity matrix would be ~400 MB
    assert spent < 10.0  # generous for a 2-core CI machine; ~1 s here


# ---- fades and loudness ---------------------------------------------------------------------


def _ramp_track(fade_in: float, body: float, fade_out: float) -> np.ndarray:
    up = np.linspace(-60.0, -10.0, int(fade_in * FRAME_RATE))
    flat = np.full(int(body * FRAME_RATE), -10.0)
    down = np.linspace(-10.0, -60.0, int(fade_out * FRAME_RATE))
    return np.concatenate([up, flat, down])


def test_fades_on_ramps() -> None:
    db = _ramp_track(4.0, 60.0, 10.0)
    duration = db.size / FRAME_RATE
    fade_in, fade_out = fades.find_fades(_level_curves(db), duration)
    assert 0.5 < fade_in <= 4.0  # within the rising ramp
    assert 64.0 <= fade_out < 64.0 + 3.0  # soon after the decline starts
    assert fade_in <= fade_out <= duration


def test_quiet_intro_and_outro_are_not_fades() -> None:
    quiet, loud = np.full(int(40 * FRAME_RATE), -32.0), np.full(int(60 * FRAME_RATE), -10.0)
    lead = np.full(int(2 * FRAME_RATE), -60.0)  # 2 s of silence before the intro
    db = np.concatenate([lead, quiet, loud, quiet])
    duration = db.size / FRAME_RATE
    fade_in, fade_out = fades.find_fades(_level_curves(db), duration)
    assert fade_in == pytest.approx(2.0, abs=0.4)  # the silence only, not the 40 s intro
    assert fade_out == pytest.approx(duration, abs=0.1)


def test_no_fades_and_silence() -> None:
    db = np.full(3000, -12.0)
    duration = 3000 / FRAME_RATE
    assert fades.find_fades(_level_curves(db), duration) == (0.0, duration)
    assert fades.find_fades(_level_curves(np.full(3000, -60.0)), duration) == (0.0, duration)
    assert fades.find_fades(Curves(), 5.0) == (0.0, 5.0)


def test_track_loudness_is_gated() -> None:
    db = np.full(4000, -14.0)
    assert loudness.track_loudness(_level_curves(db)) == pytest.approx(-14.0, abs=0.01)
    # A silent half does not pull the loudness of the music down.
    half_silent = np.concatenate([db, np.full(4000, -60.0)])
    assert loudness.track_loudness(_level_curves(half_silent)) == pytest.approx(-14.0, abs=0.5)
    assert loudness.track_loudness(_level_curves(np.full(100, -60.0))) == -60.0
    assert loudness.track_loudness(Curves()) == -60.0


def test_track_loudness_of_a_rendered_sine(tmp_path) -> None:
    path = signals.write_audio(tmp_path, "sine", signals.tone(440.0, 6.0, amplitude=0.5))
    profile = featherbeat.analyze(path)
    # RMS of a 0.5 sine is 0.354: -9.0 dBFS.
    assert profile.loudness == pytest.approx(-9.0, abs=1.0)


def test_wrong_bar_phase_does_not_drag_boundaries() -> None:
    """Downbeats 2 beats (1 s) away from the changes: boundaries stay on the change."""
    curves, rhythm = synthetic_curves(128.0, tempo=120.0, parts=ABAB)
    rhythm.beat_position = ((np.arange(rhythm.beats.size) + 3) % 4 + 1).astype(np.int16)
    assert rhythm.downbeats[15] == pytest.approx(31.0)
    found = sections.find_sections(curves, rhythm)
    starts = np.array([s.start for s in found])
    for change in (32.0, 64.0, 96.0):
        assert np.min(np.abs(starts - change)) <= 0.5


def test_units_fill_beatless_stretches() -> None:
    """A beatless intro and tail are cut into beat-long units, not one giant unit each."""
    beats = np.arange(20.0, 40.0, 0.5)
    edges = sections.unit_edges(Rhythm(beats=beats), FRAME_RATE, int(60 * FRAME_RATE))
    lengths = np.diff(edges) / FRAME_RATE
    assert edges[0] == 0 and edges[-1] == int(60 * FRAME_RATE)
    assert lengths.max() < 1.0 + 1e-9
    assert len(edges) - 1 == pytest.approx(120, abs=2)


def test_stages_survive_missing_curves() -> None:
    """A failed feature (empty onset, chroma, timbre) leaves usable, valid structure."""
    curves, rhythm = synthetic_curves(40.0)
    curves.onset = np.zeros(0, dtype=np.float32)
    curves.chroma = np.zeros((0, 12), dtype=np.float32)
    curves.timbre = np.zeros((0, 12), dtype=np.float32)
    seg = segments.find_segments(curves)
    assert len(seg) >= 20 and np.all(seg.confidence == 0)  # even 2 s pieces, no onsets
    assert seg.pitches.shape == (len(seg), 12) and np.all(seg.pitches == 1.0)
    found = sections.find_sections(curves, rhythm)
    assert found and found[0].start == 0.0 and all(s.key == -1 for s in found)


def test_digital_silence_has_flat_pitches(tmp_path) -> None:
    # FFT round-off leaves ~1e-13 in the chroma of digital zeros; normalising that to max 1
    # would invent a pitch profile for silence.
    import soundfile

    path = tmp_path / "zeros.wav"
    soundfile.write(path, np.zeros(22050 * 6, dtype=np.float32), 22050)
    segs = featherbeat.analyze(path).segments
    assert len(segs) >= 1
    assert np.all(segs.loudness_max <= -59.0)
    assert np.all(segs.pitches == 1.0)
