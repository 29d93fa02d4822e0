"""Small pure helpers the serializers share: JSON-safe rounding, per-event confidences, names."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, TextIO

import numpy as np

KEY_NAMES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODE_NAMES: dict[int, str] = {1: "major", 0: "minor"}

TIME_DECIMALS = 5  # 10 µs: finer than any analysis frame, as Spotify writes times
VALUE_DECIMALS = 3  # loudness, confidence, pitch, timbre: as Spotify writes them

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""Compact JSON text of one value (both JSON writers use it, so they format alike)."""


def num(x: float, decimals: int = VALUE_DECIMALS) -> float:
    """A finite, rounded Python float (JSON has no NaN or Infinity; bad values become 0)."""
    x = float(x)
    if not math.isfinite(x):
        return 0.0
    return round(x, decimals) + 0.0  # "+ 0.0" turns -0.0 into 0.0


def seconds(x: float) -> float:
    """A time in seconds, rounded like Spotify's (5 decimals)."""
    return num(x, TIME_DECIMALS)


def unit(x: float) -> float:
    """A confidence clipped into 0..1."""
    return num(min(max(float(x) if math.isfinite(float(x)) else 0.0, 0.0), 1.0))


def nums(values: Iterable[float], decimals: int = VALUE_DECIMALS) -> list:
    """Rounded, finite floats as (nested) lists (vectorised: curves can be tens of thousands
    long; a (n, 12) matrix gives n lists of 12)."""
    a = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return (np.round(a, decimals) + 0.0).tolist()


def units(values: Iterable[float]) -> list:
    """Confidences (any shape) clipped into 0..1 and rounded; NaN becomes 0."""
    a = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return nums(np.clip(a, 0.0, 1.0))


def key_name(key: int) -> str:
    """ "C".."B", or "" when no key was found (key -1)."""
    return KEY_NAMES[key] if 0 <= key < 12 else ""


def mode_name(mode: int) -> str:
    """ "major", "minor", or "" when no mode was found (mode -1)."""
    return MODE_NAMES.get(int(mode), "")


def write_json_array(fp: TextIO, items: Iterable[Any], chunk_size: int = 512) -> None:
    """Write ``items`` as a compact JSON array, ``chunk_size`` encoded items per ``fp.write``.

    Streaming: memory holds one chunk of items and its text, whatever the number of items. A
    chunk is encoded as one list, brackets dropped (the same text as its items encoded one by
    one and joined with ","; one encoder call instead of one per item: 22 000 calls and ~0.01
    CPU-s fewer for a 3-minute track).
    """
    fp.write("[")
    chunk: list[Any] = []
    first = True
    for item in items:
        chunk.append(item)
        if len(chunk) == chunk_size:
            fp.write(("" if first else ",") + dumps(chunk)[1:-1])
            first, chunk = False, []
    if chunk:
        fp.write(("" if first else ",") + dumps(chunk)[1:-1])
    fp.write("]")
