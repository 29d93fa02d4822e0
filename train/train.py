"""Train the learned rhythm model (torch, one CPU thread) and export its weights for numpy.

    python train/train.py --corpus train/out/corpus --out train/out --minutes 60 --seed 7

Reads the corpus shards of train/corpus.py (new shards are picked up while training runs),
trains a small TCN (beat, downbeat, tempo heads; src/featherbeat/analysis/rhythm/learned.py
runs it in numpy), validates on ../shared/eval/dev every --val-every steps (validation and
model selection only: dev audio is never a training example), and writes

    <out>/rhythm_model.npz        the weights of the best validation score
    <out>/rhythm_model_last.npz   the weights at the last validation
    <out>/step<N>[_ema].npz       every validated checkpoint (--keep-all), to evaluate later
    <out>/train.log               one line per validation

With --ema the trainer also keeps an exponential moving average of the weights and validates
it beside the raw weights; either can be the best. With --band-mask a share of the crops has
one or two random groups of input bands blanked (set to the normalised mean, spectrum and
flux alike), so the network cannot lean on a band the synthetic timbres always fill.

The evaluation sets (GTZAN, Ballroom, Hainsworth, SIMAC, SMC, Frets on Fire) are never read
except the dev excerpts for validation.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "train"))

import corpus  # noqa: E402 (train/corpus.py: torch-free helpers)

from featherbeat.analysis.rhythm import learned  # noqa: E402

ONSET_RATE = 22050 / 256
FPS = learned.frame_rate(ONSET_RATE)
T0 = learned.frame_time_offset(ONSET_RATE)
BPM_BINS = learned.bpm_bins()
CHANNELS = learned.CHANNELS
DILATIONS = learned.DILATIONS


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # The architecture is learned.py's (CHANNELS, DILATIONS): the numpy inference reads it.
        self.inp = nn.Conv1d(learned.N_INPUT, CHANNELS, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Conv1d(CHANNELS, CHANNELS, 3, dilation=d, padding=d) for d in DILATIONS
        )
        self.drop = nn.Dropout(0.1)
        self.beat = nn.Conv1d(CHANNELS, 2, 1)
        self.tempo = nn.Conv1d(CHANNELS, BPM_BINS.size, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.elu(self.inp(x))
        for conv in self.blocks:
            h = h + self.drop(F.elu(conv(h)))
        return self.beat(h), self.tempo(h)


def load_init(net: Net, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Warm start from exported weights (same architecture); returns their normalisation."""
    z = np.load(path)
    sd = {
        "inp.weight": z["inp_w"],
        "inp.bias": z["inp_b"],
        "beat.weight": z["beat_w"],
        "beat.bias": z["beat_b"],
        "tempo.weight": z["tempo_w"],
        "tempo.bias": z["tempo_b"],
    }
    for i in range(len(DILATIONS)):
        sd[f"blocks.{i}.weight"] = z[f"block{i}_w"]
        sd[f"blocks.{i}.bias"] = z[f"block{i}_b"]
    net.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in sd.items()})
    return z["norm_mean"].astype(np.float32), z["norm_std"].astype(np.float32)


def export(net: Net, mean: np.ndarray, std: np.ndarray, path: Path, info: dict) -> None:
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    arrays = {
        "norm_mean": mean.astype(np.float32),
        "norm_std": std.astype(np.float32),
        "inp_w": sd["inp.weight"],
        "inp_b": sd["inp.bias"],
        "beat_w": sd["beat.weight"],
        "beat_b": sd["beat.bias"],
        "tempo_w": sd["tempo.weight"],
        "tempo_b": sd["tempo.bias"],
        "dilations": np.array(DILATIONS, dtype=np.int32),
        "bpm_bins": BPM_BINS.astype(np.float32),
        "info": np.array(json.dumps(info)),
    }
    for i in range(len(DILATIONS)):
        arrays[f"block{i}_w"] = sd[f"blocks.{i}.weight"]
        arrays[f"block{i}_b"] = sd[f"blocks.{i}.bias"]
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


