"""Rhythm: tempo, beats, downbeats/bars, meter and tatums from the onset curve.

    track(curves, reduced=False) -> Rhythm

Stages (each a module of pure functions; see docs/rhythm.md):
  novelty.condition  onset curve -> local-mean-removed, unit-RMS detection function
  tempo              windowed autocorrelation + harmonic comb + tempo prior -> global BPM,
                     pulse significance, and a local tempo path (Viterbi over 12 s windows)
  beats              beat-period HMM, Viterbi on beat events (Krebs et al. 2015), restricted
                     to +-25 % of the local tempo path -> beat times
  meter              beat-synchronous accents (chord change, bass-line change, bass onset,
                     minus backbeat onset)
                     -> meter, then a bar-position Viterbi -> downbeats
  tatums             2 or 3 subdivisions per beat
This module adds the pulse test (is there any?) and drops beats in silence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from featherbeat.analysis.features._store import all_finite, release, row_chunks, scratch
from featherbeat.analysis.features.chroma import chroma_peakiness
from featherbeat.analysis.profile import Curves, Rhythm
from featherbeat.analysis.rhythm import beats as _beats
from featherbeat.analysis.rhythm import committee as _committee
from featherbeat.analysis.rhythm import fusion as _fusion
from featherbeat.analysis.rhythm import meter as _meter
from featherbeat.analysis.rhythm import tatums as _tatums
from featherbeat.analysis.rhythm import tempo as _tempo
from featherbeat.analysis.rhythm.novelty import condition
from featherbeat.analysis.spans import moving_mean, np_median, np_percentile

if TYPE_CHECKING:
    from featherbeat.analysis.rhythm.learned import Decoded

# "Is there a pulse at all?" The significance of the autocorrelation at the chosen period (in
# standard errors of an uncorrelated curve) is biased upwards by picking the best of ~100
# periods: noise (white, pink, uniform; 5..60 s; 36 draws) measured up to 3.4, once 4.3. So a
# pulse is either clearly significant, or moderately so *and* the sound is tonal. Tonal = the
# chroma keeps its shape for a second: on the peak-picking chroma (features/chroma.py) a noise
# frame has a few random loud peaks, so single frames look spiky, but averaged over 1 s they
# flatten: white and red noise 5..61 s (8 draws) max/mean <= 1.44; the 52 key-labelled dev
# clips >= 1.63 (median 2.6).
SURE_PULSE = 6.0
WEAK_PULSE = 1.5
MIN_CHROMA_PEAKINESS = 1.6
SILENCE_DB = -50.0  # quieter than this, relative to the track's loud parts, is silence
# The onset curve peaks ~8 ms before the sound starts: with log compression the flux jumps as
# soon as the attack enters the front of the 46 ms window, before it reaches the frame's
# centre. Measured on synthetic clicks, noise bursts, plucked tones and kicks: 7-10 ms early
# (tests/inprocess/test_rhythm.py checks it). Beat and tatum times are given this lag; the features read
# from the curves at the beats keep the curves' own time base.
DETECTION_LAG_S = 0.008
# Weight of the bass-spectrum change in the downbeat accent (chord change 1, onsets +-0.5).
# Chosen on dev by leave-one-genre-out selection from 0 .. 1.5 (0.5 in 11 of 13 folds, 1.5 in
# the other two; docs/benchmarks/accuracy.md row 39).
BASS_CHANGE_WEIGHT = 0.5

__all__ = ["DETECTION_LAG_S", "MIN_CHROMA_PEAKINESS", "chroma_peakiness", "local_tempo", "track"]


def _no_pulse() -> Rhythm:
    return Rhythm(tempo=0.0, tempo_confidence=0.0, time_signature=4, time_signature_confidence=0.0)


def local_tempo(times: np.ndarray, width: int = 9) -> np.ndarray:
    """BPM at each beat: 60 / running median of the surrounding inter-beat intervals."""
    if times.size < 2:
        return np.zeros(times.size)
    ibi = np.diff(times)
    ibi = np.append(ibi, ibi[-1])
    half = width // 2
    pad = np.pad(ibi, half, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, width)
    return 60.0 / np_median(win, axis=1)


def _has_pulse(significance: float, chroma: np.ndarray) -> bool:
    if significance >= SURE_PULSE:
        return True
    return significance >= WEAK_PULSE and chroma_peakiness(chroma) >= MIN_CHROMA_PEAKINESS


def _finite(x: np.ndarray, dtype: type | None = np.float64) -> np.ndarray:
    """NaN and +-Inf -> 0 (a damaged frame must not poison a whole curve); no copy when clean.

    ``dtype=None`` keeps the input's type: an hour of chroma is 7 MB as float32, 15 as float64.
    """
    y: np.ndarray = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    return y if np.all(np.isfinite(y)) else np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)


def _nonnegative(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A float64 copy of ``x`` with NaN/Inf -> 0 and negatives -> 0, made in one buffer (the
    values of ``np.maximum(_finite(x), 0.0)``, without its second full-length array).

    ``x`` is read chunk by chunk (a stored curve is never resident whole); ``out``: a float64
    buffer of x's shape to write into instead of a new one. The caller's ``x`` is never written.
    """
    y = np.empty(np.shape(x), dtype=np.float64) if out is None else out
    # Chunk by chunk, element by element (the same values): ``out`` may be a long track's
    # buffer in a temp file (rhythm.track), whose pages go back after each chunk.
    for a, part in row_chunks(np.asarray(x)):
        chunk = y[a : a + part.shape[0]]
        chunk[...] = part
        np.nan_to_num(chunk, copy=False, nan=0.0, posinf=0.0, neginf=0.0)  # finite: unchanged
        np.maximum(chunk, 0.0, out=chunk)
        release(y)
    return y


