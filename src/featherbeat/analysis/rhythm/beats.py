"""Beat tracking: Viterbi decoding of a beat-period hidden Markov model (Krebs, Böck & Widmer 2015).

The model. A hidden state is (position inside the current beat, beat period in frames). The
position advances one frame per frame; when it wraps, a beat happens and the period may change
to a neighbouring one with probability exp(-lambda * |p'/p - 1|) (tempo drifts smoothly, a
steady pulse is cheap). Frames in the beat state emit the onset curve's "beat" likelihood,
all others its "no beat" likelihood.

The computation. Since the position is deterministic between beats, the Viterbi recursion
only has to run on beat events: best[t, p] = w[t] + max_p' (best[t - p, p'] + log A[p', p]),
where w[t] = log P(onset | beat) - log P(onset | no beat) (every frame is one or the other, so
the non-beat terms add up to a constant). Because t - p < t - p_min, a whole block of p_min
frames is computed in one vectorised numpy step: ~400 steps for 3 minutes instead of a Python
loop over 15 000 frames x thousands of states. Only the last p_max rows of scores are needed
(a ring buffer); back-pointers (int8) are recomputed segment by segment from checkpoints of
that buffer, so memory does not grow with frames x periods (see viterbi_beats).
"""

from __future__ import annotations

import tempfile
from typing import IO

import numpy as np

from featherbeat.analysis.features._store import take
from featherbeat.analysis.rhythm.novelty import smooth_span

TRANSITION_LAMBDA = 100.0  # Krebs et al. 2015 use 100: tempo changes cost exp(-100 * |ratio - 1|)
OBSERVATION_WEIGHT = 1.0  # scale of the onset log-likelihood against the transition cost
TEMPO_SPREAD = 1.25  # periods allowed around the local tempo: [P / 1.25, P * 1.25]
NEIGHBOURS = 3  # a beat may change the period by at most this many states
QUANTISATION_FRAMES = 0.75  # free part of a period change, in frames (see viterbi_beats)


def period_states(period: float, spread: float = TEMPO_SPREAD) -> np.ndarray:
    """Integer beat periods (frames) within a factor ``spread`` of ``period``."""
    lo = max(2, int(np.floor(period / spread)))
    hi = max(lo + 1, int(np.ceil(period * spread)))
    return np.arange(lo, hi + 1)


class BeatLogOdds:
    """w[t]: log-odds that frame t is a beat, from a conditioned (unit-RMS) onset curve,
    computed a block of frames at a time (:meth:`block`) as the Viterbi reaches them.

    A frame with onset strength x is scored as log(x + floor): beats prefer strong onsets and
    pay for landing on silence, without any single onset dominating (log compression).
    Never held whole: six hours of frames are 15 MB per float64 curve, and the conditioned
    curve is held already. Values as :func:`beat_log_odds`, to the last bit.
    """

    def __init__(self, odf: np.ndarray) -> None:
        self._odf = odf
        self.size = int(odf.size)

    def block(self, lo: int, hi: int) -> np.ndarray:
        # 3-frame smoothing: a beat between two frames scores on both (dev beat F +0.010).
        w = smooth_span(self._odf, 3, lo, hi)
        w += 0.1
        np.log(w, out=w)
        w *= OBSERVATION_WEIGHT
        return w


def beat_log_odds(odf: np.ndarray) -> np.ndarray:
    """:class:`BeatLogOdds` of the whole curve at once."""
    return BeatLogOdds(odf).block(0, odf.size)


SEGMENT_FRAMES = 8192  # back-pointers are held for one segment (~95 s) at a time ...
# ... unless the whole track's fit in this many bytes (a song: 3 minutes of 60 periods are
# 0.9 MB): then there is one segment and no recomputed forward pass (0.06 -> 0.05 CPU-s of
# rhythm per 3 minutes); long recordings are checkpointed as before.
WHOLE_TRACK_BYTES = 2 << 20


