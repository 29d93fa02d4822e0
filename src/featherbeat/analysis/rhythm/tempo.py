"""Global tempo: windowed autocorrelation of the onset curve, a harmonic comb, and a tempo prior.

Why: the autocorrelation of the onset curve peaks at every multiple of the beat period, so a
comb that sums those multiples (Percival & Tzanetakis 2014, Ellis 2007) finds the period
that explains the most of the pulse. The comb alone cannot tell a beat from two beats (a
click track correlates equally at P and 2P), which is why every tracker doubles or halves
tempi; the remaining choice is made by a log-normal prior over tempo (listeners tap near
~110 BPM; Moelants 2002, van Noorden & Moelants 1999).
"""

from __future__ import annotations

import numpy as np

from featherbeat.analysis.rhythm.novelty import smooth

BPM_MIN = 40.0
BPM_MAX = 240.0
PRIOR_BPM = 110.0  # centre of the tempo prior
PRIOR_OCTAVES = 0.9  # its width (standard deviation in octaves)
COMB_WEIGHTS = (1.0, 0.5, 0.33, 0.25)  # weights of periods P, 2P, 3P, 4P in the comb
WINDOW_S = 12.0  # autocorrelation window
HOP_S = 6.0
SMOOTH_FRAMES = 5  # Hann smoothing of the onset curve before the autocorrelation


def bpm_grid(n: int = 600) -> np.ndarray:
    """Log-spaced tempo candidates (about 0.4 % apart)."""
    return np.geomspace(BPM_MIN, BPM_MAX, n)


def windowed_acf(
    odf: np.ndarray, rate: float, window_s: float = WINDOW_S, hop_s: float = HOP_S
) -> np.ndarray:
    """Mean over windows of the normalised, bias-corrected autocorrelation (lags 0..win-1).

    Averaging normalised local autocorrelations gives each passage one vote, so a loud chorus
    does not outvote a quiet verse, and memory stays at one window per batch.
    """
    win = int(round(window_s * rate))
    hop = max(1, int(round(hop_s * rate)))
    n = odf.size
    if n < 8:
        return np.zeros(max(win, 1))
    if n <= win:
        starts = np.array([0])
        win = n
    else:
        starts = np.arange(0, n - win + 1, hop)
    nfft = 1 << int(np.ceil(np.log2(2 * win)))
    acc = np.zeros(win)
    used = 0
    for i in range(0, starts.size, 64):
        seg = odf[starts[i : i + 64, None] + np.arange(win)[None, :]]
        seg = seg - seg.mean(axis=1, keepdims=True)
        spec = np.fft.rfft(seg, nfft, axis=1)
        r = np.fft.irfft(spec * np.conj(spec), nfft, axis=1)[:, :win]
        r0 = r[:, :1]
        ok = r0[:, 0] > 1e-12
        acc += (r[ok] / r0[ok]).sum(axis=0)
        used += int(ok.sum())
    if used == 0:
        return acc
    acf = acc / used
    # Bias correction: lag L overlaps only win-L frames.
    acf *= win / np.maximum(win - np.arange(win), win / 4)
    return acf


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


def estimate_tempo(odf: np.ndarray, rate: float) -> tuple[float, float, float]:
    """(bpm, confidence 0..1, pulse significance) from a conditioned onset curve.

    Pulse significance is the normalised autocorrelation at the chosen period in units of its
    standard error under "no pulse" (about 1 / sqrt(frames) for an uncorrelated curve): white
    noise scores ~1, the most weakly pulsed music of the dev set ~5. The caller uses it to
    say "no pulse".
    """
    # Smooth over ~5 frames (58 ms) first: with onsets jittering by +-1 frame the autocorrelation
    # at a non-integer period was uneven from one multiple to the next (measured: dev Acc1
    # 0.730 -> 0.762, Acc2 0.952 -> 0.984; a 150 BPM click track no longer halved).
    acf = windowed_acf(smooth(odf, SMOOTH_FRAMES), rate)
    if not np.any(acf[1:]):
        return 0.0, 0.0, 0.0
    bpms = bpm_grid()
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
    # Confidence: how far the winner stands above the typical candidate.
    conf = float(np.clip((score[best] - np.median(score)) / (score[best] + 1e-9), 0.0, 1.0))
    return bpm, conf, clarity
