"""Round-trips of every output format: write, parse back, compare with the Profile."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

import featherbeat
from featherbeat.analysis import formats
from featherbeat.analysis.formats import jams as jams_format
from featherbeat.analysis.formats import spotify
from featherbeat.analysis.profile import Profile, Rhythm
from featherbeat.analysis.rhythm.bars import intervals, with_intervals
from featherbeat.testing import signals
from featherbeat.testing.profiles import synthetic_profile

# jams.load(strict=True) calls jsonschema in a way newer jsonschema deprecates (not our code).
JAMS_WARNING = "ignore:Passing a schema to Validator.iter_errors:DeprecationWarning"

SPOTIFY_KEYS = ["meta", "track", "bars", "beats", "tatums", "sections", "segments"]


@pytest.fixture(scope="module")
def profile() -> Profile:
    return synthetic_profile(60.0, parts=[(0.0, 0, 0.0), (20.0, 5, 30.0), (40.0, 0, 0.0)])


def _written(profile: Profile, fmt: str) -> str:
    buf = io.StringIO()
    formats.write(profile, fmt, buf)
    return buf.getvalue()


def _strict_json(text: str) -> dict:
    """json.loads that refuses NaN / Infinity, which are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_registry_is_consistent() -> None:
    assert formats.FORMATS[0] == "spotify"
    assert set(formats.FORMATS) == set(formats.MEDIA_TYPES) == set(formats.EXTENSIONS)
    with pytest.raises(ValueError, match="unknown output format"):
        formats.write(Profile(), "xml", io.StringIO())


def test_spotify_stream_equals_dict(profile: Profile) -> None:
    data = _strict_json(_written(profile, "spotify"))
    assert list(data) == [*SPOTIFY_KEYS, "featherbeat"]
    assert data == spotify.to_dict(profile)


def test_spotify_content_matches_profile(profile: Profile) -> None:
    data = _strict_json(_written(profile, "spotify"))
    r = profile.rhythm
    assert [b["start"] for b in data["beats"]] == pytest.approx(r.beats, abs=1e-5)
    # Each beat lasts until the next; bars start on downbeats and hold 4 beats.
    starts = np.array([b["start"] for b in data["beats"]])
    durs = np.array([b["duration"] for b in data["beats"]])
    assert np.allclose(starts[:-1] + durs[:-1], starts[1:], atol=2e-5)
    assert [b["start"] for b in data["bars"]] == pytest.approx(r.downbeats, abs=1e-5)
    bar_durations = [b["duration"] for b in data["bars"]]
    assert np.allclose(bar_durations[:-1], 4 * 0.5, atol=1e-3)
    assert 0 < bar_durations[-1] <= 2.0  # the last bar ends with the track
    fb = data["featherbeat"]
    assert fb["beat_positions"] == r.beat_position.tolist()
    assert fb["downbeats"] == pytest.approx(r.downbeats, abs=1e-5)
    assert len(fb["section_labels"]) == len(data["sections"]) == len(profile.sections)
    assert len(data["segments"]) == len(profile.segments)
    assert data["track"]["key"] == profile.tonality.key == 0
    assert fb["key_name"] == "C" and fb["mode_name"] == "major"
    assert data["track"]["time_signature"] == 4
    assert data["track"]["duration"] == pytest.approx(60.0)
    for seg in data["segments"]:
        assert len(seg["pitches"]) == len(seg["timbre"]) == 12
        assert max(seg["pitches"]) == pytest.approx(1.0)
        assert 0 <= seg["loudness_max_time"] <= seg["duration"] + 1e-5


def test_spotify_rounds_like_spotify(profile: Profile) -> None:
    data = _strict_json(_written(profile, "spotify"))
    for seg in data["segments"]:
        assert seg["start"] == round(seg["start"], 5)
        assert all(v == round(v, 3) for v in seg["timbre"])


