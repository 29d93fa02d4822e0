"""Beats, tatums and bars as intervals: each event lasts until the next one.

What Spotify's ``beats``, ``tatums`` and ``bars`` lists show is a start, a duration and a
confidence; the durations (and the bars themselves) are rhythm facts, so they are derived here,
once, at the end of the rhythm stage, and every serializer only maps the fields.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from featherbeat.analysis.profile import Rhythm
from featherbeat.analysis.spans import np_median

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
    last = float(np_median(gaps)) if gaps.size else max(end - starts[-1], 0.0)
    if gaps.size:
        gaps = np.minimum(gaps, 2.0 * last)
    if end > starts[-1]:
        last = min(last, end - starts[-1])
    durations = np.append(gaps, max(last, 0.0))
    return starts, durations


def bar_intervals(
    starts: np.ndarray,
    ends: np.ndarray,
    positions: np.ndarray,
    confidence: np.ndarray,
    beats_per_bar: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, durations, confidences) of bars: from each downbeat (position 1) to the next.

    ``starts``/``ends``: the beats' intervals. The last bar ends with its last beat, at most
    ``beats_per_bar`` beats after its downbeat (so never past the last beat's end). A bar's
    confidence: :func:`bar_confidence`. Beats before the first downbeat (a pickup) are in no
    bar.
    """
    times = np.asarray(starts, dtype=np.float64).reshape(-1)
    first = np.flatnonzero(np.asarray(positions).reshape(-1) == 1)
    if first.size == 0:
        empty = np.zeros(0)
        return empty, empty, empty
    conf = np.clip(np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.5), 0.0, 1.0)
    meter = min(max(int(beats_per_bar), MIN_TIME_SIGNATURE), MAX_TIME_SIGNATURE)
    last = min(int(first[-1]) + meter, times.size) - 1
    bar_ends = np.append(times[first[1:]], np.asarray(ends, dtype=np.float64)[last])
    durations = np.round(bar_ends - times[first], GRID)
    return times[first], durations, bar_confidence(conf, first)


def bar_confidence(beat_conf: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Per bar: how well its downbeat is supported, as a rank among the track's bars (0..1).

    Evidence: the downbeat's share of onset strength against the mean of the bar's other beats
    (0.5: no stronger than they are). Spotify's bar confidences behave like ranks within the
    track: on all 12 genuine responses the per-track median is 0.39-0.67 (10-90 %: 0.45-0.53)
    and the spread 0.1-0.8, whatever the beats' confidences (their medians 0.14-0.83) or the
    time-signature confidence (0.03 on one track, its bars' median still 0.47). So the
    evidence is written as its rank: (rank + 0.5) / bars, ties sharing their mean rank.
    """
    counts = np.diff(np.append(first, beat_conf.size))
    down = beat_conf[first]
    others = (np.add.reduceat(beat_conf, first) - down) / np.maximum(counts - 1, 1)
    share = down / np.maximum(down + others, 1e-9)
    share[counts == 1] = 0.5  # a bar of one beat: nothing to compare with
    order = np.argsort(share, kind="stable")
    ranks = np.empty(share.size)
    ranks[order] = np.arange(share.size, dtype=np.float64)
    # Equal evidence, equal confidence: average the ranks of ties.
    _, inverse, tie_counts = np.unique(share, return_inverse=True, return_counts=True)
    ranks = np.bincount(inverse, weights=ranks) / tie_counts
    return (ranks[inverse] + 0.5) / share.size


GRID = 5  # decimals of the written times (10 µs): intervals are cut on that grid


def with_intervals(rhythm: Rhythm, duration: float) -> Rhythm:
    """``rhythm`` with the durations of its beats and tatums and its bars filled in, for a
    track of ``duration`` seconds, under Spotify's rules (issue 12; docs/formats.md):

    - no beat, tatum or bar runs past ``duration``; none has zero length (a beat on the very
      last sample is dropped). Ends are cut on the 10 µs grid the JSON is written on, so a
      written start + duration never passes the written track duration;
    - exactly two tatums per beat, each half of it, carrying the beat's confidence: Spotify's
      always are (all 12 genuine responses), and clients index tatums so. (Our tatum stage may
      hear thirds; no annotated data says when that beats halves, so halves are written.)
    - the last bar ends with its last beat (at most time-signature beats after its downbeat).
    """
    stop = round(float(duration), GRID)
    times = np.round(np.asarray(rhythm.beats, dtype=np.float64).reshape(-1), GRID)
    _, durations = intervals(times, stop)
    ends = np.minimum(np.round(times + durations, GRID), stop)
    keep = ends - times > 0
    if not keep.all():
        rhythm = replace(
            rhythm,
            beats=rhythm.beats[keep],
            beat_confidence=rhythm.beat_confidence[keep],
            beat_position=rhythm.beat_position[keep],
        )
        times, ends = times[keep], ends[keep]
    beat_duration = np.round(ends - times, GRID)
    half = np.round(beat_duration / 2.0, GRID)
    tatums = np.stack([times, times + half], axis=1).reshape(-1)
    tatum_duration = np.stack([half, beat_duration - half], axis=1).reshape(-1)
    tatum_conf = np.repeat(np.asarray(rhythm.beat_confidence, dtype=np.float64), 2)
    # Tatums of no length (a beat of 10 µs) are dropped like beats.
    full = tatum_duration > 0
    bar_start, bar_duration, bar_confidence = bar_intervals(
        times, ends, rhythm.beat_position, rhythm.beat_confidence, rhythm.time_signature
    )
    return replace(
        rhythm,
        beat_duration=beat_duration,
        tatums=tatums[full],  # float64: on the written grid even after an hour
        tatum_confidence=tatum_conf[full].astype(np.float32),
        tatum_duration=tatum_duration[full],
        bar_start=bar_start,
        bar_duration=bar_duration,
        bar_confidence=bar_confidence,
    )