def _cleaned(values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``_finite(values, None)[at]``: the stored values at ``at``, NaN/Inf -> 0, same dtype."""
    out = np.empty(at.shape, dtype=values.dtype)
    flat_at, flat_out = at.reshape(-1), out.reshape(-1)
    step = 1 << 16
    for i in range(0, flat_at.size, step):
        flat_out[i : i + step] = values[flat_at[i : i + step]]
        release(values)
    if not np.all(np.isfinite(out)):
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out


def _active(curves: Curves, rate: float, frames: np.ndarray) -> np.ndarray:
    """For each beat frame: is something playing? The HMM keeps its pulse through silences (it
    must place a beat every period), so beats in a silent intro, outro or gap are removed.

    From the RMS energy curve when it covers the track (sustained notes count as playing),
    within +-0.25 s; else from the onset curve's 2-second activity.
    """
    energy = np.asarray(curves.energy).reshape(-1)
    n_onset = np.asarray(curves.onset).size
    covers = curves.frame_rate > 0 and energy.size / curves.frame_rate >= 0.9 * n_onset / rate
    ref = 0.0
    if energy.size:
        # np.percentile of the cleaned curve, on a copy numpy may partition in place (it
        # would make that copy itself); the curve is read chunk by chunk.
        copy = np.empty(energy.size, dtype=energy.dtype)
        for a, part in row_chunks(energy):
            copy[a : a + part.size] = part
        if not np.all(np.isfinite(copy)):
            np.nan_to_num(copy, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        ref = float(np_percentile(copy, 95, overwrite_input=True))
        del copy
    if covers and ref > 0.0:
        # Something sounds within +-0.25 s of the beat (so a beat right at a note's start is
        # kept): the frames around each beat are read, not a dilated mask of the whole track.
        k = max(1, int(round(0.25 * curves.frame_rate)))
        idx = np.round(frames / rate * curves.frame_rate).astype(np.int64)
        idx = np.clip(idx, 0, energy.size - 1)
        playing = np.zeros(idx.size, dtype=bool)
        for i in range(0, idx.size, 4096):  # (beats, 2k + 1) indices: a group at a time
            near = np.clip(idx[i : i + 4096, None] + np.arange(-k, k + 1), 0, energy.size - 1)
            loud = _cleaned(energy, near) > ref * 10.0 ** (SILENCE_DB / 20.0)
            playing[i : i + 4096] = loud.any(axis=1)
        release(energy)
        return playing
    # Rare (no energy curve): only then is the onset curve copied again.
    act = moving_mean(_nonnegative(curves.onset), int(round(2.0 * rate)) // 2)
    return act[frames] > 0.01 * float(np_percentile(act, 95))


def _track_beats(odf: np.ndarray, rate: float, curves: Curves | None = None) -> np.ndarray:
    """Beat frames: the HMM restricted, window by window, to +-25 % around the local tempo path.

    For one steady piece the path is constant and this is the plain global-tempo tracker; for a
    medley or an hour-long mix each part gets its own tempo range. With ``curves`` (the fused
    tracker) the learned tempo head joins the tempo prior and the beat activation the beat
    observation (rhythm/fusion.py).
    """
    head = None
    if curves is not None:
        head = _fusion.head_log_prior(curves.tempo_logits, _tempo.bpm_grid(_tempo.LOCAL_GRID))
    centres, local_bpm = _tempo.local_tempo_path(odf, rate, head)
    if curves is None:
        # The log-odds a Viterbi segment at a time (six hours: 15 MB as a whole curve).
        return _beats.track_local(_beats.BeatLogOdds(odf), centres, 60.0 * rate / local_bpm)
    # The log-odds with the fused cue a Viterbi segment at a time, like the DSP tracker's.
    w = _fusion.FusedLogOdds(
        odf,
        _finite(curves.activations[:, 0], np.float32),
        rate,
        curves.activation_rate,
        curves.activation_offset,
        DETECTION_LAG_S,
    )
    return _beats.track_local(w, centres, 60.0 * rate / local_bpm)


def _learned_beats(
    curves: Curves, odf: np.ndarray, rate: float
) -> tuple[Decoded, np.ndarray] | None:
    """The learned decoder's reading (rhythm/learned.py) and which of its beats sound (the
    silence test of the DSP path); None when it has fewer than 2 such beats."""
    from featherbeat.analysis.rhythm import learned

    acts = _finite(curves.activations, np.float32)
    logits = _finite(curves.tempo_logits, np.float64)
    if logits.size != learned.bpm_bins().size:
        return None
    dec = learned.decode(
        acts[:, 0], acts[:, 1], logits, curves.activation_rate, curves.activation_offset
    )
    if dec.beats.size < 2:
        return None
    frames = np.clip(np.round(dec.beats * rate).astype(np.int64), 0, odf.size - 1)
    keep = _active(curves, rate, frames)
    if keep.sum() < 2:
        return None
    return dec, keep


def _track_learned(curves: Curves, odf: np.ndarray, rate: float, clarity: float) -> Rhythm | None:
    """Rhythm from the learned model's activations (rhythm/learned.py); None if it found no
    beats (the DSP tracker then answers). The pulse test above is shared with the DSP path."""
    found = _learned_beats(curves, odf, rate)
    if found is None:
        return None
    dec, keep = found
    times = dec.beats[keep]
    tempo = float(60.0 / np_median(np.diff(times)))
    # The tatums subdivide the beats by the onset curve (its peaks lead the sound by the
    # detection lag; the model's beats do not, as it learned from the notes' starts).
    tat_times, tat_conf = _tatums.tatums(odf, rate, times * rate - DETECTION_LAG_S * rate)
    tat_times = tat_times + DETECTION_LAG_S
    return Rhythm(
        tempo=tempo,
        tempo_confidence=float(np.clip(dec.tempo_confidence * min(1.0, clarity / 6.0), 0, 1)),
        time_signature=int(dec.meter),
        time_signature_confidence=float(dec.meter_confidence),
        beats=times.astype(np.float32),
        beat_confidence=dec.beat_confidence[keep].astype(np.float32),
        beat_position=dec.positions[keep].astype(np.int16),
        tatums=tat_times.astype(np.float32),
        tatum_confidence=tat_conf.astype(np.float32),
        tempo_curve_times=times.astype(np.float32),
        tempo_curve_bpm=local_tempo(times).astype(np.float32),
    )


def _has_activations(curves: Curves) -> bool:
    acts = curves.activations
    return (
        acts.ndim == 2 and acts.shape[0] > 0 and acts.shape[1] >= 2 and curves.activation_rate > 0
    )


def _conditioned(curves: Curves) -> tuple[np.ndarray, float, _tempo.TempoEstimate] | None:
    """(conditioned onset curve, its rate, the tempo estimate), or None when there is no pulse:
    what every tracker shares."""
    rate = float(curves.onset_rate)
    # Validate at the boundary: onset strength is >= 0 and finite by contract; enforce it.
    # One float64 buffer the curve's length for the whole stage (six hours: 15 MB): the
    # conditioned curve, then the bands; smoothed copies and the beat log-odds are computed
    # a window or a segment at a time from it.
    n_onset = np.asarray(curves.onset).size
    if not np.isfinite(rate) or rate <= 0 or n_onset < int(2 * rate):
        return None
    # Past 1 MB (~25 minutes) the buffer lives in a temp file (_store.scratch, the same
    # values): the stage sweeps it a span at a time (novelty.smooth_span gives each span's pages
    # back) and releases it between steps, so twelve hours (30 MB) are resident whole only
    # while one step reads them all (the conditioning, the tatums), not under the tempo path
    # and the beat Viterbi's ring buffers.
    odf = condition(_nonnegative(curves.onset, out=scratch((n_onset,))), rate, overwrite=True)
    if not any(bool(np.any(part)) for _, part in row_chunks(odf)):  # chunked: see above
        return None
    est = _tempo.estimate(odf, rate)
    release(odf)
    if est.bpm <= 0 or not _has_pulse(est.clarity, curves.chroma):
        return None
    return odf, rate, est


def _sounding_frames(curves: Curves, odf: np.ndarray, rate: float, fused: bool) -> np.ndarray:
    """The DSP (or, with ``fused``, the fused) tracker's beat frames where something sounds."""
    frames = _track_beats(odf, rate, curves if fused else None)
    release(odf)
    return frames[_active(curves, rate, frames)]


