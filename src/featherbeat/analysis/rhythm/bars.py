"""Beats, tatums and bars as intervals: each event lasts until the next one.

What Spotify's ``beats``, ``tatums`` and ``bars`` lists show is a start, a duration and a
confidence; the durations (and the bars themselves) are rhythm facts, so they are derived here,
once, at the end of the rhythm stage, and every serializer only maps the fields.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from featherbeat.analysis.profile import Rhythm

MIN_TIME_SIGNATURE, MAX_TIME_SIGNATURE = 3, 7  # the range Spotify documents


def intervals(times: np.ndarray, end: float) -> tuple[np.ndarray, np.ndarray]:
    """(starts, durations) of events that each last until the next one.

    The last event lasts one median inter-event interval, clipped at ``end`` (the track's
    duration), because there is no next event to end it. No event lasts longer than twice the
    median interval: the rhythm stage places no beats in a silent gap, and the beat before the
    gap should not claim the whole gap.
    """
    starts = np.asarray(times, dtype=np.float64).reshape(-1)
    if starts.size == 0:
        return starts, starts.copy()
    gaps = np.diff(starts)
    last = float(np.median(gaps)) if gaps.size else max(end - starts[-1], 0.0)
    if gaps.size:
        gaps = np.minimum(gaps, 2.0 * last)
    if end > starts[-1]:
        last = min(last, end - starts[-1])
    durations = np.append(gaps, max(last, 0.0))
    return starts, durations


def bar_intervals(
    beats: np.ndarray, positions: np.ndarray, confidence: np.ndarray, beats_per_bar: int, end: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, durations, confidences) of bars: from each downbeat (position 1) to the next.

    The last bar lasts as many median beat periods as the bar has beats. A bar's confidence is
    the mean confidence of its beats. Beats before the first downbeat (a pickup) are in no bar.
    """
    times = np.asarray(beats, dtype=np.float64).reshape(-1)
    first = np.flatnonzero(np.asarray(positions).reshape(-1) == 1)
    if first.size == 0:
        empty = np.zeros(0)
        return empty, empty, empty
    conf = np.clip(np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.5), 0.0, 1.0)
    starts = times[first]
    period = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    meter = min(max(int(beats_per_bar), MIN_TIME_SIGNATURE), MAX_TIME_SIGNATURE)
    last_end = min(starts[-1] + meter * period, end)
    durations = np.diff(np.append(starts, max(last_end, starts[-1])))
    bar_conf = np.add.reduceat(conf, first) / np.diff(np.append(first, times.size))
    return starts, durations, bar_conf


def with_intervals(rhythm: Rhythm, duration: float) -> Rhythm:
    """``rhythm`` with the durations of its beats and tatums and its bars filled in, for a
    track of ``duration`` seconds (the last event ends by then)."""
    _, beat_duration = intervals(rhythm.beats, duration)
    _, tatum_duration = intervals(rhythm.tatums, duration)
    bar_start, bar_duration, bar_confidence = bar_intervals(
        rhythm.beats, rhythm.beat_position, rhythm.beat_confidence, rhythm.time_signature, duration
    )
    return replace(
        rhythm,
        beat_duration=beat_duration,
        tatum_duration=tatum_duration,
        bar_start=bar_start,
        bar_duration=bar_duration,
        bar_confidence=bar_confidence,
    )