def viterbi_beats(
    w: np.ndarray | BeatLogOdds,
    periods: np.ndarray,
    lam: float = TRANSITION_LAMBDA,
    *,
    allowed: np.ndarray | None = None,
    centres: np.ndarray | None = None,
) -> np.ndarray:
    """Most likely beat frames given per-frame beat log-odds ``w`` and the ``periods`` (states).

    ``allowed`` (windows x states, bool) with the windows' ``centres`` (frames) restricts the
    periods a beat may have near each window: the local tempo range of a medley or a mix.

    Exact Viterbi in bounded memory by checkpointing: the forward pass keeps only the score
    ring buffer, copied at the start of every segment of SEGMENT_FRAMES; the backtrace
    recomputes one segment's back-pointers at a time from its checkpoint (the last segment's
    are kept from the forward pass). Up to twice the forward work, but memory no longer grows
    with frames x states (an hour-long mix spanning 60..180 BPM would otherwise hold ~33 MB of
    back-pointers).
    """
    n = w.size
    # ``w`` as an array, or computed a segment at a time (BeatLogOdds): the same values.
    w_block = w.block if isinstance(w, BeatLogOdds) else lambda lo, hi: w[lo:hi]
    periods = np.asarray(periods, dtype=np.int64)
    n_states = periods.size
    if n == 0 or n_states == 0:
        return np.zeros(0, dtype=np.int64)
    p_min, p_max = int(periods.min()), int(periods.max())
    # Neighbour table: state j may come from states j-K..j+K; laid out (K, S) so that the
    # reductions over K run over contiguous (block x state) planes.
    offs = np.arange(-NEIGHBOURS, NEIGHBOURS + 1)
    nb = np.clip(np.arange(n_states)[None, :] + offs[:, None], 0, n_states - 1)
    valid = (np.arange(n_states)[None, :] + offs[:, None] >= 0) & (
        np.arange(n_states)[None, :] + offs[:, None] < n_states
    )
    # Most of a one-frame period change is the integer grid, not a tempo change: a steady beat
    # of 42.5 frames must alternate 42 and 43. At full price (lam / 43 = 2.3 nats a switch)
    # the path stayed on one period and drifted up to a frame off the onsets before snapping
    # back (click tracks: beat error SD 5.3 ms). With QUANTISATION_FRAMES = 0.75 of a frame
    # free it costs 0.6 nats (SD 2.2 ms over 70..180 BPM). Not 1: holding a tempo must stay
    # strictly cheaper than changing it, or nothing but the onsets would hold it.
    step = np.maximum(np.abs(periods[None, :] - periods[nb]) - QUANTISATION_FRAMES, 0.0)
    log_a = np.where(valid, -lam * step / periods[nb], -np.inf)
    ring = p_max + p_min + 1
    score = np.full((ring, n_states), -np.inf)
    bounds = None
    if allowed is not None and centres is not None and centres.size:
        # Window nearest to each frame: midpoints between centres as the boundaries, looked up
        # per block of frames (for the whole track at once that was three arrays its length,
        # 37 MB at six hours).
        bounds = (centres[1:] + centres[:-1]) / 2.0
    states = np.arange(n_states)[None, :]
    bp_type = np.int8 if n_states < 128 else np.int16
    seg_len = max(1, SEGMENT_FRAMES // p_min) * p_min  # whole blocks per segment
    if n * n_states * np.dtype(bp_type).itemsize <= WHOLE_TRACK_BYTES:
        seg_len = -(-n // p_min) * p_min  # one segment: the backtrace reads the forward's
    end = [-np.inf, -1, -1]  # best final score, frame, state

    # The loop runs ~n / p_min times with a dozen small numpy calls each, so its cost is the
    # calls: one flat gather instead of a two-array fancy index, and the masks for the first
    # period (``start``) and the last (``tail``) built only in the blocks that reach them.
    flat_score = score.reshape(-1)  # a view
    nb_k = nb[:, None, :]
    log_a_k = log_a[:, None, :]

    def forward(lo: int, hi: int, back: np.ndarray | None, track_end: bool) -> None:
        """Advance the scores over frames lo..hi-1; fill ``back`` (frame - lo, state) if
        given; if ``track_end``, keep the best final beat in ``end``."""
        w_seg = w_block(lo, hi)
        for t0 in range(lo, hi, p_min):
            t1 = min(t0 + p_min, hi)
            t = np.arange(t0, t1)
            prev_t = t[:, None] - periods[None, :]  # (B, S)
            cand = flat_score[(prev_t % ring * n_states)[None, :, :] + nb_k] + log_a_k
            best_prev = cand.max(axis=0)
            # First beat: may come at any phase (only frames of the first period can have one).
            start = prev_t < 0 if t0 < p_max else None
            new = (best_prev if start is None else np.where(start, 0.0, best_prev)) + w_seg[
                t0 - lo : t1 - lo, None
            ]
            if bounds is not None and allowed is not None:
                new = np.where(allowed[np.searchsorted(bounds, t)], new, -np.inf)
            r0 = t0 % ring
            if r0 + (t1 - t0) <= ring:
                score[r0 : r0 + (t1 - t0)] = new
            else:
                score[t % ring] = new
            if back is not None:
                src = nb[cand.argmax(axis=0), states]
                lost = ~np.isfinite(best_prev) if start is None else start | ~np.isfinite(best_prev)
                back[t0 - lo : t1 - lo] = np.where(lost, -1, src)
            if track_end and t1 - 1 >= n - p_max:
                # a final beat must fall within one period of the end
                tail = np.where(t[:, None] >= n - periods[None, :], new, -np.inf)
                k = int(np.argmax(tail))
                if tail.flat[k] > end[0]:
                    end[:] = [float(tail.flat[k]), int(t[k // n_states]), k % n_states]

    n_segments = -(-n // seg_len)
    checkpoints = _Checkpoints(score.shape, n_segments)
    # The last segment's back-pointers are kept from the forward pass (the backtrace starts
    # there), so it is not recomputed: a quarter of the work for 3 minutes, half below ~95 s.
    last = (n_segments - 1) * seg_len
    last_back = np.full((n - last, n_states), -1, dtype=bp_type)
    for lo in range(0, n, seg_len):
        checkpoints.append(score)
        forward(lo, min(n, lo + seg_len), last_back if lo == last else None, True)

    frames: list[int] = []
    t, j = int(end[1]), int(end[2])
    seg, back = -1, np.zeros((0, n_states), dtype=bp_type)
    while t >= 0 and j >= 0:
        if t // seg_len != seg:
            seg = t // seg_len
            lo = seg * seg_len
            if lo == last:
                back = last_back
            else:
                last_back = np.zeros((0, n_states), dtype=bp_type)  # used: let it go
                checkpoints.load(seg, score)
                back = np.full((min(n, lo + seg_len) - lo, n_states), -1, dtype=bp_type)
                forward(lo, lo + back.shape[0], back, False)
        frames.append(t)
        j_prev = int(back[t - seg * seg_len, j])
        t -= int(periods[j])
        j = j_prev
    checkpoints.close()
    return np.array(frames[::-1], dtype=np.int64)


class _Checkpoints:
    """The score ring buffer at the start of every segment, in memory or, when they add up to
    more than ``SPILL_BYTES``, in an unlinked temp file (the same float64 bits either way).

    They grow with the length: ~2 MB an hour for a mix spanning a wide tempo range, 12 MB at
    six hours, all held through the backtrace.
    """

    SPILL_BYTES = 1 << 20

    def __init__(self, shape: tuple[int, ...], count: int) -> None:
        self._shape = shape
        self._bytes = int(np.prod(shape)) * 8
        self._held: list[np.ndarray] = []
        self._file: IO[bytes] | None = None
        if self._bytes * count > self.SPILL_BYTES:
            self._file = tempfile.TemporaryFile(prefix="featherbeat-viterbi-")  # noqa: SIM115
        self._count = 0

    def append(self, score: np.ndarray) -> None:
        if self._file is None:
            self._held.append(score.copy())
        else:
            self._file.write(np.ascontiguousarray(score, dtype=np.float64).data)
        self._count += 1

    def load(self, k: int, into: np.ndarray) -> None:
        if self._file is None:
            into[:] = self._held[k]
            return
        self._file.seek(k * self._bytes)
        into[:] = np.frombuffer(self._file.read(self._bytes), dtype=np.float64).reshape(self._shape)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def refine(frames: np.ndarray, odf: np.ndarray) -> np.ndarray:
    """Sub-frame beat times: parabolic interpolation of the onset peak near each beat frame."""
    if frames.size == 0:
        return frames.astype(np.float64)
    n = odf.size
    out = frames.astype(np.float64)
    i = np.clip(frames, 1, n - 2)
    # take(): a long track's working curve is in a temp file (rhythm.track), given back as read.
    a, b, c = take(odf, i - 1), take(odf, i), take(odf, i + 1)
    den = a - 2 * b + c
    shift = np.where(
        (den < 0) & (b >= a) & (b >= c), 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0
    )
    out = np.where((frames >= 1) & (frames <= n - 2), i + np.clip(shift, -0.5, 0.5), out)
    return out


def track_local(
    w: np.ndarray | BeatLogOdds, centres: np.ndarray, local_period: np.ndarray
) -> np.ndarray:
    """Beat frames with the periods near each window restricted to +-TEMPO_SPREAD of its local
    period (``centres``: window centre frames, ``local_period``: frames per beat there)."""
    lo = np.maximum(2, np.floor(local_period / TEMPO_SPREAD)).astype(np.int64)
    hi = np.ceil(local_period * TEMPO_SPREAD).astype(np.int64)
    periods = np.arange(int(lo.min()), int(hi.max()) + 1)
    allowed = (periods[None, :] >= lo[:, None]) & (periods[None, :] <= hi[:, None])
    if allowed.all():
        return viterbi_beats(w, periods)
    return viterbi_beats(w, periods, allowed=allowed, centres=centres)