def _committee_beats(
    curves: Curves, odf: np.ndarray, rate: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """The committee's beats (rhythm/committee.py): the fused, DSP and learned readings, and
    the one that agrees most with the other two. Returns (integer frames, refined frames on the
    curves' time base, mean mutual agreement); the frames are empty when no reading has beats.

    The readings are compared at the times they report (when the sound starts): the DSP
    trackers' refined frames plus the detection lag, the learned decoder's own times.
    """
    readings: list[tuple[np.ndarray, np.ndarray]] = []  # (frames, refined frames)
    for fused in (True, False):  # the default first: a tie keeps it
        frames = _sounding_frames(curves, odf, rate, fused)
        if frames.size >= 2:
            readings.append((frames, _beats.refine(frames, odf)))
    found = _learned_beats(curves, odf, rate)
    if found is not None:
        dec, keep = found
        # The model's beats mark the sound's start; the curves' features are read the
        # detection lag earlier, where the onset curve peaks.
        pos = dec.beats[keep] * rate - DETECTION_LAG_S * rate
        pos = np.clip(pos, 0.0, odf.size - 1.0)
        readings.append((np.round(pos).astype(np.int64), pos))
    if not readings:
        return np.zeros(0, np.int64), np.zeros(0), 0.0
    best, mma = _committee.choose([pos / rate + DETECTION_LAG_S for _, pos in readings])
    frames, pos = readings[best]
    return frames, pos, mma


def track(curves: Curves, *, reduced: bool = False, mode: str = "fused") -> Rhythm:
    """All rhythm fields from the curves. ``reduced`` skips the chroma feature of downbeats.

    ``mode``: what to do with the learned model's outputs when the curves carry them: "fused"
    (the DSP tracker with the model's cues, rhythm/fusion.py), "learned" (the model's own
    decoder, rhythm/learned.py), "committee" (whichever of those two and the DSP tracker's
    beats agree most with the others, rhythm/committee.py; bars, tempo and tatums follow those
    beats) or "dsp" (ignore them). Without them every mode is the DSP tracker.
    """
    front = _conditioned(curves)
    if front is None:
        return _no_pulse()
    odf, rate, est = front
    model = _has_activations(curves)
    if mode == "learned" and model:
        learned = _track_learned(curves, odf, rate, est.clarity)
        if learned is not None:
            return learned
    if mode == "committee" and model:
        frames, pos_frames, _ = _committee_beats(curves, odf, rate)
    else:
        frames = _sounding_frames(curves, odf, rate, mode == "fused" and model)
        pos_frames = _beats.refine(frames, odf) if frames.size >= 2 else frames
    if frames.size < 2:
        return _no_pulse()
    # The committee's confidence is the fused tracker's (comb x prior x the tempo head), read
    # at whichever tempo it reports: one definition, whichever reading wins.
    fused = model and mode in ("fused", "committee")
    return _from_beats(curves, odf, rate, est, frames, pos_frames, reduced, fused)


def _from_beats(
    curves: Curves,
    odf: np.ndarray,
    rate: float,
    est: _tempo.TempoEstimate,
    frames: np.ndarray,
    pos_frames: np.ndarray,
    reduced: bool,
    fused: bool,
) -> Rhythm:
    """Tempo, confidences, tatums, meter and bars for beats at ``frames`` (integer onset frames)
    and ``pos_frames`` (refined, on the curves' time base). ``fused``: read the model's
    downbeat cue and weigh the tempo confidence by its tempo head (rhythm/fusion.py)."""
    n_onset = odf.size
    times = pos_frames / rate  # on the curves' time base: where the beat features are read
    ibi = np.diff(times)
    tempo = float(60.0 / np_median(ibi))

    strength = _tatums.strength_at(odf, frames.astype(np.float64))
    beat_conf = np.clip(strength / (np_percentile(strength, 95) + 1e-9), 0.0, 1.0)
    tat_times, tat_conf = _tatums.tatums(odf, rate, pos_frames)
    release(odf)

    # Downbeat evidence per beat; weights measured in docs/rhythm.md (chord change counts most).
    feats: list[np.ndarray] = []
    weights: list[float] = []
    fallback: np.ndarray | None = None  # the full band's accent, when nothing else is there
    if curves.onset_low.size == n_onset:
        # The conditioned curve is not read again (tatums and confidences are taken): its
        # buffer holds the bands, so rhythm never holds two float64 curves (six hours: 15 MB
        # each). The stored float32 curves are re-read chunk by chunk, with the same values as
        # whole copies of them.
        band = _nonnegative(curves.onset_low, out=odf)
        del odf
        low = condition(band, rate, overwrite=True)
        feats.append(_meter.beat_sync_mean(low, rate, times, -0.05, 0.05))
        release(band)
        # The bands above 200 Hz: the full band minus the low one.
        for a, part in row_chunks(curves.onset):
            high = band[a : a + part.shape[0]]
            np.subtract(
                _nonnegative(part), _nonnegative(curves.onset_low[a : a + high.size]), out=high
            )
            np.maximum(high, 0.0, out=high)
            release(curves.onset_low)
            release(band)
        high = condition(band, rate, overwrite=True)
        feats.append(_meter.beat_sync_mean(high, rate, times, -0.05, 0.05))
        release(band)
        del low, high
        weights += [0.5, -0.5]
        del band
    else:
        fallback = _meter.beat_sync_mean(odf, rate, times, -0.05, 0.05)
        release(odf)
    if not reduced and curves.chroma.ndim == 2 and curves.chroma.shape[0] and curves.frame_rate > 0:
        chroma = curves.chroma
        if not all_finite(chroma):  # chunked check; only a damaged curve pays for a copy
            chroma = _finite(chroma, None)
        feats.append(_meter.chroma_change(chroma, curves.frame_rate, times))
        weights.append(1.0)
        if curves.bass.ndim == 2 and curves.bass.shape[0] and curves.bass_rate > 0:
            # The bass line's change: it tells beat 1 from beat 3 where the chords do not.
            bass = curves.bass if all_finite(curves.bass) else _finite(curves.bass, None)
            feats.append(_meter.bass_change(bass, curves.bass_rate, times))
            weights.append(BASS_CHANGE_WEIGHT)
    if not feats and fallback is not None:
        feats, weights = [fallback], [1.0]
    if fused and _fusion.DOWNBEAT_WEIGHT:
        # The model's downbeat activation at each beat (read when the sound starts).
        feats.append(
            _fusion.downbeat_cue(
                _finite(curves.activations[:, 1], np.float32),
                curves.activation_rate,
                curves.activation_offset,
                times + DETECTION_LAG_S,
            )
        )
        weights.append(_fusion.DOWNBEAT_WEIGHT)
    acc = _meter.accent(feats, weights)
    meter, meter_conf, positions = _meter.downbeats(acc)

    if fused:
        # The fused tracker chose its tempo with the tempo head in the prior (fusion.py): its
        # confidence weighs the readings by the same evidence.
        head = _fusion.head_log_prior(curves.tempo_logits, est.bpms)
        if head is not None:
            est = est._replace(score=est.score * np.exp(head))

    tat_times += DETECTION_LAG_S
    times = times + DETECTION_LAG_S  # when the sound starts
    return Rhythm(
        tempo=tempo,
        # Of the reported tempo (the beats'), which may sit a little off the comb's winner.
        tempo_confidence=_tempo.reported_confidence(est, tempo),
        time_signature=int(meter),
        time_signature_confidence=meter_conf,
        beats=times.astype(np.float32),
        beat_confidence=beat_conf.astype(np.float32),
        beat_position=positions,
        tatums=tat_times.astype(np.float32),
        tatum_confidence=tat_conf.astype(np.float32),
        tempo_curve_times=times.astype(np.float32),
        tempo_curve_bpm=local_tempo(times).astype(np.float32),
    )
