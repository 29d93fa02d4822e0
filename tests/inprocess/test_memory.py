"""Memory regression guard: the team's bars, <= 80 MB for minutes and <= 100 MB for an hour.

The peak is VmHWM of a fresh child process (what the service's watchdog and the benchmark
read), so imports, decoder buffers and every numpy temporary count, and nothing of the test
process does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def _write_long(path: Path, minutes: float) -> None:
    """Music-like audio (clicks, a chord, a little noise), written block by block."""
    pattern = signals.click_track(126.0, 10.0, 4).audio
    pattern = (
        pattern + 0.2 * signals.chord([55, 59, 62], 10.0) + signals.noise(10.0, amplitude=0.02)
    )
    pattern = np.clip(pattern, -1, 1)
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as out:
        for _ in range(int(minutes * 6)):
            out.write(pattern)


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


@pytest.mark.timeout(600)
def test_peak_memory_is_flat_in_the_length(tmp_path):
    """Issue 13: past ~10 minutes the per-frame curves live in temp files and every stage reads
    them in chunks, so an hour peaks within a few MB of ten minutes (measured 56 and 64 MB on
    a busy machine). What may still grow is the output itself (segments, beats: ~3 MB an hour)
    and the beat tracker's float64 working curves (~7 MB an hour)."""
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    _write_long(short, 10)
    _write_long(long, 60)
    short_mb, short_s, _ = _peak_mb(short)
    long_mb, long_s, beats = _peak_mb(long)
    assert short_s == pytest.approx(600.0, abs=1)
    assert long_s == pytest.approx(3600.0, abs=1)
    assert beats > 6000  # the analysis really ran over the whole hour
    assert short_mb <= 70, short_mb
    assert long_mb - short_mb <= 15, (short_mb, long_mb)