def test_spotify_never_writes_nan() -> None:
    p = synthetic_profile(20.0)
    p.curves.loudness[5:50] = np.nan
    p.curves.onset[10] = np.inf
    p.rhythm.tempo_confidence = float("nan")
    p.segments.timbre[0, 3] = np.nan
    data = _strict_json(_written(p, "spotify"))
    assert data["track"]["tempo_confidence"] == 0.0
    assert data["segments"][0]["timbre"][3] == 0.0


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_a_profile_whose_lists_do_not_line_up_is_refused(fmt: str) -> None:
    """Profile.check() is the one place the invariants live; every writer refuses before
    writing a byte, naming the broken field, instead of guessing how to align."""
    p = synthetic_profile(20.0)
    p.rhythm.beat_position = p.rhythm.beat_position[:-1]
    with pytest.raises(ValueError, match="rhythm.beat_position has"):
        _written(p, fmt)
    q = synthetic_profile(20.0)
    q.rhythm.tempo_curve_bpm = q.rhythm.tempo_curve_bpm[:-3]
    with pytest.raises(ValueError, match="rhythm.bpm has"):
        q.check()
    q = synthetic_profile(20.0)
    q.segments.timbre = q.segments.timbre[:, :11]
    with pytest.raises(ValueError, match="segments.timbre must have shape"):
        q.check()


def test_empty_profile_still_has_every_key() -> None:
    data = _strict_json(_written(Profile(), "spotify"))
    assert data["beats"] == [] and data["bars"] == [] and data["segments"] == []
    assert len(data["sections"]) == 1  # the whole-track fallback section
    assert data["track"]["key"] == -1 and data["featherbeat"]["key_name"] == ""


def test_missing_stage_is_reported() -> None:
    p = synthetic_profile(20.0)
    p.sections = []
    p.missing["sections"] = "failed (RuntimeError: boom)"
    data = _strict_json(_written(p, "spotify"))
    assert data["meta"]["status_code"] == 1
    assert "sections: failed" in data["meta"]["detailed_status"]
    assert data["featherbeat"]["missing"] == {"sections": "failed (RuntimeError: boom)"}
    assert data["sections"][0]["confidence"] == 0.0
    assert data["sections"][0]["duration"] == pytest.approx(20.0)


class _RecordingStream(io.StringIO):
    """Keeps the largest single write, to prove the writer streams."""

    largest = 0

    def write(self, s: str) -> int:
        self.largest = max(self.largest, len(s))
        return super().write(s)


def test_long_track_is_streamed_and_decimated() -> None:
    hour = 3600.0
    p = synthetic_profile(hour)
    out = _RecordingStream()
    spotify.write(p, out)
    data = _strict_json(out.getvalue())
    fb = data["featherbeat"]
    for name in ("onset", "loudness", "energy"):
        assert len(fb[name]["values"]) <= spotify.CURVE_LIMITS[1]
        # rate x number of values spans the track (decimation keeps the time axis)
        assert len(fb[name]["values"]) / fb[name]["rate"] == pytest.approx(hour, rel=0.01)
    assert len(fb["waveform"]["min"]) <= spotify.WAVEFORM_LIMITS[1]
    assert len(data["beats"]) == p.rhythm.beats.size == 7199
    total = len(out.getvalue())
    assert total < 25_000_000  # an hour stays a few MB
    # Never the whole document in one write: the largest is one decimated curve (~0.5 MB).
    assert out.largest < 1_000_000 < total


def test_decimate_keeps_peaks_and_levels() -> None:
    values = np.zeros(1000)
    values[333] = 5.0
    rate, out = spotify.decimate(values, 100.0, (10.0, 10_000), lambda b: b.max(axis=1))
    assert rate == pytest.approx(10.0) and out.size == 100 and out.max() == 5.0
    same_rate, same = spotify.decimate(values, 5.0, (10.0, 10_000), lambda b: b.max(axis=1))
    assert same_rate == 5.0 and same.size == 1000


def test_beats_round_trip(profile: Profile, tmp_path: Path) -> None:
    path = tmp_path / "t.beats"
    path.write_text(_written(profile, "beats"))
    table = np.loadtxt(path, ndmin=2)
    assert table.shape == (profile.rhythm.beats.size, 2)
    assert np.allclose(table[:, 0], profile.rhythm.beats, atol=1e-5)
    assert table[:, 1].astype(int).tolist() == profile.rhythm.beat_position.tolist()


