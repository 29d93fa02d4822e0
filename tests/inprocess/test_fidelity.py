"""Values on Spotify's scale (issue 12): the silence vector, interval ends, a song's statistics.

The statistics are bench/fidelity.py's; Spotify's 10th-90th percentile ranges over its genuine
responses are stored in tests/data/spotify_ranges.json (regenerate with
``bench/fidelity.py --save-ranges tests/data/spotify_ranges.json --ranges-only``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from test_structure_song import song

import featherbeat
from featherbeat.analysis.features.timbre import SILENCE
from featherbeat.analysis.formats.spotify import to_dict
from featherbeat.testing import signals

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_fidelity", ROOT / "bench" / "fidelity.py")
assert _spec is not None and _spec.loader is not None
fidelity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fidelity)
RANGES = json.loads((ROOT / "tests" / "data" / "spotify_ranges.json").read_text())


def test_digital_silence_gives_spotifys_timbre_vector(tmp_path: Path) -> None:
    path = signals.write_audio(tmp_path, "silence", signals.silence(6.0))
    data = to_dict(featherbeat.analyze(path))
    assert data["segments"]
    for seg in data["segments"]:
        assert np.all(np.abs(np.array(seg["timbre"]) - SILENCE) <= 1.0), seg["timbre"]
        assert seg["loudness_max"] == -60.0 and seg["pitches"] == [1.0] * 12
    assert data["track"]["loudness"] == -60.0


def check_intervals(data: dict) -> None:
    """Spotify's interval invariants (issue 12, item 3) on one audio-analysis object."""
    end = data["track"]["duration"]
    for key in ("bars", "beats", "tatums", "sections", "segments"):
        items = data[key]
        starts = np.array([x["start"] for x in items])
        durations = np.array([x["duration"] for x in items])
        assert np.all(durations > 0), key  # no zero-length item
        assert np.all(starts + durations <= end + 1e-9), key  # never past the end
        assert np.all(np.diff(starts) > 0), key
        if key in ("sections", "segments"):  # these tile the track, ending exactly at its end
            assert starts[0] == 0.0, key
            assert np.allclose(starts[1:], (starts + durations)[:-1], atol=1e-9), key
            assert round(starts[-1] + durations[-1], 5) == end, key
    beats, tatums = data["beats"], data["tatums"]
    assert len(tatums) == 2 * len(beats)
    assert [t["start"] for t in tatums[::2]] == [b["start"] for b in beats]
    for seg in data["segments"]:
        assert 0.0 <= seg["loudness_max_time"] <= seg["duration"]


@pytest.mark.parametrize("duration", [12.0, 30.03, 61.7])
def test_interval_ends_on_synthetic_input(tmp_path: Path, duration: float) -> None:
    y = song("AB", 8, 120.0)[: int(duration * signals.SR)]
    path = signals.write_audio(tmp_path, "song", y, fmt="mp3" if duration > 60 else "wav")
    check_intervals(to_dict(featherbeat.analyze(path)))


def test_interval_ends_on_a_real_song(eval_dir: Path) -> None:
    path = eval_dir / "unannotated" / "librosa_vibe_ace.ogg"
    if not path.exists():
        pytest.skip("librosa_vibe_ace.ogg is absent")
    check_intervals(to_dict(featherbeat.analyze(path)))


# Statistics that follow from how we compute segments, pitches, loudness and intervals, not from
# what is played: a rendered song (sine chords, synthetic drums) keeps them in Spotify's range.
# Timbre and key/section confidences describe the sound itself; a sine-chord song is far from
# any recording there (measured on real songs by bench/fidelity.py instead).
RULE_STATISTICS = (
    "segments per second",
    "segment median duration (s)",
    "pitch mean (loud segments)",
    "pitch share > 0.5",
    "share of segments with max pitch 1",
    "timbre 2 IQR",
    "loudness_max IQR (dB)",
    "loudness_max_time (s)",
    "beats confidence median",
    "tatums confidence median",
    "tatums per beat",
    "sections per minute",
    "track time_signature_confidence",
    "track loudness - median loudness_max (dB)",
)


def test_synthetic_song_statistics_stay_in_spotifys_ranges(tmp_path: Path) -> None:
    path = signals.write_audio(tmp_path, "song", song("ABAB", 8, 120.0))
    stats = fidelity.track_stats(to_dict(featherbeat.analyze(path)))
    outside = {
        name: (round(stats[name], 3), RANGES[name])
        for name in RULE_STATISTICS
        if not RANGES[name][0] - 1e-9 <= stats[name] <= RANGES[name][1] + 1e-9
    }
    assert not outside, outside


def test_confidences_mean_what_they_say() -> None:
    from featherbeat.analysis.rhythm import condition, meter, tempo
    from featherbeat.analysis.rhythm.bars import bar_confidence

    rng = np.random.default_rng(1)
    # Time signature: a clear 4/4 accent over 200 beats is certain; random accents are not.
    clear = np.tile([2.0, 0.0, 0.7, 0.0], 50) + rng.normal(0, 0.5, 200)
    assert meter.downbeats(clear)[:2] == (4, pytest.approx(1.0, abs=1e-3))
    noise = [meter.downbeats(rng.normal(0, 1, 200))[1] for _ in range(20)]
    assert float(np.mean(noise)) < 0.8
    # Tempo: a click track's reading stands above any rival but its own half tempo (which only
    # the prior tells apart, issue 11); white noise's does not stand out, nor is it a pulse.
    rate = 100.0
    clicks = np.zeros(3000)
    clicks[::50] = 1.0
    click = tempo.estimate(condition(clicks, rate), rate)
    noise = tempo.estimate(condition(rng.random(3000), rate), rate)
    click_conf = tempo.reported_confidence(click, click.bpm)
    assert click_conf > tempo.reported_confidence(noise, noise.bpm) + 0.2
    # Bars: ranked by how much the downbeat stands out in its bar; ties share their rank.
    beat = np.array([0.9, 0.2, 0.3, 0.2, 0.5, 0.5, 0.5, 0.5, 0.1, 0.8, 0.8, 0.8, 0.9, 0.2, 0.3])
    conf = bar_confidence(beat, np.array([0, 4, 8, 12]))
    assert conf.tolist() == pytest.approx([0.875, 0.375, 0.125, 0.625])
