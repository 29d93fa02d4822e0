"""What the page tests and scripts/page_screenshot.py share: the Chromium to drive and the
generated drum track they upload."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

# CHROMIUM names a browser that is not `chromium` on PATH (macOS, Playwright's download; see
# README.md), as scripts/system-deps.sh reads it.
CHROMIUM = (
    os.environ.get("CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
    or "/usr/bin/chromium"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
TEMPO = 120.0
DURATION = 24.0


def drum_track(path: Path, sr: int = 22050) -> Path:
    """24 s at 120 BPM in 4/4: a kick on every downbeat, a snare-ish noise on the other beats,
    and a chord pad that changes from C major to A minor half way (something for sections)."""
    rng = np.random.default_rng(7)
    n = int(DURATION * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    pad_a = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0))
    pad_b = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63, 440.0))
    y += 0.025 * np.where(t < DURATION / 2, pad_a, pad_b)
    beat = 60.0 / TEMPO
    hit = int(0.15 * sr)
    k = np.arange(hit) / sr
    for i, start in enumerate(np.arange(0.25, DURATION - 0.3, beat)):
        a = int(start * sr)
        if i % 4 == 0:  # kick: a falling sine, loud
            sound = 0.9 * np.exp(-k / 0.05) * np.sin(2 * np.pi * (60 + 90 * np.exp(-k / 0.02)) * k)
        else:  # snare-ish: noise burst
            sound = 0.45 * np.exp(-k / 0.03) * rng.uniform(-1, 1, hit)
        y[a : a + hit] += sound
    sf.write(path, (y / np.max(np.abs(y)) * 0.9).astype(np.float32), sr, subtype="PCM_16")
    return path
