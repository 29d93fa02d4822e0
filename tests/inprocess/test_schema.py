"""Our JSON Schema of the whole output, and Spotify's own schema, against real output."""

from __future__ import annotations

import io
import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

import featherbeat
from featherbeat.analysis.formats import spotify
from featherbeat.analysis.profile import Profile
from featherbeat.testing import signals
from featherbeat.testing.profiles import synthetic_profile

SPOTIFY_SCHEMA = (
    Path(__file__).resolve().parents[3] / "shared" / "spotify" / "audio-analysis.schema.json"
)


@pytest.fixture(scope="module")
def ours() -> jsonschema.Draft202012Validator:
    text = (
        resources.files("featherbeat.analysis.formats")
        .joinpath("schema/featherbeat-analysis.schema.json")
        .read_text()
    )
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def theirs() -> jsonschema.Draft202012Validator:
    if not SPOTIFY_SCHEMA.is_file():
        pytest.skip("../shared/spotify/audio-analysis.schema.json is absent")
    return jsonschema.Draft202012Validator(json.loads(SPOTIFY_SCHEMA.read_text()))


def _json(profile: Profile) -> dict:
    buf = io.StringIO()
    spotify.write(profile, buf)
    return json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Profile]:
    """Real analyses of generated audio: music-like, silence, a reduced run."""
    folder = tmp_path_factory.mktemp("schema")
    clicks = signals.click_track(100.0, 10.0, meter=3, subdivide=True)
    chords = signals.progression([[60, 64, 67], [65, 69, 72], [67, 71, 74], [60, 64, 67]], 1.5)
    mixed = clicks.audio[: chords.size] * 0.5 + chords[: clicks.audio.size] * 0.5
    music = signals.write_audio(folder, "music", mixed, fmt="flac")
    quiet = signals.write_audio(folder, "silence", signals.silence(3.0))
    return {
        "music": featherbeat.analyze(music),
        "silence": featherbeat.analyze(quiet),
        "reduced": featherbeat.analyze(music, reduced=True),
    }


@pytest.mark.parametrize("name", ["music", "silence", "reduced"])
def test_real_output_matches_both_schemas(analysed, ours, theirs, name: str) -> None:
    data = _json(analysed[name])
    ours.validate(data)
    theirs.validate(data)


def test_synthetic_and_empty_profiles_match_our_schema(ours) -> None:
    ours.validate(_json(synthetic_profile(40.0)))
    ours.validate(_json(Profile()))


def test_schema_requires_every_spotify_property(ours, theirs) -> None:
    """Spotify lists properties without requiring them; we require every one it lists."""
    spotify_defs = theirs.schema["$defs"]
    top = spotify_defs["AudioAnalysisObject"]["properties"]
    assert set(top) <= set(ours.schema["required"])
    for part in ("meta", "track"):
        assert set(top[part]["properties"]) == set(ours.schema["properties"][part]["required"])
    for theirs_name, ours_name in (
        ("SectionObject", "section"),
        ("SegmentObject", "segment"),
        ("TimeIntervalObject", "interval"),
    ):
        assert set(spotify_defs[theirs_name]["properties"]) == set(
            ours.schema["$defs"][ours_name]["required"]
        )


def test_schema_rejects_what_it_should(ours) -> None:
    data = _json(synthetic_profile(20.0))
    data["segments"][0]["pitches"][0] = 1.5
    assert not ours.is_valid(data)
    data = _json(synthetic_profile(20.0))
    data["extra"] = 1
    assert not ours.is_valid(data)
    data = _json(synthetic_profile(20.0))
    del data["featherbeat"]["waveform"]
    assert not ours.is_valid(data)


@pytest.mark.eval
def test_real_music_matches_both_schemas(eval_dir: Path, ours, theirs) -> None:
    """A few of the 30 s clips in ../shared/eval/dev (skipped when absent)."""
    clips = sorted((eval_dir / "dev").glob("*.flac"))[::20]
    assert clips
    for clip in clips:
        profile = featherbeat.analyze(clip)
        data = _json(profile)
        ours.validate(data)
        theirs.validate(data)
        # Spotify-like scales (see ../shared/spotify/README.md).
        assert 1 <= len(data["sections"]) <= 4  # 30 s: about one section per 15 s
        assert 2.0 <= len(data["segments"]) / profile.duration <= 7.0
        assert -40 <= data["track"]["loudness"] <= 0