def test_beats_without_positions_and_empty() -> None:
    r = Rhythm(
        beats=np.array([0.5, 1.0]),
        beat_confidence=np.ones(2),
        beat_position=np.zeros(2, dtype=np.int16),  # 0: position in bar unknown
    )
    profile = Profile(rhythm=with_intervals(r, 1.5))
    assert _written(profile, "beats") == "0.50000\n1.00000\n"
    assert [b["duration"] for b in spotify.to_dict(profile)["beats"]] == [0.5, 0.5]
    assert spotify.to_dict(profile)["bars"] == []
    assert _written(Profile(), "beats") == ""


@pytest.mark.filterwarnings(JAMS_WARNING)
def test_jams_round_trip(profile: Profile, tmp_path: Path) -> None:
    jams = pytest.importorskip("jams")
    path = tmp_path / "t.jams"
    text = _written(profile, "jams")
    assert _strict_json(text) == jams_format.to_dict(profile)
    path.write_text(text)
    jam = jams.load(str(path), strict=True)
    beat = jam.search(namespace="beat")[0]
    times = np.array([obs.time for obs in beat.data])
    assert np.allclose(times, profile.rhythm.beats, atol=1e-5)
    assert [obs.value for obs in beat.data] == profile.rhythm.beat_position.tolist()
    position = jam.search(namespace="beat_position")[0]
    assert position.data[0].value["num_beats"] == 4
    tempo = jam.search(namespace="tempo")[0]
    assert tempo.data[0].value == pytest.approx(profile.rhythm.tempo)
    assert jam.search(namespace="key_mode")[0].data[0].value == "C:major"
    labels = [obs.value for obs in jam.search(namespace="segment_open")[0].data]
    assert labels == [s.label for s in profile.sections]


@pytest.mark.filterwarnings(JAMS_WARNING)
def test_jams_of_silence_loads(tmp_path: Path) -> None:
    jams = pytest.importorskip("jams")
    path = tmp_path / "silence.jams"
    path.write_text(_written(Profile(), "jams"))
    jam = jams.load(str(path), strict=True)
    assert len(jam.search(namespace="beat")[0].data) == 0
    assert jam.search(namespace="key_mode")[0].data[0].value == "N"


@pytest.fixture(scope="module")
def analysed_clicks(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    clicks = signals.click_track(120.0, 12.0, meter=4)
    path = signals.write_audio(tmp_path_factory.mktemp("fmt"), "clicks", clicks.audio)
    return featherbeat.analyze(path)


@pytest.mark.filterwarnings(JAMS_WARNING)
@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_every_format_of_a_real_analysis_parses(
    analysed_clicks: Profile, fmt: str, tmp_path: Path
) -> None:
    text = _written(analysed_clicks, fmt)
    if fmt == "beats":
        table = np.loadtxt(io.StringIO(text), ndmin=2)
        assert table.shape[0] == analysed_clicks.beats.size > 10
        assert np.all(np.diff(table[:, 0]) > 0)
        return
    data = _strict_json(text)
    if fmt == "spotify":
        assert data["track"]["tempo"] == pytest.approx(120.0, rel=0.04)
        assert math.isclose(data["track"]["duration"], 12.0, abs_tol=0.05)
    else:
        jams = pytest.importorskip("jams")
        path = tmp_path / "a.jams"
        path.write_text(text)
        assert jams.load(str(path), strict=True).file_metadata.duration == pytest.approx(
            12.0, abs=0.05
        )


def test_event_before_a_silent_gap_does_not_span_it() -> None:
    beats = np.array([0.0, 0.5, 1.0, 1.5, 12.0, 12.5, 13.0])  # no beats in 1.5..12 s of silence
    starts, durations = intervals(beats, end=13.4)
    assert np.allclose(starts, beats)
    assert durations[3] == pytest.approx(1.0)  # capped at 2 x the median 0.5 s, not 10.5 s
    assert durations[-1] == pytest.approx(0.4)  # the last one is clipped at the track's end
    assert np.allclose(durations[:3], 0.5)


def test_synthetic_profile_is_consistent() -> None:
    """The shared synthetic profile (featherbeat.testing.profiles) is what the tests assume."""
    p = synthetic_profile(30.0)
    assert p.curves.chroma.shape == (p.curves.loudness.size, 12)
    assert p.rhythm.beats.size == p.rhythm.beat_position.size > 0
    assert len(p.segments) > 0 and p.sections