# ---- data -----------------------------------------------------------------------------------
def load_shards(corpora: list[Path], seen: set[str], data: list[dict]) -> None:
    files = sorted(f for corpus in corpora for f in glob.glob(str(corpus / "shard_*.npz")))
    for f in files:
        if f in seen:
            continue
        try:
            z = np.load(f)
            for k in range(int(z["n"])):
                x = z[f"{k}_x"].astype(np.float32)
                beats = z[f"{k}_beats"].astype(np.float64)
                pos = z[f"{k}_pos"]
                d = targets(x, beats, pos)
                # Pseudo-labelled recordings (train/selftrain_corpus.py) say so; real
                # compositions (train/midi_corpus.py) carry their piece's name.
                d["pseudo"] = bool(z[f"{k}_pseudo"]) if f"{k}_pseudo" in z.files else False
                d["real"] = f"{k}_source" in z.files and not d["pseudo"]
                # A pseudo-labelled window whose downbeat readings disagreed has no bar
                # labels: its downbeat loss is masked (older shards: always trusted).
                d["down_ok"] = bool(z[f"{k}_down_ok"]) if f"{k}_down_ok" in z.files else True
                data.append(d)
            seen.add(f)
        except (OSError, ValueError, KeyError) as exc:  # a shard being written: next time
            print(f"skip {f}: {exc}", flush=True)


def targets(x: np.ndarray, beats: np.ndarray, pos: np.ndarray) -> dict:
    return {"x": x, "beats": beats, "pos": pos}


def _frame_targets(n: int, idx: np.ndarray) -> np.ndarray:
    out = np.zeros(n, np.float32)
    for off, val in ((-1, 0.5), (1, 0.5), (0, 1.0)):
        j = idx + off
        j = j[(j >= 0) & (j < n)]
        out[j] = np.maximum(out[j], val)
    return out


def mask_bands(x: np.ndarray, rng: np.random.Generator) -> None:
    """Blank one or two random runs of 2-6 band groups in place (normalised: 0 is the mean)."""
    g = learned.N_GROUPS
    for _ in range(int(rng.integers(1, 3))):
        w = int(rng.integers(2, 7))
        b0 = int(rng.integers(0, g - w + 1))
        x[:, b0 : b0 + w] = 0.0
        x[:, g + b0 : g + b0 + w] = 0.0


def batch(
    data: list[dict],
    rng: np.random.Generator,
    size: int,
    crop: int,
    stretch: float = 0.5,
    real: list[int] | None = None,
    real_share: float = 0.0,
    band_mask: float = 0.0,
    pseudo: list[int] | None = None,
    pseudo_share: float = 0.0,
):
    """Random crops; half of them time-stretched by 0.84..1.19 (interpolated frames, beat
    times scaled): more tempi than the corpus has, at no rendering cost. A share of the crops
    comes from the real compositions (`real`: their indices), however few they are, and a
    share from the pseudo-labelled recordings (`pseudo`); the rest from the whole corpus
    (the pseudo-labelled windows only when pseudo_share is 0). Also returns each crop's
    downbeat-loss mask (0 where a pseudo-labelled window has no trusted bar labels)."""
    xs, ys, ts, ms, dms = [], [], [], [], []
    for _ in range(size):
        # No draw without a list to choose from: the old corpora's crops stay the same.
        u = rng.random() if (real or pseudo) else 1.0
        if pseudo and u < pseudo_share:
            d = data[pseudo[int(rng.integers(0, len(pseudo)))]]
        elif real and u < pseudo_share + real_share:
            d = data[real[int(rng.integers(0, len(real)))]]
        else:
            d = data[int(rng.integers(0, len(data)))]
            while pseudo and pseudo_share > 0 and d.get("pseudo", False):
                d = data[int(rng.integers(0, len(data)))]
        n = d["x"].shape[0]
        f = (
            float(np.exp(rng.uniform(np.log(0.84), np.log(1.19))))
            if rng.random() < stretch
            else 1.0
        )
        span = crop * f  # source frames covered by the crop
        s0 = float(rng.uniform(0, max(1.0, n - span)))
        src = s0 + np.arange(crop) * f
        i0 = np.clip(np.floor(src).astype(np.int64), 0, n - 1)
        i1 = np.clip(i0 + 1, 0, n - 1)
        frac = (src - np.floor(src))[:, None].astype(np.float32)
        x = d["x"][i0] * (1 - frac) + d["x"][i1] * frac
        x[src > n - 1] = d["x"][:, :].min(axis=0) if n else 0.0
        if band_mask > 0 and rng.random() < band_mask:
            mask_bands(x, rng)
        # Beat times -> crop frames: source frame = (t - T0) * FPS; crop frame = (src - s0) / f.
        bf = ((d["beats"] - T0) * FPS - s0) / f
        idx = np.round(bf).astype(np.int64)
        beat = _frame_targets(crop, idx)
        down = _frame_targets(crop, idx[d["pos"] == 1])
        inside = (bf >= -crop * 0.1) & (bf <= crop * 1.1)
        tempo = 0.0
        if inside.sum() >= 4:
            ibi = np.diff(bf[inside]) / FPS  # seconds in the stretched crop
            tempo = float(60.0 / np.median(ibi))
        xs.append(x)
        ys.append(np.stack([beat, down]))
        ts.append(tempo if 30 < tempo < 300 else 0.0)
        ms.append(1.0 if ts[-1] > 0 else 0.0)
        dms.append(1.0 if d.get("down_ok", True) else 0.0)
    return (
        torch.from_numpy(np.stack(xs).astype(np.float32)).transpose(1, 2),
        torch.from_numpy(np.stack(ys)),
        np.array(ts),
        torch.tensor(ms),
        torch.tensor(dms),
    )


