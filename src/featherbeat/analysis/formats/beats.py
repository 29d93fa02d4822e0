"""``.beats`` text: one beat a line, ``time<TAB>position_in_bar`` (1 = downbeat).

The layout madmom's programs write and the annotation sets (Ballroom, GTZAN, ...) ship;
``numpy.loadtxt(path, ndmin=2)`` reads it back. Times have 5 decimals (10 µs).
When a beat's position in bar is unknown (0), lines carry the time only.
"""

from __future__ import annotations

from typing import TextIO

import numpy as np

from featherbeat.analysis.profile import Profile

_CHUNK = 4096  # lines per fp.write()


def lines(times: np.ndarray, positions: np.ndarray | None) -> list[str]:
    """The text lines (with newline) for beats at ``times`` with optional bar ``positions``."""
    times = np.nan_to_num(np.asarray(times, dtype=np.float64).reshape(-1))
    if positions is None:
        return [f"{x:.5f}\n" for x in times.tolist()]
    pos = np.asarray(positions).reshape(-1).astype(np.int64).tolist()
    return [f"{x:.5f}\t{p:d}\n" for x, p in zip(times.tolist(), pos, strict=True)]


def write(profile: Profile, fp: TextIO) -> None:
    profile.check()
    r = profile.rhythm
    known = r.positions_known
    for i in range(0, len(r.beats), _CHUNK):
        pos = r.beat_position[i : i + _CHUNK] if known else None
        fp.write("".join(lines(r.beats[i : i + _CHUNK], pos)))
