"""Every bad input of the issue: a valid profile or a clear DecodeError, never a traceback."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf

import featherbeat
from featherbeat.analysis.errors import DecodeError, InputTooLongError
from featherbeat.testing import signals

SR = 22050
# A 1x1 PNG: FFmpeg opens it (as a picture), and finds no audio in it.
_PNG_1PX = (
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63"
    "f8cfc0f01f0005000201ffa1d1f4a00000000049454e44ae426082"
)


def _outcome(path):
    """The profile, or the DecodeError's message (anything else fails the test)."""
    try:
        return featherbeat.analyze(path)
    except DecodeError as exc:
        message = str(exc)
        assert message and "\n" not in message and path.name in message
        return message


def _check_profile(profile, duration: float) -> None:
    assert profile.duration == pytest.approx(duration, abs=0.15)
    assert np.all(np.isfinite(profile.curves.loudness))
    assert np.all(np.isfinite(profile.curves.timbre)) and np.all(np.isfinite(profile.curves.chroma))
    assert profile.tempo >= 0 and 0 <= profile.rhythm.tempo_confidence <= 1


@pytest.mark.parametrize(
    ("name", "payload", "why"),
    [
        ("empty.wav", b"", "empty"),
        (
            "noise.bin",
            bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)),
            "not a readable",
        ),
        ("text.mp3", b"just some words in a file named like music\n" * 50, "not a readable"),
        ("fake.flac", b"fLaC" + b"\x00" * 200, "not a readable"),
        ("picture.mp3", bytes.fromhex(_PNG_1PX), "no audio stream"),
    ],
)
def test_unreadable_input_is_a_clear_decode_error(tmp_path, name, payload, why):
    path = tmp_path / name
    path.write_bytes(payload)
    result = _outcome(path)
    assert isinstance(result, str) and why in result


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a"])
def test_truncated_files(tmp_path, fmt):
    y = signals.click_track(120.0, 8.0).audio + signals.noise(8.0, amplitude=0.05)
    path = signals.write_audio(tmp_path, "cut", y, SR, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    result = _outcome(path)
    if isinstance(result, str):
        assert "cut." in result
        if fmt == "m4a":  # its index (moov) comes last: cut off, nothing is decodable
            assert "truncated" in result
    else:
        assert 0 < result.duration < 8.0  # what was readable was analysed
        assert result.missing["decode"].startswith("input truncated: ")  # and it says so
        assert result.status_code == 1


def test_wav_header_claiming_hours(tmp_path):
    path = signals.write_audio(tmp_path, "liar", signals.noise(2.0), SR, "wav")
    data = bytearray(path.read_bytes())
    i = data.find(b"data")
    data[i + 4 : i + 8] = struct.pack("<I", 0xFFFFFF00)  # ~27 hours of 16-bit mono
    data[4:8] = struct.pack("<I", 0xFFFFFFF0)
    path.write_bytes(bytes(data))
    profile = featherbeat.analyze(path, max_duration=3600)
    _check_profile(profile, 2.0)
    # The header lies by 27 hours: a copy cut short, and the profile says so (issue 10.2).
    assert profile.status_code == 1
    assert "the WAV header says" in profile.missing["decode"]


@pytest.mark.parametrize("fmt", ["wav", "ogg", "opus"])
def test_truncation_the_decoders_do_not_report_is_found(tmp_path, fmt):
    """libsndfile shortens a cut WAV to what is there and an Ogg stream cut mid-page just ends:
    the container itself (the WAV data size, the Ogg end-of-stream page) says it was cut."""
    y = signals.click_track(120.0, 8.0).audio + signals.noise(8.0, amplitude=0.05)
    whole = signals.write_audio(tmp_path, "whole", y, SR, fmt)
    assert featherbeat.analyze(whole).status_code == 0  # an intact file is not flagged
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.5)])
    profile = featherbeat.analyze(cut)
    assert 1.0 < profile.duration < 6.0
    assert profile.status_code == 1
    assert profile.missing["decode"].startswith("input truncated: ")
    # The same through a file object (the service decodes uploads from files, the library
    # takes either): the check reads the container from where the audio starts.
    with cut.open("rb") as fh:
        assert featherbeat.analyze(fh).status_code == 1


