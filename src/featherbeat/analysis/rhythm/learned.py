"""Learned beat, downbeat and tempo model: a small TCN run in numpy, streamed in blocks.

    features  -> ModelInput: the onset detector's log band spectrum and SuperFlux difference
                 (72 bands, 86 frames/s), pooled to 36 bands and 43 frames/s, 72 channels
    network   -> RhythmNet: input normalisation, a 3-tap convolution, 8 residual dilated
                 3-tap convolutions (dilations 1..128; receptive field +-255 frames = +-5.9 s),
                 heads for beat and downbeat activations (sigmoid) and tempo (softmax over
                 log-spaced BPM bins), see docs/rhythm.md and docs/model-card-rhythm.md
    streaming -> StreamedNet: frames are run in blocks of BLOCK frames with RECEPTIVE frames of
                 context on both sides; since every output depends only on inputs within
                 +-RECEPTIVE frames, the block outputs equal the whole-track outputs exactly
                 and memory is one block, whatever the length of the track.
    decoding  -> decode(): the beat-period Viterbi of rhythm/beats.py on the beat activation's
                 log-odds, periods restricted around the tempo head's tempo; downbeats by the
                 bar-position Viterbi of rhythm/meter.py on the downbeat activation at the beats.

The weights are trained by train/train.py (torch, never at run time) and stored in
``rhythm_model.npz`` beside this module. A missing or damaged file raises ModelUnavailableError
with one line saying why; the caller falls back to the DSP tracker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featherbeat.analysis.features._store import GrowingArray
from featherbeat.analysis.spans import np_median, np_percentile, sorted_unique

N_GROUPS = 36  # input bands after pooling pairs of the onset detector's 72 bands
FRAME_POOL = 2  # 86.13 -> 43.07 frames/s
N_INPUT = 2 * N_GROUPS
WEIGHTS_PATH = Path(__file__).with_name("rhythm_model.npz")
BLOCK = 2048  # model frames per streamed block (47.5 s)


class ModelUnavailableError(RuntimeError):
    """The learned model cannot be used (weights missing, damaged or of another shape)."""


def pool_features(spec: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """(2k frames, 72) spectrum + flux at 86 frames/s -> (k, 72) float32 model input.

    Spectrum: mean over the pair of frames and the pair of bands; flux: max over the pair of
    frames (a short onset must not be halved), summed over the pair of bands. Written as sums
    of strided halves, not ``reshape(...).mean(axis=(1, 3))``: numpy's reductions over several
    small axes of a 4-D view cost ~0.025 CPU-s per 3 minutes, the adds a third of that (the
    model input agrees to float64 round-off, ~1e-16).
    """
    n = spec.shape[0] // FRAME_POOL * FRAME_POOL
    nb = spec.shape[1] // 2 * 2
    frames = spec[0:n:2, :nb] + spec[1:n:2, :nb]  # FRAME_POOL = 2
    s = frames[:, 0::2] + frames[:, 1::2]
    s *= 0.25
    peak = np.maximum(diff[0:n:2, :nb], diff[1:n:2, :nb])
    d = peak[:, 0::2] + peak[:, 1::2]
    out = np.empty((s.shape[0], 2 * N_GROUPS), dtype=np.float32)
    g = min(N_GROUPS, s.shape[1])
    out[:, :g] = s[:, :g]
    out[:, N_GROUPS : N_GROUPS + g] = d[:, :g]
    if g < N_GROUPS:  # a sample rate with fewer bands: the top groups stay silent
        out[:, g:N_GROUPS] = 0.0
        out[:, N_GROUPS + g :] = 0.0
    return out


class ModelInput:
    """Sink for OnsetStrength: pools its (spectrum, flux) batches and passes model frames on."""

    def __init__(self, on_frames: Callable[[np.ndarray], None]) -> None:
        self._on_frames = on_frames
        self._carry: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, spec: np.ndarray, diff: np.ndarray) -> None:
        if self._carry is not None:
            spec = np.concatenate([self._carry[0], spec])
            diff = np.concatenate([self._carry[1], diff])
            self._carry = None
        n = spec.shape[0] // FRAME_POOL * FRAME_POOL
        if n < spec.shape[0]:
            self._carry = (spec[n:].copy(), diff[n:].copy())
        if n:
            self._on_frames(pool_features(spec[:n], diff[:n]))

    def flush(self) -> None:
        if self._carry is not None:
            spec, diff = self._carry
            self._carry = None
            self._on_frames(pool_features(np.repeat(spec, 2, axis=0), np.repeat(diff, 2, axis=0)))


def frame_rate(onset_rate: float) -> float:
    """Model frames per second for the onset detector's rate."""
    return onset_rate / FRAME_POOL


