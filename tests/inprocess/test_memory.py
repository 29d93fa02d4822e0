"""Memory regression guard: the team's bars, <= 80 MB for minutes and <= 100 MB for an hour.

The peak is VmHWM of a fresh child process (what the service's watchdog and the benchmark
read), so imports, decoder buffers and every numpy temporary count, and nothing of the test
process does.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from featherbeat.testing import signals

SR = 22050

_CHILD = """
import sys, featherbeat
profile = featherbeat.analyze(sys.argv[1])
assert profile.duration > 0
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(int(hwm.split()[1]) // 1024, profile.duration, len(profile.beats))
"""


def _pattern() -> np.ndarray:
    """Ten seconds of music-like audio (clicks, a chord, a little noise) at 22 050 Hz."""
    pattern = signals.click_track(126.0, 10.0, 4).audio
    pattern = (
        pattern + 0.2 * signals.chord([55, 59, 62], 10.0) + signals.noise(10.0, amplitude=0.02)
    )
    return np.clip(pattern, -1, 1)


def _write_long(path: Path, minutes: float) -> None:
    """The pattern repeated as 16-bit WAV, written block by block."""
    pattern = _pattern()
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as out:
        for _ in range(int(minutes * 6)):
            out.write(pattern)


def _write_long_opus(path: Path, minutes: float) -> None:
    """The pattern as 48 kHz stereo Ogg Opus (decoded by PyAV, as every Opus file is): encoded
    once, then its packets muxed again and again with running timestamps, so an hour costs
    one encode of ten seconds (what bench/memory_speed.py does with real music)."""
    import av
    import soxr

    rate = 48000
    stereo = np.repeat(soxr.resample(_pattern(), SR, rate)[:, None], 2, axis=1)
    packets: list[tuple[bytes, int]] = []
    with av.open(str(path), "w", format="ogg") as out:
        stream: Any = out.add_stream("libopus", rate=rate, layout="stereo")
        stream.bit_rate = 96000
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(stereo.T, dtype=np.float32), format="fltp", layout="stereo"
        )
        frame.sample_rate = rate
        length = 0  # the pattern's own length in packets, so that each repeat is 10 s
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            if packet.size and length < stereo.shape[0]:
                packets.append((bytes(packet), int(packet.duration or 960)))
                length += packets[-1][1]
        clock = 0
        for _ in range(int(minutes * 6)):
            for payload, duration in packets:
                packet = av.Packet(payload)
                packet.pts = packet.dts = clock
                packet.duration = duration
                packet.time_base = Fraction(1, rate)
                packet.stream = stream
                out.mux(packet)
                clock += duration


def _peak_mb(path: Path) -> tuple[int, float, int]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=550,
        env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    mb, duration, beats = proc.stdout.split()
    return int(mb), float(duration), int(beats)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("fmt", ["wav", "opus"])
def test_peak_memory_is_flat_in_the_length(tmp_path, fmt):
    """Issue 13: past ~10 minutes the per-frame curves live in temp files and every stage reads
    them in chunks or keeps one float64 working curve at a time, so an hour peaks within a few
    MB of ten minutes (WAV measured 56 and 64 MB on a busy machine). What may still grow is
    little (a 12-hour MP3: +1.7 MB an hour past 3 hours): the segments and rhythm's float64
    working curve are in temp files too since flat-memory3. Opus goes through PyAV, whose libraries (~23 MB) stand under every
    stage: the same bound on the growth must hold on top of them."""
    write = _write_long if fmt == "wav" else _write_long_opus
    short, long = tmp_path / f"short.{fmt}", tmp_path / f"long.{fmt}"
    write(short, 10)
    write(long, 60)
    short_mb, short_s, _ = _peak_mb(short)
    long_mb, long_s, beats = _peak_mb(long)
    assert short_s == pytest.approx(600.0, abs=1)
    assert long_s == pytest.approx(3600.0, abs=1)
    assert beats > 6000  # the analysis really ran over the whole hour
    assert short_mb <= (70 if fmt == "wav" else 90), short_mb
    assert long_mb - short_mb <= 15, (short_mb, long_mb)
