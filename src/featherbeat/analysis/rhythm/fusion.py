"""The fused tracker's cues: the learned model's outputs read into the DSP tracker's decisions.

The DSP tracker (onset curve, comb, beat-period Viterbi, accent sum) places beats precisely on
onsets; the learned model (rhythm/learned.py) has heard which onsets are beats and which
pulse level a piece is counted in. ``--rhythm fused`` keeps the DSP tracker's structure and adds
three cues, each with one weight (docs/rhythm.md §8 says how they were chosen):

  tempo    the tempo head's log-posterior, ``HEAD_WEIGHT`` times, added to the listeners' tempo
           prior of the local tempo path (rhythm/tempo.py): it shifts the metrical level where
           the comb is undecided;
  beats    the beat activation's log-odds, ``BEAT_WEIGHT`` times, added to the onset curve's
           beat log-odds frame by frame before the beat Viterbi (rhythm/beats.py);
  bars     the downbeat activation's log-odds at each beat, z-scored like the other accents,
           ``DOWNBEAT_WEIGHT`` times, added to the downbeat accent sum (rhythm/meter.py).

Everything here is O(beats) or works on chunks of frames in place: no new per-frame array.
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.features._store import release
from featherbeat.analysis.rhythm import learned
from featherbeat.analysis.rhythm.beats import BeatLogOdds
from featherbeat.analysis.spans import np_percentile, percentile

# The grid point best on all of ../shared/eval/dev for the packaged weights
# (bench/fusion_weights.py). With the stage-3 weights its leave-one-genre-out estimate is level
# with or ahead of the DSP tracker on every dev metric but AMLt (-0.005) and it keeps the tempo
# under lossy codecs where DSP does not, so it is the default (docs/rhythm.md section 8,
# docs/benchmarks.md "Learned and fused rhythm").
HEAD_WEIGHT = 0.1
BEAT_WEIGHT = 0.5
DOWNBEAT_WEIGHT = 0.0
HEAD_FLOOR = 1e-3  # posterior floor: a class the head rules out costs at most -log(1e-3) * weight
CHUNK = 1 << 16  # onset frames per in-place step (an hour is 310 000 frames)


def head_log_prior(tempo_logits: np.ndarray, bpms: np.ndarray) -> np.ndarray | None:
    """HEAD_WEIGHT x log(posterior of the tempo head), interpolated on ``bpms``; None if unusable."""
    logits = np.asarray(tempo_logits, dtype=np.float64).reshape(-1)
    bins = learned.bpm_bins()
    if logits.size != bins.size or not np.all(np.isfinite(logits)) or HEAD_WEIGHT == 0:
        return None
    post = np.exp(logits - logits.max())
    post /= post.sum()
    lp = np.interp(np.log(bpms), np.log(bins), np.log(post + HEAD_FLOOR))
    return HEAD_WEIGHT * (lp - lp.max())


def _log_odds(p: np.ndarray, floor: float = 0.01) -> np.ndarray:
    np.clip(p, 0.0, 1.0, out=p)
    return np.log(p + floor) - np.log(1.0 - p + floor)


def activation_scale(beat_act: np.ndarray) -> float:
    """The beat activation's 99th percentile (floor 0.1), as the learned decoder scales it: on
    real recordings the network's peaks are lower than on its synthetic corpus."""
    return max(float(np_percentile(beat_act, 99)), 0.1) if beat_act.size else 1.0


class FusedLogOdds(BeatLogOdds):
    """:class:`BeatLogOdds` of ``odf`` plus BEAT_WEIGHT x log-odds of the (rescaled) beat
    activation, a block of frames at a time as the Viterbi reaches them (every term is per
    frame), without the whole log-odds curve or a float64 copy of the activation (six hours:
    15 and 7.5 MB). ``beat_act``: the finite float32 beat activation (1-D).

    Onset frame t is centred at t / onset_rate on the curve's time base, where an onset peaks
    ``lag_s`` before the sound starts; the model marks the start itself, so it is read at
    t / onset_rate + lag_s, interpolated linearly between model frames (43 / s).
    """

    def __init__(
        self,
        odf: np.ndarray,
        beat_act: np.ndarray,
        onset_rate: float,
        act_rate: float,
        act_offset: float,
        lag_s: float,
    ) -> None:
        super().__init__(odf)
        self._act = np.asarray(beat_act).reshape(-1)
        self._on = BEAT_WEIGHT != 0 and self._act.size >= 2 and act_rate > 0
        # activation_scale's np.percentile of the float64 copy, from the float32 values as they
        # are (spans.percentile: the same value, checked against numpy in the tests).
        scale = max(percentile(self._act, 99), 0.1) if self._act.dtype == np.float32 else None
        self._scale = activation_scale(self._act) if scale is None else scale
        self._rates = (float(onset_rate), float(act_rate), float(lag_s), act_offset * act_rate)

    def block(self, lo: int, hi: int) -> np.ndarray:
        w = super().block(lo, hi)
        if not self._on or hi <= lo:
            return w
        onset_rate, act_rate, lag_s, pos_model = self._rates
        act = self._act
        for a in range(lo, hi, CHUNK):
            b = min(hi, a + CHUNK)
            t = (np.arange(a, b) / onset_rate + lag_s) * act_rate - pos_model
            # np.interp over the model frames around this stretch only: the same intervals, so
            # the same values (outside the activation it holds the end values, as before).
            k0 = min(max(0, int(np.floor(t[0])) - 1), act.size - 2)
            k1 = max(min(act.size, int(np.ceil(t[-1])) + 2), k0 + 2)
            fp = act[k0:k1].astype(np.float64)
            p = np.interp(t, np.arange(k0, k1), fp) / self._scale
            w[a - lo : b - lo] += BEAT_WEIGHT * _log_odds(p)
        release(act)  # a long track's activations are mapped from a temp file: read, then drop
        return w


def downbeat_cue(
    down_act: np.ndarray, act_rate: float, act_offset: float, beat_times: np.ndarray
) -> np.ndarray:
    """Log-odds of the downbeat activation at each beat (``beat_times``: when the sound
    starts), the maximum over +-1 model frame (23 ms) so a beat between frames is not missed."""
    act = np.asarray(down_act, dtype=np.float64).reshape(-1)
    if act.size == 0 or act_rate <= 0 or beat_times.size == 0:
        return np.zeros(beat_times.size)
    idx = np.round((beat_times - act_offset) * act_rate).astype(np.int64)
    near = np.clip(idx[:, None] + np.arange(-1, 2)[None, :], 0, act.size - 1)
    return _log_odds(act[near].max(axis=1))
