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

from featherbeat.analysis.features._store import release, row_chunks, scratch
from featherbeat.analysis.profile import Curves
from featherbeat.analysis.spans import LOUDNESS_FLOOR_DB, moving_mean_blocks, np_percentile

SMOOTH_SECONDS = 0.5
FADE_IN_DB = 15.0
FADE_OUT_DB = 10.0
REFERENCE_PERCENTILE = 90.0
END_TOLERANCE_SECONDS = 0.5
MAX_FADE_IN_SECONDS = 15.0
MAX_FADE_OUT_SECONDS = 30.0
SOUND_DB = 40.0  # within 40 dB of the loud level: something sounds  # a drop in the last half second is a cut, not a fade


def _first_last(mask: np.ndarray) -> tuple[int | None, int | None]:
    """First and last True index of ``mask`` (no index array the length of the curve)."""
    if not mask.any():
        return None, None
    return int(np.argmax(mask)), int(mask.size - 1 - np.argmax(mask[::-1]))


def _first_last_at_least(values: np.ndarray, level: float) -> tuple[int | None, int | None]:
    """``_first_last(values >= level)``, a chunk at a time: no boolean array the curve's
    length, and a buffer kept in a temp file is resident one chunk at a time."""
    first = last = None
    for a, part in row_chunks(values):
        f, l_ = _first_last(part >= level)
        if f is not None and l_ is not None:
            first = a + f if first is None else first
            last = a + l_
    return first, last


def _smoothed_db(loudness: np.ndarray, rate: float, out: np.ndarray) -> np.ndarray:
    """``power_to_db(moving_mean(db_to_power(loudness)))`` over SMOOTH_SECONDS, computed in the
    float64 buffer ``out`` (the curve's length) in place: the same operations, so the same
    values, with one buffer (six hours: 7.5 MB per copy of the curve). The stored curve is
    read chunk by chunk, never resident whole, and so is ``out`` (element by element, the
    same operations in chunks give the same values; a long track's ``out`` is kept in a temp
    file and each chunk's pages go back after it)."""
    for a, part in row_chunks(loudness):
        chunk = out[a : a + part.size]
        chunk[...] = part
        np.nan_to_num(chunk, copy=False, nan=LOUDNESS_FLOOR_DB)
        chunk /= 10.0
        np.power(10.0, chunk, out=chunk)
        release(out)
    # Smoothed in that same buffer, block by block (the same values as moving_mean's array).
    for o0, means in moving_mean_blocks(out, max(1, int(SMOOTH_SECONDS * rate / 2))):
        chunk = out[o0 : o0 + means.size]
        np.maximum(means, 10.0 ** (LOUDNESS_FLOOR_DB / 10.0), out=chunk)
        np.log10(chunk, out=chunk)
        chunk *= 10.0
        release(out)
    return out


def find_fades(curves: Curves, duration: float) -> tuple[float, float]:
    """(end_of_fade_in, start_of_fade_out) in seconds, 0 <= first <= second <= duration."""
    duration = max(float(duration), 0.0)
    rate = float(curves.frame_rate)
    if np.asarray(curves.loudness).size == 0 or rate <= 0 or duration == 0:
        return 0.0, duration
    loudness = np.asarray(curves.loudness).reshape(-1)
    # Past 1 MB (~6 minutes) the buffer is kept in a temp file (twelve hours: 15 MB), read and
    # written a chunk at a time; only the percentile below holds the sounding frames at once.
    smooth = _smoothed_db(loudness, rate, scratch((loudness.size,)))
    # The reference level from the sounding frames, gathered a chunk at a time into a second
    # work array (in a temp file past 1 MB, like ``smooth``): the percentile of the same values
    # is the same, and no float64 copy of them is ever resident beside the curve.
    sounding = scratch((smooth.size,))
    count = 0
    for _, part in row_chunks(smooth):
        kept = part[part > LOUDNESS_FLOOR_DB + 1.0]
        sounding[count : count + kept.size] = kept
        count += kept.size
        release(sounding)
    if count == 0:
        return 0.0, duration  # silence: neither fade
    ref = float(np_percentile(sounding[:count], REFERENCE_PERCENTILE, overwrite_input=True))
    del sounding
    fade_in_at = _first_last_at_least(smooth, ref - FADE_IN_DB)[0]
    fade_out_at = _first_last_at_least(smooth, ref - FADE_OUT_DB)[1]
    fade_in = float(fade_in_at) / rate if fade_in_at is not None else 0.0
    fade_out = float(fade_out_at + 1) / rate if fade_out_at is not None else duration
    # A "fade" longer than any real one is a quiet intro or outro, which is music, not a fade:
    # then only the silence before the first sound (after the last) counts.
    first_sound, last_sound = _first_last_at_least(smooth, ref - SOUND_DB)
    if fade_in > MAX_FADE_IN_SECONDS and first_sound is not None:
        fade_in = float(first_sound) / rate
    if duration - fade_out > MAX_FADE_OUT_SECONDS and last_sound is not None:
        fade_out = float(last_sound + 1) / rate
    if duration - fade_out <= END_TOLERANCE_SECONDS:
        fade_out = duration
    fade_in = min(fade_in, duration)
    fade_out = min(max(fade_out, fade_in), duration)
    return fade_in, fade_out
