"""End of fade-in and start of fade-out, from the loudness curve.

A track "has faded in" once its smoothed loudness first comes within ``FADE_IN_DB`` of its
typical loud level (the 90th percentile of non-silent frames); it "starts fading out" after the
last moment it is within ``FADE_OUT_DB`` of that level. A track that starts loud gets 0.0; one
that ends loud gets its duration (Spotify's documented convention for "no fade-out"). A rise
longer than ``MAX_FADE_IN_SECONDS`` (a fall longer than ``MAX_FADE_OUT_SECONDS``) is a quiet
intro (outro), not a fade: then only leading (trailing) near-silence counts.
Smoothing over ``SMOOTH_SECONDS`` keeps single drum hits and short gaps from deciding.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.profile import Curves
from featherbeat.analysis.spans import (
    LOUDNESS_FLOOR_DB,
    db_to_power,
    moving_mean,
    power_to_db,
)

SMOOTH_SECONDS = 0.5
FADE_IN_DB = 15.0
FADE_OUT_DB = 10.0
REFERENCE_PERCENTILE = 90.0
END_TOLERANCE_SECONDS = 0.5
MAX_FADE_IN_SECONDS = 15.0
MAX_FADE_OUT_SECONDS = 30.0
SOUND_DB = 40.0  # within 40 dB of the loud level: something sounds  # a drop in the last half second is a cut, not a fade


def find_fades(curves: Curves, duration: float) -> tuple[float, float]:
    """(end_of_fade_in, start_of_fade_out) in seconds, 0 <= first <= second <= duration."""
    duration = max(float(duration), 0.0)
    db = np.asarray(curves.loudness, dtype=np.float64).reshape(-1)
    rate = float(curves.frame_rate)
    if db.size == 0 or rate <= 0 or duration == 0:
        return 0.0, duration
    db = np.nan_to_num(db, nan=LOUDNESS_FLOOR_DB)
    smooth = power_to_db(moving_mean(db_to_power(db), max(1, int(SMOOTH_SECONDS * rate / 2))))
    sounding = smooth[smooth > LOUDNESS_FLOOR_DB + 1.0]
    if sounding.size == 0:
        return 0.0, duration  # silence: neither fade
    ref = float(np.percentile(sounding, REFERENCE_PERCENTILE))
    in_frames = np.flatnonzero(smooth >= ref - FADE_IN_DB)
    out_frames = np.flatnonzero(smooth >= ref - FADE_OUT_DB)
    fade_in = float(in_frames[0]) / rate if in_frames.size else 0.0
    fade_out = float(out_frames[-1] + 1) / rate if out_frames.size else duration
    # A "fade" longer than any real one is a quiet intro or outro, which is music, not a fade:
    # then only the silence before the first sound (after the last) counts.
    sound = np.flatnonzero(smooth >= ref - SOUND_DB)
    if fade_in > MAX_FADE_IN_SECONDS:
        fade_in = float(sound[0]) / rate
    if duration - fade_out > MAX_FADE_OUT_SECONDS:
        fade_out = float(sound[-1] + 1) / rate
    if duration - fade_out <= END_TOLERANCE_SECONDS:
        fade_out = duration
    fade_in = min(fade_in, duration)
    fade_out = min(max(fade_out, fade_in), duration)
    return fade_in, fade_out