def frame_time_offset(onset_rate: float) -> float:
    """Centre of model frame 0 in seconds (frames 0 and 1 of the onset curve pooled)."""
    return 0.5 / onset_rate


# Which tracker analyze() uses when not told: the one that measures better on dev
# (docs/benchmarks.md, "Learned and fused rhythm"): the fused tracker since the stage-3 weights
# (ahead of DSP on dev in-sample, level or ahead leave-one-genre-out, and within the codec bar).
# FEATHERBEAT_RHYTHM=learned|fused|committee|dsp overrides it; missing weights fall back to "dsp".
DEFAULT_RHYTHM = "fused"
MODES = ("fused", "learned", "committee", "dsp")
MODEL_MODES = ("fused", "learned", "committee")  # the modes that run the network


def _env_settings() -> tuple[str | None, str | None]:
    """(FEATHERBEAT_RHYTHM, FEATHERBEAT_RHYTHM_WEIGHTS) as config.Settings reads them."""
    from featherbeat.config import ConfigError, Settings

    try:
        settings = Settings.from_env()
    except ConfigError:  # a bad service setting is the service's error, not the analysis's
        return None, None
    return settings.rhythm, settings.rhythm_weights


def resolve_mode(mode: str | None) -> str:
    """The tracker to use: ``mode``, else $FEATHERBEAT_RHYTHM, else DEFAULT_RHYTHM."""
    chosen = mode or (_env_settings()[0] or "").strip().lower() or DEFAULT_RHYTHM
    if chosen not in MODES:
        raise ValueError(f"rhythm must be one of {', '.join(MODES)}, got {chosen!r}")
    return chosen


def env_weights_path() -> Path:
    """$FEATHERBEAT_RHYTHM_WEIGHTS, else the packaged weights."""
    return Path(_env_settings()[1] or WEIGHTS_PATH)


# ---- network --------------------------------------------------------------------------------
CHANNELS = 32
DILATIONS = (1, 2, 4, 8, 16, 32, 64, 128)
RECEPTIVE = 1 + sum(DILATIONS)  # frames of context each side that an output depends on
BPM_MIN, BPM_MAX, BINS_PER_OCTAVE = 40.0, 250.0, 32


def bpm_bins() -> np.ndarray:
    """Log-spaced tempo classes of the tempo head (2.2 % apart)."""
    n = int(np.floor(BINS_PER_OCTAVE * np.log2(BPM_MAX / BPM_MIN))) + 1
    return BPM_MIN * 2.0 ** (np.arange(n) / BINS_PER_OCTAVE)


def _elu(x: np.ndarray) -> np.ndarray:
    """ELU, in place on ``x``: max(x, expm1(min(x, 0))) is x above 0 and expm1(x) below
    (e^x - 1 >= x), with one temporary instead of ``np.where``'s mask and two."""
    e = np.minimum(x, 0.0)
    np.expm1(e, out=e)
    return np.maximum(x, e, out=x)


def _conv(x: np.ndarray, taps: np.ndarray, b: np.ndarray, dilation: int) -> np.ndarray:
    """'Same' 3-tap dilated convolution, zero-padded: x (T, Cin) -> (T, Cout).

    ``taps`` is the weight (Cout, Cin, 3) as one (Cin, 3 * Cout) matrix (:func:`_stack_taps`):
    one matrix product for the three taps, then the outer taps' columns added shifted by
    ``dilation`` frames, as torch's Conv1d(padding=dilation) computes it.
    """
    t = x.shape[0]
    d = dilation
    c = b.shape[0]
    y = x @ taps
    out = y[:, c : 2 * c] + b
    if d < t:
        out[d:] += y[:-d, :c]
        out[:-d] += y[d:, 2 * c :]
    return out


def _stack_taps(w: np.ndarray) -> np.ndarray:
    """(Cout, Cin, 3) -> (Cin, 3 * Cout): columns [tap 0 | tap 1 | tap 2], contiguous."""
    return np.ascontiguousarray(np.concatenate([w[:, :, k].T for k in range(3)], axis=1))


