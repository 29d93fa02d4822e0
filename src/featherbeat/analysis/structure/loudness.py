"""Integrated track loudness: a gated mean of 3-second short-term loudness (after EBU R128).

Why gated: a plain mean is dragged down by silent intros, gaps and fade-outs, which is not how
loud a track sounds. As in EBU R128 / ITU-R BS.1770 we drop near-silent blocks (absolute gate)
and blocks more than 10 dB below the loudness of what is left (relative gate), then average
power. Our input is unweighted dBFS per frame (no K-weighting), so values read like Spotify's
(-5 dB for loud masters, -20 dB for quiet ones), not like LUFS.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.profile import Curves, Segments
from featherbeat.analysis.spans import LOUDNESS_FLOOR_DB, db_to_power, power_to_db, span_means

BLOCK_SECONDS = 3.0  # EBU R128 short-term window
HOP_SECONDS = 1.0
ABSOLUTE_GATE_DB = LOUDNESS_FLOOR_DB + 1.0  # just above the curve's floor: silence
RELATIVE_GATE_DB = 10.0


def track_loudness(curves: Curves, segments: Segments | None = None) -> float:
    """Track loudness in dB (dBFS scale); ``LOUDNESS_FLOOR_DB`` (-60) for silence or no frames.

    With segments: the mean in dB of the segments' ``loudness_max``, weighted by duration,
    over the segments the gates keep (absolute: above silence; relative: within 10 dB of the
    power mean of what is left). That is what Spotify's track loudness is on its own 12
    responses: within -0.5..+4 dB of that mean and close to the median segment loudness_max
    (median difference -0.3 dB), while a mean of the signal's power reads 2 dB lower than our
    segments' peaks (docs/benchmarks/fidelity.md). Clients compare the two, so they must agree.
    Without segments (reduced run): the gated mean of 3-second power blocks below.
    """
    if segments is not None and len(segments):
        return _segment_loudness(segments)
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


def _segment_loudness(segments: Segments) -> float:
    peak = np.nan_to_num(np.asarray(segments.loudness_max, dtype=np.float64), nan=LOUDNESS_FLOOR_DB)
    weight = np.maximum(np.asarray(segments.duration, dtype=np.float64), 0.0)
    kept = (peak > ABSOLUTE_GATE_DB) & (weight > 0)
    if not kept.any():
        return LOUDNESS_FLOOR_DB
    power = db_to_power(peak)
    relative = float(power_to_db(np.average(power[kept], weights=weight[kept]))) - RELATIVE_GATE_DB
    kept &= peak > relative
    return float(np.average(peak[kept], weights=weight[kept]))
