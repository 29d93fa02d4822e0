"""Integrated track loudness: a gated mean of 3-second short-term loudness (after EBU R128).

Why gated: a plain mean is dragged down by silent intros, gaps and fade-outs, which is not how
loud a track sounds. As in EBU R128 / ITU-R BS.1770 we drop near-silent blocks (absolute gate)
and blocks more than 10 dB below the loudness of what is left (relative gate), then average
power. Our input is unweighted dBFS per frame (no K-weighting), so values read like Spotify's
(-5 dB for loud masters, -20 dB for quiet ones), not like LUFS.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.profile import Curves
from featherbeat.analysis.spans import (
    LOUDNESS_FLOOR_DB,
    db_to_power,
    power_to_db,
    span_means,
)

BLOCK_SECONDS = 3.0  # EBU R128 short-term window
HOP_SECONDS = 1.0
ABSOLUTE_GATE_DB = LOUDNESS_FLOOR_DB + 1.0  # just above the curve's floor: silence
RELATIVE_GATE_DB = 10.0


def track_loudness(curves: Curves) -> float:
    """Integrated loudness in dB (dBFS scale); ``LOUDNESS_FLOOR_DB`` (-60) for silence or no frames."""
    db = np.asarray(curves.loudness, dtype=np.float64).reshape(-1)
    rate = float(curves.frame_rate)
    if db.size == 0 or rate <= 0:
        return LOUDNESS_FLOOR_DB
    power = db_to_power(np.nan_to_num(db, nan=LOUDNESS_FLOOR_DB))
    win = max(1, int(round(BLOCK_SECONDS * rate)))
    hop = max(1, int(round(HOP_SECONDS * rate)))
    starts = np.arange(0, max(db.size - win, 0) + 1, hop)
    ends = np.minimum(starts + win, db.size)
    block = span_means(power, starts, ends)
    block_db = power_to_db(block)
    kept = block[block_db > ABSOLUTE_GATE_DB]
    if kept.size == 0:
        return LOUDNESS_FLOOR_DB
    relative = float(power_to_db(kept.mean())) - RELATIVE_GATE_DB
    kept = kept[power_to_db(kept) > relative]
    return float(power_to_db(kept.mean()))