class RhythmNet:
    """The trained network in numpy (float32). Load with :meth:`load`."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean = arrays["norm_mean"].astype(np.float32)
        self.std = arrays["norm_std"].astype(np.float32)
        self.inp = (arrays["inp_w"].astype(np.float32), arrays["inp_b"].astype(np.float32))
        self.dilations = [int(d) for d in arrays["dilations"]]
        self.blocks = [
            (arrays[f"block{i}_w"].astype(np.float32), arrays[f"block{i}_b"].astype(np.float32))
            for i in range(len(self.dilations))
        ]
        self.beat = (arrays["beat_w"][:, :, 0].astype(np.float32), arrays["beat_b"])
        self.tempo = (arrays["tempo_w"][:, :, 0].astype(np.float32), arrays["tempo_b"])
        self.bpm_bins = arrays["bpm_bins"].astype(np.float64)
        self.receptive = 1 + sum(self.dilations)
        self.info = str(arrays.get("info", ""))
        self._check()
        self._inp_taps = _stack_taps(self.inp[0])
        self._block_taps = [(_stack_taps(w), b) for w, b in self.blocks]

    def _check(self) -> None:
        ch = self.inp[0].shape[0]
        if self.inp[0].shape != (ch, N_INPUT, 3) or self.mean.shape != (N_INPUT,):
            raise ModelUnavailableError(
                f"input layer of shape {self.inp[0].shape}, expected ({ch}, {N_INPUT}, 3)"
            )
        for w, b in self.blocks:
            if w.shape != (ch, ch, 3) or b.shape != (ch,):
                raise ModelUnavailableError(f"block of shape {w.shape}, expected ({ch}, {ch}, 3)")
        if self.beat[0].shape != (2, ch) or self.tempo[0].shape != (self.bpm_bins.size, ch):
            raise ModelUnavailableError("output heads do not match the body")
        for arr in [
            self.mean,
            self.std,
            self.inp[0],
            *[w for w, _ in self.blocks],
            self.beat[0],
            self.tempo[0],
        ]:
            if not np.all(np.isfinite(arr)):
                raise ModelUnavailableError("weights contain NaN or infinity")

    @classmethod
    def load(cls, path: Path | None = None) -> RhythmNet:
        path = env_weights_path() if path is None else path
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise ModelUnavailableError(f"weights file {path.name} not found") from None
        except Exception as exc:  # zip, pickle and format errors all mean: unusable file
            raise ModelUnavailableError(
                f"weights file {path.name} unreadable ({type(exc).__name__})"
            ) from None
        try:
            return cls(arrays)
        except KeyError as exc:
            raise ModelUnavailableError(f"weights file {path.name} lacks {exc}") from None

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (T, 72) raw input -> (beat/downbeat activations (T, 2), tempo logits (T, bins))."""
        h = (x.astype(np.float32, copy=False) - self.mean) / self.std
        h = _elu(_conv(h, self._inp_taps, self.inp[1], 1))
        for (taps, b), d in zip(self._block_taps, self.dilations, strict=True):
            h += _elu(_conv(h, taps, b, d))
        act = 1.0 / (1.0 + np.exp(-(h @ self.beat[0].T + self.beat[1])))
        return act.astype(np.float32), (h @ self.tempo[0].T + self.tempo[1]).astype(np.float32)