def test_nan_and_inf_samples(tmp_path):
    y = signals.click_track(120.0, 6.0).audio
    y[1000:5000] = np.nan
    y[9000] = np.inf
    y[9001] = -np.inf
    sf.write(tmp_path / "nan.wav", y, SR, subtype="FLOAT")
    _check_profile(featherbeat.analyze(tmp_path / "nan.wav"), 6.0)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("silence", lambda: signals.silence(5.0)),
        ("dc", lambda: signals.silence(5.0) + 0.5),
        ("clipped", lambda: np.clip(signals.click_track(120.0, 5.0).audio * 20, -1, 1)),
        ("white", lambda: signals.noise(5.0, amplitude=0.9)),
    ],
)
def test_degenerate_signals_give_profiles(tmp_path, name, make):
    path = signals.write_audio(tmp_path, name, make(), SR, "wav")
    profile = featherbeat.analyze(path)
    _check_profile(profile, 5.0)
    if name in ("silence", "dc"):  # nothing happens: no pulse
        assert profile.tempo == 0.0 and profile.beats.shape[0] == 0


@pytest.mark.parametrize(
    ("seconds", "sr"), [(1 / 44100, 44100), (0.5, 44100), (3.0, 8000), (3.0, 192000)]
)
def test_tiny_files_and_extreme_rates(tmp_path, seconds, sr):
    n = max(1, int(round(seconds * sr)))
    y = (0.3 * np.sin(np.arange(n) * 2 * np.pi * 440 / sr)).astype(np.float32)
    if n == 1:
        y[0] = 0.3
    path = signals.write_audio(tmp_path, f"t{n}", y, sr, "wav")
    result = _outcome(path)
    if isinstance(result, str):
        assert n == 1  # only a 1-sample file may be refused as having no audio
    else:
        _check_profile(result, n / sr)


def test_eight_channels(tmp_path):
    y = signals.click_track(120.0, 6.0).audio
    chans = np.stack([y * (k + 1) / 10 for k in range(8)], axis=1)
    sf.write(tmp_path / "eight.flac", chans, SR)
    profile = featherbeat.analyze(tmp_path / "eight.flac")
    assert profile.source.channels == 8
    _check_profile(profile, 6.0)


def test_header_with_absurd_rate_or_channels(tmp_path):
    # 1 Hz would make the resampler emit 22 050 samples per input sample.
    sf.write(tmp_path / "slow.wav", np.zeros(1000, dtype=np.float32), 1)
    with pytest.raises(DecodeError, match="unsupported sample rate 1 Hz"):
        featherbeat.analyze(tmp_path / "slow.wav")
    # 512 channels at 192 kHz: reads stay a few MB, the mix is still right.
    many = np.full((4000, 512), 0.25, dtype=np.float32)
    sf.write(tmp_path / "many.wav", many, 192000, subtype="FLOAT")
    profile = featherbeat.analyze(tmp_path / "many.wav")
    assert profile.source.channels == 512
    assert profile.duration == pytest.approx(4000 / 192000, abs=0.002)


def test_two_hour_file_is_refused_early_under_a_limit(tmp_path):
    # A true two-hour header (8 kHz, 8-bit: 58 MB of quiet): refused from the header, before
    # any decoding, when the caller sets a limit (the service does); see test_memory.py for
    # what an hour costs when it is analysed.
    path = tmp_path / "two_hours.wav"
    block = np.zeros(8000 * 60, dtype=np.float32)
    with sf.SoundFile(path, "w", 8000, 1, subtype="PCM_U8") as out:
        for _ in range(120):
            out.write(block)
    with pytest.raises(InputTooLongError, match="120.0 minutes"):
        featherbeat.analyze(path, max_duration=3600)
