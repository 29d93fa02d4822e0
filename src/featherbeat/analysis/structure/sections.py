"""Sections: the large parts of a track (intro, verse, chorus, ...), labelled by similarity.

1. Units: beat-synchronous frames (the span from one beat to the next), or fixed 0.5 s units
   when the track has no usable beats. Per unit: chroma (normalised to sum 1, so it is about
   harmony, not level), timbre and loudness, each dimension z-scored over the track and the
   three groups weighted alike.
2. Novelty: at each unit boundary, the squared distance between the mean features of the
   ``h`` units before and the ``h`` units after, summed over ``h`` in ``HALF_WINDOWS`` (2 and 4
   bars of 4/4). This equals Foote's checkerboard-kernel novelty on a squared-distance
   self-similarity matrix, computed from running sums in O(units) time and memory, so no
   self-similarity matrix is ever built (an hour is ~7000 beats).
3. Boundaries: novelty peaks above the curve's mean (top 1 % clipped), strongest first, at least
   ``MIN_SECTION_SECONDS`` apart, at most one per ``SECONDS_PER_SECTION`` of audio on average,
   then snapped to the nearest downbeat within half a bar when that downbeat is itself nearly
   as novel (a wrong bar phase from the rhythm stage must not drag boundaries off the change).
4. Labels: average-linkage clustering of the sections' mean features; sections closer than
   ``LABEL_RATIO`` × the median distance between sections share a letter (A, B, C, ... in order
   of first appearance). Memory: each pair of sections once (~165 candidates an hour).
   Neighbours that share a letter are merged: the novelty peak between them was a change
   within one part.
5. Each section gets its own loudness (power mean), tempo (median beat period inside it),
   key/mode (key-profile correlation of its chroma) and time signature with confidences.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import all_finite, release, scratch
from featherbeat.analysis.profile import Curves, Rhythm, Section
from featherbeat.analysis.spans import (
    LOUDNESS_FLOOR_DB,
    block_means,
    db_to_power,
    frame_of,
    frame_rows,
    np_median,
    np_percentile,
    power_to_db,
    sorted_unique,
    span_means,
)
from featherbeat.analysis.structure.key import estimate_key

GRID_SECONDS = 0.5
HALF_WINDOWS = (8, 16)  # units (beats): 2 and 4 bars of 4/4
MIN_SECTION_SECONDS = 6.0
SECONDS_PER_SECTION = 15.0
PEAK_RADIUS = 4  # units: a novelty peak is the maximum of its ±4 neighbours
LABEL_RATIO = 0.6
Z_CLIP = 3.0
SNAP_RATIO = 0.7  # a downbeat takes the boundary if its novelty is >= 0.7 x the peak's
SNAPPED_MIN_RATIO = 0.75  # after snapping to downbeats, sections keep >= 0.75 x the minimum
NOVELTY_SCALE_PERCENTILE = 99.0  # novelty at this percentile reads as confidence 1
# Unit-feature rows written or read between two releases of a long track's spilled features
# (``_store.scratch``): 4096 rows of 25 float64 are 0.8 MB resident at a time.
_UNIT_ROWS = 4096


def unit_edges(rhythm: Rhythm, rate: float, n: int) -> np.ndarray:
    """Frame indices [0, ..., n] bounding the analysis units: the beats, with gaps of more than
    two beat periods (a beatless intro, a break, the tail) filled at the median beat period,
    so every unit spans about one beat; a 0.5 s grid when the track has no usable beats."""
    beats = np.asarray(rhythm.beats, dtype=np.float64).reshape(-1)
    duration = n / rate
    beats = beats[(beats > 0) & (beats < duration)]
    if beats.size >= 8:
        period = float(np_median(np.diff(beats)))
        points = np.concatenate([[0.0], beats, [duration]])
        gaps = np.flatnonzero(np.diff(points) > 2 * period)
        fill = [np.arange(points[g] + period, points[g + 1] - period / 2, period) for g in gaps]
        times = np.sort(np.concatenate([beats, *fill]))
    else:
        times = np.arange(0.0, duration, GRID_SECONDS)
    return sorted_unique(np.concatenate([[0], frame_of(times, rate, n), [n]]))


def unit_features(curves: Curves, edges: np.ndarray) -> np.ndarray:
    """(units, 25) z-scored, group-weighted features: chroma(12), timbre(12), loudness(1)."""
    n = int(edges[-1])
    a, b = edges[:-1], edges[1:]
    # Each group is z-scored and written into the result before the next one is computed (the
    # same operations, so the same values): the chroma's and the timbre's unit means were held
    # together with the result and a temporary (six hours of beats: 3.5 MB each, 7 the result).
    # The result itself goes to a temp file past 1 MB (~40 minutes of beats): it is written and
    # read a stretch of rows at a time, so twelve hours (17 MB) are never resident together.
    out = scratch((a.size, 25))
    chroma = block_means(frame_rows(curves.chroma, n), a, n)
    # Magnitude, not power: with peaks kept only 30 dB below the loudest (features/chroma.py) a
    # weak pitch class is near zero in one unit and small in the next, and its z-score would
    # jump; the square root keeps those differences in proportion (docs/benchmarks/key.md).
    np.sqrt(chroma, out=chroma)
    chroma /= np.maximum(chroma.sum(axis=1, keepdims=True), 1e-12)
    _weighted(chroma, out[:, :12])
    del chroma
    _weighted(block_means(frame_rows(curves.timbre, n), a, n), out[:, 12:24])
    loudness = np.asarray(curves.loudness)[:n]
    # Summed in float64 as it is read: a float64 copy would be 7.5 MB at six hours, and the
    # stored float32 values cast exactly, so the means are the same.
    if not all_finite(loudness):
        loudness = np.nan_to_num(loudness.astype(np.float64))
    _weighted(span_means(loudness, a, b)[:, None], out[:, 24:])
    return out


def _weighted(group: np.ndarray, out: np.ndarray) -> None:
    """``group`` z-scored (in place) and divided by the square root of its width into ``out``:
    each group counts alike whatever its number of dimensions. Written ``_UNIT_ROWS`` rows at a
    time (the same quotients), releasing a spilled ``out``'s pages after each stretch."""
    z = _zscore(group, overwrite=True)
    scale = np.sqrt(group.shape[1])
    for r in range(0, z.shape[0], _UNIT_ROWS):
        np.divide(z[r : r + _UNIT_ROWS], scale, out=out[r : r + _UNIT_ROWS])
        release(out)


