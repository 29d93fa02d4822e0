"""Global tempo: windowed autocorrelation of the onset curve, a harmonic comb, and a tempo prior.

Why: the autocorrelation of the onset curve peaks at every multiple of the beat period, so a
comb that sums those multiples (Percival & Tzanetakis 2014, Ellis 2007) finds the period
that explains the most of the pulse. The comb alone cannot tell a beat from two beats (a
click track correlates equally at P and 2P), which is why every tracker doubles or halves
tempi; the remaining choice is made by a log-normal prior over tempo (listeners tap near
~110 BPM; Moelants 2002, van Noorden & Moelants 1999).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from featherbeat.analysis.rhythm.novelty import smooth_span

BPM_MIN = 40.0
BPM_MAX = 240.0
PRIOR_BPM = 110.0  # centre of the tempo prior
PRIOR_OCTAVES = 0.9  # its width (standard deviation in octaves)
COMB_WEIGHTS = (1.0, 0.5, 0.33, 0.25)  # weights of periods P, 2P, 3P, 4P in the comb
WINDOW_S = 12.0  # autocorrelation window
HOP_S = 6.0
FAMILY_OCTAVES = 0.06  # +-4 %: tempi this close are the same reading (Acc1's tolerance)
SMOOTH_FRAMES = 5  # Hann smoothing of the onset curve before the autocorrelation


def bpm_grid(n: int = 600) -> np.ndarray:
    """Log-spaced tempo candidates (about 0.4 % apart)."""
    return np.geomspace(BPM_MIN, BPM_MAX, n)


def _window_starts(n: int, win: int, hop: int) -> np.ndarray:
    return np.array([0]) if n <= win else np.arange(0, n - win + 1, hop)


def window_acfs(
    odf: np.ndarray,
    rate: float,
    window_s: float = WINDOW_S,
    hop_s: float = HOP_S,
    smooth_frames: int = 0,
):
    """Yield batches of (window starts, normalised bias-corrected ACFs, valid mask).

    Each window's autocorrelation is divided by its lag-0 value and corrected for the shrinking
    overlap (lag L overlaps only win - L frames). Batches of 16 windows bound the memory.
    ``smooth_frames`` > 1: of ``novelty.smooth(odf, smooth_frames)``, smoothed one batch's span
    at a time (the same values; no smoothed copy of the whole curve).
    """
    win = int(round(window_s * rate))
    hop = max(1, int(round(hop_s * rate)))
    n = odf.size
    win = min(win, n)
    starts = _window_starts(n, win, hop)
    nfft = 1 << int(np.ceil(np.log2(2 * win)))
    bias = win / np.maximum(win - np.arange(win), win / 4)
    for i in range(0, starts.size, 16):
        st = starts[i : i + 16]
        lo, hi = int(st[0]), int(st[-1]) + win
        span = smooth_span(odf, smooth_frames, lo, hi)
        seg = span[(st - lo)[:, None] + np.arange(win)[None, :]]
        seg = seg - seg.mean(axis=1, keepdims=True)
        spec = np.fft.rfft(seg, nfft, axis=1)
        r = np.fft.irfft(spec * np.conj(spec), nfft, axis=1)[:, :win]
        r0 = r[:, :1]
        ok = r0[:, 0] > 1e-12
        r = np.where(ok[:, None], r / np.where(r0 > 1e-12, r0, 1.0), 0.0) * bias
        yield st, r, ok


def windowed_acf(
    odf: np.ndarray,
    rate: float,
    window_s: float = WINDOW_S,
    hop_s: float = HOP_S,
    smooth_frames: int = 0,
) -> np.ndarray:
    """Mean over windows of the normalised, bias-corrected autocorrelation (lags 0..win-1).

    Averaging normalised local autocorrelations gives each passage one vote, so a loud chorus
    does not outvote a quiet verse, and memory stays at one window per batch.
    """
    if odf.size < 8:
        return np.zeros(max(int(round(window_s * rate)), 1))
    used = 0
    acc = np.zeros(min(int(round(window_s * rate)), odf.size))  # window_acfs' lag count
    for _, r, ok in window_acfs(odf, rate, window_s, hop_s, smooth_frames):
        acc += r[ok].sum(axis=0)
        used += int(ok.sum())
    return acc / used if used else acc


def comb_salience(acf: np.ndarray, rate: float, bpms: np.ndarray) -> np.ndarray:
    """Harmonic comb over the autocorrelation: sum_k w_k * acf(k * period)."""
    lags = np.arange(acf.size)
    period = 60.0 * rate / bpms
    sal = np.zeros(bpms.size)
    for k, w in enumerate(COMB_WEIGHTS, start=1):
        at = k * period
        ok = at < acf.size - 1
        # Max over +-1 frame around the multiple: tolerates the rounding of the period.
        v = np.maximum.reduce([np.interp(at + d, lags, acf) for d in (-1.0, 0.0, 1.0)])
        sal += np.where(ok, w * v, 0.0)
    return sal


def log_prior(bpms: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log2(bpms / PRIOR_BPM) / PRIOR_OCTAVES) ** 2


class TempoEstimate(NamedTuple):
    """The global tempo reading and the evidence behind it (``estimate``)."""

    bpm: float  # the best candidate of comb x prior
    confidence: float  # confidence_at(bpms, score, bpm)
    clarity: float  # pulse significance (standard errors of an uncorrelated curve)
    bpms: np.ndarray  # the candidates (bpm_grid())
    score: np.ndarray  # comb salience x tempo prior per candidate


def estimate(odf: np.ndarray, rate: float) -> TempoEstimate:
    """The global tempo of a conditioned onset curve, its confidence and its evidence.

    Pulse significance is the normalised autocorrelation at the chosen period in units of its
    standard error under "no pulse" (about 1 / sqrt(frames) for an uncorrelated curve): white
    noise scores ~1, the most weakly pulsed music of the dev set ~5. The caller uses it to
    say "no pulse".
    """
    bpms = bpm_grid()
    # Smooth over ~5 frames (58 ms) first: with onsets jittering by +-1 frame the autocorrelation
    # at a non-integer period was uneven from one multiple to the next (measured: dev Acc1
    # 0.730 -> 0.762, Acc2 0.952 -> 0.984; a 150 BPM click track no longer halved).
    acf = windowed_acf(odf, rate, smooth_frames=SMOOTH_FRAMES)
    if not np.any(acf[1:]):
        return TempoEstimate(0.0, 0.0, 0.0, bpms, np.zeros(bpms.size))
    sal = comb_salience(acf, rate, bpms)
    score = np.maximum(sal, 1e-6) * np.exp(log_prior(bpms))
    best = int(np.argmax(score))
    bpm = float(bpms[best])
    # Significance from the unsmoothed curve, whose frames are independent under "no pulse"
    # (smoothing correlates neighbours and would inflate it for noise).
    raw = windowed_acf(odf, rate)
    period = 60.0 * rate / bpm
    at = [float(np.interp(period + d, np.arange(raw.size), raw)) for d in (-1.0, 0.0, 1.0)]
    clarity = max(at) * np.sqrt(odf.size)
    return TempoEstimate(bpm, confidence_at(bpms, score, bpm), clarity, bpms, score)


CLARITY_FULL = 15.0  # pulse significance from which the confidence is not scaled down


def reported_confidence(est: TempoEstimate, bpm: float) -> float:
    """The confidence written for the reported tempo ``bpm``: ``confidence_at`` it, scaled
    down when the pulse is weak (significance under CLARITY_FULL; noise measures ~1-4)."""
    return float(
        np.clip(
            confidence_at(est.bpms, est.score, bpm) * min(1.0, est.clarity / CLARITY_FULL), 0, 1
        )
    )


def confidence_at(bpms: np.ndarray, score: np.ndarray, bpm: float) -> float:
    """How sure the reading ``bpm`` is: 1 - (best rival reading) / (this reading's score).

    A rival is any other peak of comb x prior more than FAMILY_OCTAVES (~4 %) away, *including*
    the same pulse counted at another metrical level (x2, x1/2, x3, x1/3, x3/2, x2/3): a tempo
    reported at half or twice the listener's is a different headline number, and the octave is
    exactly what the comb cannot tell (it is left to the prior), so it is where readings flip.
    Until issue 11 those relatives did not compete (the confidence said how clearly this pulse
    beats a *different* pulse); then a song read at 66 BPM from one encoding and 133 from
    another carried 0.52 and 0.53, and on dev the confidence ranked right above wrong tempi no
    better than chance (AUC 0.58; 0.62 now, docs/benchmarks/accuracy.md row 49). With a
    steady pulse the half tempo fits the comb as well as the tempo does, so a confidence above
    0.5 now needs the prior (or the music) to favour one reading twice over.

    Rivals are local maxima of the score, so the shoulder of the winner's own peak (a fast
    tempo's peak is wider than 4 %) is not a rival.
    """
    if bpm <= 0 or score.size < 3:
        return 0.0
    dist = np.abs(np.log2(bpms / bpm))
    near = dist <= FAMILY_OCTAVES
    own = float(score[near].max()) if near.any() else float(np.interp(bpm, bpms, score))
    peak = np.zeros(score.size, dtype=bool)
    peak[1:-1] = (score[1:-1] >= score[:-2]) & (score[1:-1] >= score[2:])
    peak[[0, -1]] = [score[0] >= score[1], score[-1] >= score[-2]]
    rivals = peak & ~near
    rival = float(score[rivals].max()) if rivals.any() else 0.0
    return float(np.clip(1.0 - rival / (own + 1e-12), 0.0, 1.0))


LOCAL_GRID = 160  # tempo candidates of the local path (~1.1 % apart)
LOCAL_CHANGE_COST = 8.0  # nats per octave of tempo change between windows (6 s apart)


def local_tempo_path(
    odf: np.ndarray, rate: float, extra_prior: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(window centre frames, BPM per window): the most likely tempo path through the windows.

    ``extra_prior``: log-prior over ``bpm_grid(LOCAL_GRID)`` added to the listeners' prior in
    every window (the fused tracker's learned tempo head, rhythm/fusion.py).

    Each window's comb salience times the tempo prior is its evidence; changing tempo costs
    LOCAL_CHANGE_COST nats per octave, so within one piece the path holds its tempo (and its
    octave) and it moves only when the music does (a medley, a DJ mix, a concatenation).
    Viterbi over windows x candidates: tiny (an hour is 600 windows x 160 candidates).
    """
    bpms = bpm_grid(LOCAL_GRID)
    win = min(int(round(WINDOW_S * rate)), odf.size)
    prior = log_prior(bpms)
    if extra_prior is not None:
        prior = prior + extra_prior
    # window_acfs' windows, filled in place (a list of rows and its stacked copy were both
    # held: 4.6 MB each at six hours).
    count = _window_starts(odf.size, win, max(1, int(round(HOP_S * rate)))).size
    e = np.empty((count, bpms.size))
    centres = np.empty(count, dtype=np.int64)
    w = 0
    for st, r, ok in window_acfs(odf, rate, smooth_frames=SMOOTH_FRAMES):
        for j in range(st.size):
            sal = comb_salience(r[j], rate, bpms) if ok[j] else np.zeros(bpms.size)
            e[w] = np.log(np.maximum(sal, 1e-3)) + prior
            centres[w] = st[j] + win // 2
            w += 1
    lb = np.log2(bpms)
    trans = -LOCAL_CHANGE_COST * np.abs(lb[:, None] - lb[None, :])  # (from, to)
    score = e[0].copy()
    back = np.zeros(e.shape, dtype=np.int16)
    for w in range(1, e.shape[0]):
        cand = score[:, None] + trans
        back[w] = np.argmax(cand, axis=0)
        score = cand[back[w], np.arange(bpms.size)] + e[w]
    path = np.zeros(e.shape[0], dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for w in range(e.shape[0] - 1, 0, -1):
        path[w - 1] = back[w, path[w]]
    return centres, bpms[path]