def tempo_target(bpms: np.ndarray) -> torch.Tensor:
    lb = np.log(BPM_BINS)
    out = np.zeros((bpms.size, lb.size), np.float32)
    for i, b in enumerate(bpms):
        if b > 0:
            g = np.exp(-0.5 * ((lb - np.log(b)) / (np.log(2) / 48)) ** 2)
            out[i] = g / g.sum()
    return torch.from_numpy(out)


# ---- validation -----------------------------------------------------------------------------
def dev_set(dev: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from featherbeat.analysis.decode import open_audio

    items = []
    for flac in sorted(dev.glob("*.flac")):
        ann = np.loadtxt(flac.with_suffix(".beats"), ndmin=2)
        with open_audio(str(flac)) as st:
            y = np.concatenate(list(st))
        items.append((flac.stem, corpus.features(y.astype(np.float64)), ann))
    return items


def f_measure(ref: np.ndarray, est: np.ndarray, win: float = 0.07) -> float:
    """Beat F-measure within +-win, the first 5 s skipped as mir_eval does."""
    return corpus.beat_f_measure(ref[ref >= 5.0], est[est >= 5.0], win)


def validate(net: Net, mean: np.ndarray, std: np.ndarray, items: list) -> dict:
    from featherbeat.analysis.rhythm.learned import decode

    net.eval()
    fs, fds, acc1, acc2 = [], [], [], []
    with torch.no_grad():
        for _, x, ann in items:
            xx = torch.from_numpy(((x - mean) / std).T[None].astype(np.float32))
            b, t = net(xx)
            act = torch.sigmoid(b[0]).numpy().T
            tempo_logits = t[0].mean(dim=1).numpy()
            res = decode(act[:, 0], act[:, 1], tempo_logits, FPS, T0)
            fs.append(f_measure(ann[:, 0], res.beats))
            if ann.shape[1] > 1:
                fds.append(f_measure(ann[ann[:, 1] == 1, 0], res.downbeats))
            ref = 60.0 / np.median(np.diff(ann[:, 0]))
            acc1.append(abs(res.tempo - ref) <= 0.04 * ref)
            acc2.append(any(abs(res.tempo * k - ref) <= 0.04 * ref for k in (1, 2, 0.5, 3, 1 / 3)))
    net.train()
    return {
        "beat_f": float(np.mean(fs)),
        "down_f": float(np.mean(fds)),
        "acc1": float(np.mean(acc1)),
        "acc2": float(np.mean(acc2)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--corpus",
        nargs="+",
        default=["train/out/corpus"],
        help="one or more folders of shard_*.npz (e.g. the first corpus and a newer one)",
    )
    ap.add_argument("--out", default="train/out")
    ap.add_argument("--dev", default=str(ROOT.parent / "shared/eval/dev"))
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=768, help="frames (17.8 s): most see +-RECEPTIVE")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--init", default="", help="warm start from these exported weights")
    ap.add_argument("--down-weight", type=float, default=2.0, help="downbeat loss weight")
    ap.add_argument("--real-share", type=float, default=0.35, help="share of real-MIDI crops")
    ap.add_argument("--val-every", type=int, default=400)
    ap.add_argument("--min-clips", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ema", type=float, default=0.0, help="EMA decay of the weights (0: off)")
    ap.add_argument("--band-mask", type=float, default=0.0, help="share of band-masked crops")
    ap.add_argument(
        "--pseudo-share",
        type=float,
        default=0.0,
        help="share of crops from pseudo-labelled recordings (train/selftrain_corpus.py)",
    )
    ap.add_argument("--keep-all", action="store_true", help="export every validated step")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with open(out / "train.log", "a") as log:
            log.write(line + "\n")

    corpus = [Path(c) for c in args.corpus]
    seen: set[str] = set()
    data: list[dict] = []
    while True:
        load_shards(corpus, seen, data)
        if len(data) >= args.min_clips:
            break
        time.sleep(20)
    net = Net()
    if args.init:
        mean, std = load_init(net, Path(args.init))
    else:
        stack = np.concatenate([d["x"] for d in data[:400]])
        mean, std = stack.mean(axis=0), stack.std(axis=0) + 1e-3
    for d in data:
        d["x"] = (d["x"] - mean) / std
    n_norm = len(data)
    dev = Path(args.dev)
    items = dev_set(dev) if dev.is_dir() else []
    say(
        f"start: {len(data)} clips, {len(items)} dev clips, "
        f"{sum(p.numel() for p in net.parameters())} parameters, init {args.init or 'random'}, "
        f"{json.dumps(vars(args))}"
    )
    best = -1.0
    if args.init and items:
        # The warm start is the score to beat: a run that never improves on it on dev exports
        # the initial weights unchanged.
        res0 = validate(net, mean, std, items)
        best = (res0["beat_f"] + res0["acc1"] + res0["down_f"]) / 3
        export(
            net, mean, std, out / "rhythm_model.npz", {"step": 0, "init": args.init, "dev": res0}
        )
        say(f"dev of the initial weights: {json.dumps(res0)}")
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    ema: Net | None = None
    if args.ema > 0:
        ema = Net()
        ema.load_state_dict(net.state_dict())
        ema.eval()
    t_start = time.time()
    budget = args.minutes * 60
    step = 0
    run_loss = np.zeros(3)
    real: list[int] = []
    pseudo: list[int] = []
    while step < args.steps and time.time() - t_start < budget:
        frac = min(1.0, max(step / args.steps, (time.time() - t_start) / budget))
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        if step % 50 == 0:  # new shards arrive at validations; the index lists follow
            real = [i for i, d in enumerate(data) if d["real"]]
            pseudo = [i for i, d in enumerate(data) if d["pseudo"]]
        x, y, tempos, mask, down_mask = batch(
            data,
            rng,
            args.batch,
            args.crop,
            0.5,
            real,
            args.real_share,
            args.band_mask,
            pseudo,
            args.pseudo_share,
        )
        logits, tlog = net(x)
        l_beat = F.binary_cross_entropy_with_logits(logits[:, 0], y[:, 0])
        if bool((down_mask > 0).all()):  # the old corpora: bit for bit the old loss
            l_down = F.binary_cross_entropy_with_logits(logits[:, 1], y[:, 1])
        else:  # crops without trusted bar labels do not count
            per_crop = F.binary_cross_entropy_with_logits(
                logits[:, 1], y[:, 1], reduction="none"
            ).mean(dim=1)
            l_down = (per_crop * down_mask).sum() / down_mask.sum().clamp(min=1)
        logp = F.log_softmax(tlog.mean(dim=2), dim=1)
        l_tempo = -((tempo_target(tempos) * logp).sum(dim=1) * mask).sum() / mask.sum().clamp(min=1)
        loss = l_beat + args.down_weight * l_down + 0.1 * l_tempo
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for pe, pn in zip(ema.parameters(), net.parameters(), strict=True):
                    pe.mul_(args.ema).add_(pn, alpha=1.0 - args.ema)
        run_loss = 0.98 * run_loss + 0.02 * np.array([l_beat.item(), l_down.item(), l_tempo.item()])
        step += 1
        if step % args.val_every == 0:
            n_before = len(data)
            load_shards(corpus, seen, data)
            for d in data[n_before:]:
                d["x"] = (d["x"] - mean) / std
            info = {
                "step": step,
                "clips": len(data),
                "minutes": (time.time() - t_start) / 60,
                "seed": args.seed,
                "real_clips": len(real),
                "pseudo_clips": len(pseudo),
            }
            models = [("", net)] + ([("_ema", ema)] if ema is not None else [])
            for suffix, model in models:
                res = validate(model, mean, std, items) if items else {}
                score = (res.get("beat_f", 0) + res.get("acc1", 0) + res.get("down_f", 0)) / 3
                tag = ""
                info_m = {**info, "ema": args.ema if suffix else 0.0, "dev": res}
                if score > best or not items:
                    best = score
                    export(model, mean, std, out / "rhythm_model.npz", info_m)
                    tag = " *best*"
                if args.keep_all:
                    export(model, mean, std, out / f"step{step}{suffix}.npz", info_m)
                if not suffix:
                    export(model, mean, std, out / "rhythm_model_last.npz", info_m)
                say(
                    f"step {step}{suffix} clips {len(data)} loss {run_loss.round(4).tolist()} "
                    f"lr {opt.param_groups[0]['lr']:.5f} dev {json.dumps(res)}{tag}"
                )
    say(
        f"done: {step} steps in {(time.time() - t_start) / 60:.1f} min, best {best:.4f}; "
        f"normalised on the first {n_norm} clips"
    )


if __name__ == "__main__":
    main()