def _zscore(x: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """z-scores clipped at ±``Z_CLIP``: a silent gap or a final fade (chroma and timbre of
    near-silence are extreme) must not outweigh every change of part in the music.
    ``overwrite``: computed in ``x`` itself (float64), with the same values."""
    std = x.std(axis=0)
    mean = x.mean(axis=0)
    y = x if overwrite else x.astype(np.float64)
    y -= mean
    y /= np.where(std > 1e-9, std, 1.0)
    return np.clip(y, -Z_CLIP, Z_CLIP, out=y)


def novelty(
    features: np.ndarray, half_windows: tuple[int, ...] = HALF_WINDOWS, block: int = 4096
) -> np.ndarray:
    """Novelty at each unit boundary i (start of unit i): distance of the means before/after.

    A boundary with less than half a window on either side scores 0: edges are not changes.
    Computed ``block`` boundaries at a time, each from the stretch of the cumulative sum
    c (c[j] = features[0] + ... + features[j - 1], summed in order) its windows reach: the
    stretch is summed on from the c value at its start, kept from the block before, so every
    c value is the same to the last bit as from one cumulative sum of all units, but only a
    block's stretch is held (six hours of beats: the whole sum and its temporaries were
    three (units, 25) float64 arrays, ~7 MB each).
    """
    m, width = features.shape
    out = np.zeros(m)
    reach = max(half_windows, default=0)
    step = max(1, int(block))
    c_lo = np.zeros(width)  # c[lo] of the next stretch
    for b0 in range(0, m, step):
        b1 = min(m, b0 + step)
        lo, hi = max(b0 - reach, 0), min(b1 + reach, m)  # this stretch holds c[lo : hi + 1]
        cs = np.empty((hi - lo + 1, width))
        cs[0] = c_lo
        if hi > lo:
            part = np.array(features[lo:hi], dtype=np.float64)
            release(features)  # spilled unit features: copied, so their pages can go
            if lo:
                part[0] += c_lo  # c[lo + 1] = c[lo] + features[lo]: the same addition
            np.cumsum(part, axis=0, out=cs[1:])
        i = np.arange(b0, b1)
        for h in half_windows:
            a, z = np.maximum(i - h, 0), np.minimum(i + h, m)
            ok = (i - a >= max(1, h // 2)) & (z - i >= max(1, h // 2))
            before = (cs[i - lo] - cs[a - lo]) / np.maximum(i - a, 1)[:, None]
            after = (cs[z - lo] - cs[i - lo]) / np.maximum(z - i, 1)[:, None]
            out[i] += np.where(ok, ((after - before) ** 2).sum(axis=1), 0.0)
        c_lo = cs[max(b1 - reach, 0) - lo].copy()
    return out


def pick_boundaries(nov: np.ndarray, times: np.ndarray, duration: float) -> np.ndarray:
    """Indices of the novelty peaks chosen as section starts (sorted), see the module doc."""
    if nov.size == 0 or not np.any(nov > 0):
        return np.zeros(0, dtype=np.int64)
    padded = np.pad(nov, PEAK_RADIUS, mode="constant")
    window = np.lib.stride_tricks.sliding_window_view(padded, 2 * PEAK_RADIUS + 1)
    # Threshold: the mean of the curve with its top 1 % clipped, so one huge change (the
    # music stopping) does not hide the ordinary changes of part.
    ceiling = float(np_percentile(nov, NOVELTY_SCALE_PERCENTILE))
    peaks = np.flatnonzero((nov >= window.max(axis=1)) & (nov > np.minimum(nov, ceiling).mean()))
    budget = max(0, int(duration / SECONDS_PER_SECTION))
    chosen: list[int] = []
    for p in peaks[np.argsort(-nov[peaks], kind="stable")]:
        if len(chosen) >= budget:
            break
        t = times[p]
        if t < MIN_SECTION_SECONDS or duration - t < MIN_SECTION_SECONDS:
            continue
        if all(abs(t - times[c]) >= MIN_SECTION_SECONDS for c in chosen):
            chosen.append(int(p))
    return np.array(sorted(chosen), dtype=np.int64)


def _spaced(starts: np.ndarray, min_gap: float, duration: float) -> np.ndarray:
    """Indices of sorted ``starts`` kept so no section is shorter than ``min_gap`` (snapping to
    downbeats can move two boundaries up to a bar closer); the first start is always kept."""
    kept = [0]
    for i in range(1, starts.size):
        if starts[i] - starts[kept[-1]] >= min_gap and duration - starts[i] >= min_gap:
            kept.append(i)
    return np.array(kept, dtype=np.int64)


def snap_to_downbeats(
    chosen: np.ndarray, nov: np.ndarray, unit_times: np.ndarray, rhythm: Rhythm
) -> np.ndarray:
    """Start times of the ``chosen`` units, each moved to the nearest downbeat within half a
    bar when the novelty there is at least ``SNAP_RATIO`` × the peak's.

    Why the novelty check: with right downbeats the change is at (or a beat from) a downbeat,
    so its novelty is nearly the peak's; with a wrong bar phase the downbeat sits mid-phrase,
    its novelty is much lower, and moving the boundary there would only make it worse.
    """
    starts = unit_times[chosen]
    downbeats = rhythm.downbeats.astype(np.float64)
    if starts.size == 0 or unit_times.size < 2 or downbeats.size < 2:
        return starts
    bar = float(np_median(np.diff(downbeats)))
    j = np.clip(np.searchsorted(downbeats, starts), 1, downbeats.size - 1)
    before, after = downbeats[j - 1], downbeats[j]
    nearest = np.where(starts - before <= after - starts, before, after)
    k = np.clip(np.searchsorted(unit_times, nearest), 1, unit_times.size - 1)
    unit = np.where(nearest - unit_times[k - 1] <= unit_times[k] - nearest, k - 1, k)
    ok = (np.abs(nearest - starts) <= bar / 2) & (nov[unit] >= SNAP_RATIO * nov[chosen])
    return np.where(ok, nearest, starts)


def cluster_labels(means: np.ndarray) -> list[str]:
    """Letters for sections from their mean features: alike sections share a letter.

    Memory: the pairs' distances once, k(k - 1)/2 floats in condensed form (pair (i, j), i < j,
    at ``first[i] + j``), and O(k) more. The square matrix held every distance twice (32 MB
    for the ~2000 sections of twelve hours, 16 condensed); the (k, k, features) broadcast
    before it 25 floats per pair. Merged clusters are masked with inf rather than deleted.

    The labels are those of the square matrix to the last bit: each distance and each
    average-linkage update is the same arithmetic on the same values, and the matrix is
    symmetric with an inf diagonal, so its first minimum in row-major order (np.argmin) is
    always in the upper triangle, the same pair as the condensed array's first minimum.
    """
    k = means.shape[0]
    if k == 0:
        return []

    def row(i: int) -> np.ndarray:
        return np.sqrt(((means - means[i]) ** 2).sum(axis=1))

    cols = np.arange(k, dtype=np.int64)
    first = cols * k - cols * (cols + 1) // 2 - cols - 1  # pair (i, j), i < j: first[i] + j
    row_start = first + cols + 1  # where row i's pairs begin (k(k - 1)/2 for the last, empty)
    cond = np.empty(k * (k - 1) // 2)

    def fill() -> None:
        for i in range(k - 1):
            cond[row_start[i] : row_start[i + 1]] = row(i)[i + 1 :]

    # The median partitions the pairs in place; they are then computed again by the same
    # arithmetic rather than copied first (a second array their size).
    fill()
    threshold = LABEL_RATIO * float(np_median(cond, overwrite_input=True)) if cond.size else 0.0
    fill()

    def pairs(i: int, others: np.ndarray) -> np.ndarray:
        """Condensed positions of the pairs (i, x) for x in ``others`` (none equal to i)."""
        return np.where(others < i, first[others] + i, first[i] + others)

    clusters: list[list[int] | None] = [[i] for i in range(k)]
    for _ in range(k - 1):
        p = int(np.argmin(cond))
        i = int(np.searchsorted(row_start, p, side="right")) - 1
        j = p - int(first[i])
        if cond[p] > threshold:
            break
        # Average linkage: the merged cluster's distance is the size-weighted mean.
        a, b = clusters[i], clusters[j]
        assert a is not None and b is not None
        ni, nj = len(a), len(b)
        others = cols[(cols != i) & (cols != j)]
        at_i = pairs(i, others)
        cond[at_i] = (cond[at_i] * ni + cond[pairs(j, others)] * nj) / (ni + nj)
        cond[pairs(j, cols[cols != j])] = np.inf  # j is gone: never the minimum again
        a += b
        clusters[j] = None
    owner = np.empty(k, dtype=np.int64)
    for c, members in enumerate(m for m in clusters if m is not None):
        owner[members] = c
    letters: dict[int, str] = {}
    for c in owner.tolist():
        letters.setdefault(c, _letter(len(letters)))
    return [letters[c] for c in owner.tolist()]


def _letter(i: int) -> str:
    """0 -> "A", 25 -> "Z", 26 -> "AA", ... (as spreadsheet columns)."""
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(ord("A") + r) + s
    return s


def _section(
    loudness_db: np.ndarray,
    chroma: np.ndarray,
    rhythm: Rhythm,
    span: tuple[int, int],
    t0: float,
    t1: float,
    confidence: float,
) -> Section:
    a, b = span
    loud = np.nan_to_num(np.asarray(loudness_db[a:b], dtype=np.float64), nan=LOUDNESS_FLOOR_DB)
    release(loudness_db)
    loudness = float(power_to_db(db_to_power(loud).mean())) if loud.size else LOUDNESS_FLOOR_DB
    beats = np.asarray(rhythm.beats, dtype=np.float64).reshape(-1)
    inside = (beats >= t0) & (beats < t1)
    ibi = np.diff(beats[inside])
    tempo, tempo_conf = float(rhythm.tempo), float(rhythm.tempo_confidence)
    typical = float(np_median(ibi)) if ibi.size >= 3 else 0.0
    if typical > 0:
        tempo = 60.0 / typical
        steadiness = 1.0 - min(1.0, 4.0 * float(ibi.std() / ibi.mean()))
        tempo_conf *= steadiness
    tone = estimate_key(chroma[a:b])
    release(chroma)  # a long track's chroma is mapped from a temp file: read, then drop
    ts = int(rhythm.time_signature)
    ts_conf = float(rhythm.time_signature_confidence)
    down = np.flatnonzero(inside & (rhythm.beat_position == 1))
    if down.size >= 2:
        ts_conf *= float(np.mean(np.diff(down) == ts))
    return Section(
        start=t0,
        duration=t1 - t0,
        confidence=float(np.clip(confidence, 0.0, 1.0)),
        loudness=loudness,
        tempo=tempo,
        tempo_confidence=float(np.clip(tempo_conf, 0.0, 1.0)),
        key=tone.key,
        key_confidence=tone.key_confidence,
        mode=tone.mode,
        mode_confidence=tone.mode_confidence,
        time_signature=ts,
        time_signature_confidence=float(np.clip(ts_conf, 0.0, 1.0)),
    )


def find_sections(curves: Curves, rhythm: Rhythm) -> list[Section]:
    """Sections covering the whole track, in order, each with a ``label`` letter; boundaries
    and per-section keys come from the frame curves, tempo and bars from ``rhythm``."""
    rate = float(curves.frame_rate)
    n = int(np.asarray(curves.loudness).size)
    if n == 0 or rate <= 0:
        return []
    duration = n / rate
    edges = unit_edges(rhythm, rate, n)
    feats = unit_features(curves, edges)
    nov = novelty(feats)
    unit_times = edges[:-1] / rate
    chosen = pick_boundaries(nov, unit_times, duration)
    starts = snap_to_downbeats(chosen, nov, unit_times, rhythm)
    scale = float(np_percentile(nov, NOVELTY_SCALE_PERCENTILE)) if nov.size else 0.0
    conf = np.concatenate([[1.0], np.clip(nov[chosen] / (scale if scale > 0 else 1.0), 0.0, 1.0)])
    starts, first = np.unique(np.concatenate([[0.0], starts]), return_index=True)
    conf = conf[first]
    spaced = _spaced(starts, MIN_SECTION_SECONDS * SNAPPED_MIN_RATIO, duration)
    starts, conf = starts[spaced], conf[spaced]
    frames = frame_of(starts, rate, n)
    unit_of = np.clip(np.searchsorted(edges, frames, side="right") - 1, 0, feats.shape[0] - 1)
    unit_end = np.append(unit_of[1:], feats.shape[0])
    means = np.empty((unit_of.size, feats.shape[1]))
    read = 0  # unit rows read since the spilled features' pages were last released
    for at, (u, v) in enumerate(zip(unit_of.tolist(), unit_end.tolist(), strict=True)):
        means[at] = feats[u : max(v, u + 1)].mean(axis=0)
        read += max(v, u + 1) - u
        if read >= _UNIT_ROWS:
            release(feats)
            read = 0
    del feats, nov  # summarised in ``means``; the labels' matrix needs the room
    labels = cluster_labels(means)
    # A boundary between two sections that sound alike is not a change of part: merge them.
    keep = [i for i in range(len(labels)) if i == 0 or labels[i] != labels[i - 1]]
    starts, conf, frames = starts[keep], conf[keep], frames[keep]
    ends = np.append(starts[1:], duration)
    frame_ends = np.append(frames[1:], n)
    # The stored float32 loudness: each section casts and cleans only its own frames.
    loud = np.asarray(curves.loudness).reshape(-1)
    chroma = frame_rows(curves.chroma, n)
    sections = [
        _section(loud, chroma, rhythm, (int(a), int(max(b, a + 1))), float(t0), float(t1), float(c))
        for a, b, t0, t1, c in zip(frames, frame_ends, starts, ends, conf, strict=True)
    ]
    for section, i in zip(sections, keep, strict=True):
        section.label = labels[i]
    return sections