class StreamedNet:
    """Runs a RhythmNet over frames as they arrive, in blocks with +-receptive context.

    Keeps: the pending input frames (at most BLOCK + 2 * receptive), the beat and downbeat
    activations (2 float32 per frame: 1.2 MB per hour) and the sum of the tempo logits per
    TEMPO_WINDOW frames (for a local tempo) and over the whole track.
    """

    def __init__(self, net: RhythmNet, block: int = BLOCK) -> None:
        self.net = net
        self.block = block
        self.ctx = net.receptive
        # Frames not yet output, with their context: the first ``_held`` rows of a buffer with
        # room for a block, its context and a few pushes, appended in place (a concatenation
        # per push copied ~0.5 MB each time, ~60 MB per 3 minutes).
        self._pending = np.empty((block + 2 * self.ctx + 1024, N_INPUT), np.float32)
        self._held = 0
        self._left = 0  # how many of the pending frames are left context (already output)
        # Kept like the other curves (features/_store.py): past 1 MB (~12 minutes) in a temp
        # file, handed back mapped; a list of blocks concatenated at the end held six hours of
        # activations twice (7.5 MB each) and resident under every later stage.
        self._acts = GrowingArray(2)
        self.tempo_sum = np.zeros(net.bpm_bins.size)
        self.n_frames = 0

    def push(self, frames: np.ndarray) -> None:
        k = frames.shape[0]
        if self._held + k > self._pending.shape[0]:  # a push larger than the spare room
            grown = np.empty((2 * (self._held + k), N_INPUT), np.float32)
            grown[: self._held] = self._pending[: self._held]
            self._pending = grown
        self._pending[self._held : self._held + k] = frames
        self._held += k
        while self._held - self._left >= self.block + self.ctx:
            self._run(self.block, final=False)

    def _run(self, n_out: int, final: bool) -> None:
        seg = self._pending[: self._left + n_out + (0 if final else self.ctx)]
        act, tempo = self.net.forward(seg)
        act, tempo = act[self._left : self._left + n_out], tempo[self._left : self._left + n_out]
        self._acts.extend(np.asarray(act, dtype=np.float32).reshape(-1, 2))
        self.tempo_sum += tempo.sum(axis=0, dtype=np.float64)
        self.n_frames += n_out
        # Keep ctx frames of left context for the next block.
        drop = max(0, self._left + n_out - self.ctx)
        if drop:
            rest = self._held - drop
            self._pending[:rest] = self._pending[drop : self._held]  # numpy copies overlaps
            self._held = rest
        self._left = self._left + n_out - drop

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(activations (T, 2), mean tempo logits over the track)."""
        rest = self._held - self._left
        if rest > 0:
            self._run(rest, final=True)
        acts = self._acts.result()
        logits = self.tempo_sum / max(1, self.n_frames)
        return acts, logits


# ---- decoding -------------------------------------------------------------------------------
METER_LOG_PRIOR = {4: 0.0, 3: -3.0, 5: -8.0, 7: -8.0}  # nats for a whole clip; 4/4 is common
TEMPO_KEEP = 0.1  # tempo classes within this share of the most likely one are decoded


@dataclass
class Decoded:
    beats: np.ndarray  # seconds
    positions: np.ndarray  # 1-based position in bar
    beat_confidence: np.ndarray
    tempo: float
    tempo_confidence: float
    meter: int
    meter_confidence: float

    @property
    def downbeats(self) -> np.ndarray:
        return self.beats[self.positions == 1]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - np.max(z))
    return e / e.sum()


def _log_odds(p: np.ndarray, floor: float = 0.01) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 0.0, 1.0)
    return np.log(p + floor) - np.log(1.0 - p + floor)


def decode(
    beat_act: np.ndarray, down_act: np.ndarray, tempo_logits: np.ndarray, fps: float, t0: float
) -> Decoded:
    """Beats, bars and tempo from the network's outputs (see the module docstring)."""
    from featherbeat.analysis.rhythm import beats as _beats
    from featherbeat.analysis.rhythm import meter as _meter

    bins = bpm_bins()
    post = _softmax(tempo_logits.astype(np.float64))
    empty = Decoded(np.zeros(0), np.zeros(0, np.int16), np.zeros(0), 0.0, 0.0, 4, 0.0)
    if beat_act.size < 4:
        return empty
    # Periods (frames) of every tempo class the head finds plausible, +-20 %.
    keep = post >= TEMPO_KEEP * post.max()
    periods = sorted_unique(
        np.concatenate([_beats.period_states(60.0 * fps / b, 1.2) for b in bins[keep]])
    )
    periods = periods[(periods >= 2) & (periods < beat_act.size)]
    if periods.size == 0:
        return empty
    # Level-free observation: on real recordings the network's peaks are lower than on the
    # synthetic corpus, so the activation is scaled by its 99th percentile (floor 0.1, so a
    # track without any beat-like event is not blown up). Dev: beat F 0.719 -> 0.732.
    ref = max(float(np_percentile(beat_act, 99)), 0.1)
    w = _log_odds(np.clip(beat_act / ref, 0.0, 1.0))
    frames = _beats.viterbi_beats(w, periods)
    frames = frames[beat_act[frames] > 0.05] if frames.size > 8 else frames
    if frames.size < 2:
        return empty
    pos_frames = _beats.refine(frames, beat_act.astype(np.float64))
    times = pos_frames / fps + t0
    tempo = float(60.0 / np_median(np.diff(times)))
    near = np.abs(np.log(bins / tempo)) <= np.log(1.04)
    tempo_conf = float(np.clip(post[near].sum(), 0.0, 1.0))
    # Downbeats: log-odds of the downbeat activation at each beat (max over +-1 frame).
    n = down_act.size
    idx = np.clip(frames[:, None] + np.arange(-1, 2)[None, :], 0, n - 1)
    lo = _log_odds(down_act[idx].max(axis=1))
    scores: dict[int, tuple[float, int]] = {}
    for m, prior in METER_LOG_PRIOR.items():
        if lo.size < 2 * m:
            continue
        best = max(((float(lo[ph::m].sum()), ph) for ph in range(m)), key=lambda s: s[0])
        scores[m] = (best[0] + prior, best[1])
    if scores:
        ranked = sorted(scores.items(), key=lambda kv: kv[1][0], reverse=True)
        meter, (s, phase) = ranked[0]
        gap = s - ranked[1][1][0] if len(ranked) > 1 else 10.0
        meter_conf = float(1.0 - np.exp(-max(gap, 0.0) / 4.0))
        positions = _meter.phase_path(lo - lo.mean(), meter, phase)
    else:
        meter, meter_conf, positions = 4, 0.0, (np.arange(lo.size) % 4 + 1).astype(np.int16)
    return Decoded(
        times,
        positions,
        np.clip(beat_act[frames], 0, 1).astype(np.float64),
        tempo,
        tempo_conf,
        int(meter),
        meter_conf,
    )
