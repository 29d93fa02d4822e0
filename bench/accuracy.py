"""Rhythm accuracy on ../shared/eval/dev with mir_eval, featherbeat and peers side by side.

    .venv/bin/python bench/accuracy.py                       # the product: featherbeat.analyze()
    .venv/bin/python bench/accuracy.py --rhythm-only         # soundfile+soxr -> onset -> rhythm
    .venv/bin/python bench/accuracy.py --librosa-python /tmp/peer-librosa/bin/python \\
        --essentia-python /tmp/peer-essentia/bin/python --write docs/benchmarks/accuracy.md
    .venv/bin/python bench/accuracy.py --save /tmp/before.json      # per-clip scores, then
    .venv/bin/python bench/accuracy.py --compare /tmp/before.json   # after a change: paired test
    .venv/bin/python bench/accuracy.py --cached-curves --save ...   # rhythm stage only, seconds
    .venv/bin/python bench/accuracy.py --oracle a.json b.json c.json  # best of saved runs per clip

Metrics (per genre and overall, means over files): beat F-measure, CMLt, AMLt
(mir_eval.beat.evaluate, beats before 5 s ignored), downbeat F-measure (same, on the rows with
position 1), tempo Acc1 (within 4 % of the reference) and Acc2 (also x2, x1/2, x3, x1/3). The
reference tempo is 60 / median inter-beat interval of the annotation. Peers run as
subprocesses of their own venvs (bench/peers/*.py; set-up in docs/benchmarks/accuracy.md,
e.g. `python3 -m venv /tmp/peer-librosa && /tmp/peer-librosa/bin/pip install librosa soundfile`);
their results are cached under
/tmp/featherbeat-bench-cache because they take minutes and do not change.

Why --compare: on 63 clips one clip flipping is ~0.016 of a mean, and measured parameter
sweeps move beat F by +-0.01 with no trend, so a mean alone cannot tell a gain from noise. The
paired comparison counts the clips that got better and worse and gives the two-sided sign-test
p-value (ties dropped): a change that helps music in general should win on many clips, not
flip two.
"""

from __future__ import annotations

import os

# One BLAS thread, set before numpy loads: otherwise idle BLAS threads spin and the CPU time
# counted for the analysis doubles (measured on the onset filterbank before it left BLAS).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import mir_eval
import numpy as np

from featherbeat.testing.peers import run_peer_script  # noqa: E402

if TYPE_CHECKING:
    from featherbeat.analysis.profile import Rhythm

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "eval" / "dev"
CACHE = Path("/tmp/featherbeat-bench-cache")
METRICS = ("F", "CMLt", "AMLt", "DbF", "Acc1", "Acc2")
BARS = (
    "Team bars: F >= 0.85, CMLt >= 0.72, AMLt >= 0.90, DbF >= 0.60, Acc1 >= 0.80, Acc2 >= 0.95. "
    "DbF = downbeat F-measure (mir_eval.beat.f_measure on the position-1 beats, first 5 s "
    "ignored); the CPU figure counts the whole in-process analysis (all stages, imports excluded)."
)


def load_reference(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    ann = np.loadtxt(path, ndmin=2)
    beats = ann[:, 0]
    down = ann[ann[:, 1] == 1, 0] if ann.shape[1] > 1 else None
    return beats, down


def tempo_accuracy(est: float, ref: float) -> tuple[float, float]:
    if est <= 0 or ref <= 0:
        return 0.0, 0.0
    acc1 = abs(est - ref) <= 0.04 * ref
    acc2 = any(abs(est - f * ref) <= 0.04 * f * ref for f in (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0))
    return float(acc1), float(acc2)


def score(ref_beats: np.ndarray, ref_down: np.ndarray | None, est: dict) -> dict[str, float]:
    beats = np.asarray(est["beats"], dtype=np.float64)
    m = mir_eval.beat.evaluate(ref_beats, beats)
    ref_tempo = 60.0 / float(np.median(np.diff(ref_beats)))
    acc1, acc2 = tempo_accuracy(float(est["tempo"]), ref_tempo)
    out = {
        "F": m["F-measure"],
        "CMLt": m["Correct Metric Level Total"],
        "AMLt": m["Any Metric Level Total"],
        "Acc1": acc1,
        "Acc2": acc2,
        "ref_tempo": ref_tempo,
        "tempo": float(est["tempo"]),
    }
    if ref_down is not None and est.get("downbeats") is not None:
        out["DbF"] = mir_eval.beat.f_measure(
            mir_eval.beat.trim_beats(ref_down),
            mir_eval.beat.trim_beats(np.asarray(est["downbeats"], dtype=np.float64)),
        )
    return out


def sign_test(wins: int, losses: int) -> float:
    """Two-sided sign-test p-value for ``wins`` vs ``losses`` paired outcomes (ties excluded)."""
    if wins < 0 or losses < 0:
        raise ValueError("counts must be >= 0")
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired(
    before: dict[str, dict[str, float]],
    after: dict[str, dict[str, float]],
    metric: str,
    tol: float = 1e-6,
) -> dict[str, float]:
    """Paired comparison of one metric over the files both runs scored.

    Returns the two means, how many files got better / worse by more than ``tol``, and the
    sign-test p-value of that split.
    """
    files = [f for f in before if f in after and metric in before[f] and metric in after[f]]
    if not files:
        return {"n": 0, "before": math.nan, "after": math.nan, "better": 0, "worse": 0, "p": 1.0}
    a = np.array([before[f][metric] for f in files], dtype=np.float64)
    b = np.array([after[f][metric] for f in files], dtype=np.float64)
    better, worse = int(np.sum(b > a + tol)), int(np.sum(b < a - tol))
    return {
        "n": len(files),
        "before": float(a.mean()),
        "after": float(b.mean()),
        "better": better,
        "worse": worse,
        "p": sign_test(better, worse),
    }


def compare_text(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> str:
    lines = ["| metric | n | before | after | clips better | clips worse | sign-test p |"]
    lines.append("|---|---|---|---|---|---|---|")
    for k in METRICS:
        c = paired(before, after, k)
        lines.append(
            f"| {k} | {c['n']} | {c['before']:.3f} | {c['after']:.3f} | {c['better']} "
            f"| {c['worse']} | {c['p']:.2f} |"
        )
    return "\n".join(lines)


def oracle(saved: list[dict[str, dict[str, float]]]) -> dict[str, tuple[float, int]]:
    """What a perfect per-clip choice among several runs would score: for each metric, the mean
    over the clips any run scored of the best run's value there, and how many clips that is.
    An upper bound for any selector of those readings (rhythm.md section 9)."""
    out: dict[str, tuple[float, int]] = {}
    for k in METRICS:
        best = []
        for clip in set().union(*saved):
            vals = [
                r[clip][k] for r in saved if clip in r and math.isfinite(r[clip].get(k, math.nan))
            ]
            if vals:
                best.append(max(vals))
        out[k] = (float(np.mean(best)) if best else math.nan, len(best))
    return out


def _rhythm_only(path: str) -> dict:
    import soundfile as sf
    import soxr

    from featherbeat.analysis.features.onset import onset_strength
    from featherbeat.analysis.profile import ANALYSIS_SAMPLE_RATE, Curves
    from featherbeat.analysis.rhythm import track

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr != ANALYSIS_SAMPLE_RATE:
        y = soxr.resample(y, sr, ANALYSIS_SAMPLE_RATE).astype(np.float32)
    t = time.process_time()
    onset, low, rate = onset_strength(y, ANALYSIS_SAMPLE_RATE)
    r = track(Curves(onset=onset, onset_rate=rate, onset_low=low))
    return {"r": r, "cpu": time.process_time() - t}


def _reading(path: str, r: Rhythm, cpu: float) -> dict:
    """What a run reports for one clip: its rhythm as the scoring reads it, and the CPU."""
    return {
        "file": path,
        "tempo": r.tempo,
        "beats": r.beats.tolist(),
        "downbeats": r.downbeats.tolist(),
        "meter": r.time_signature,
        "cpu": cpu,
    }


def run_featherbeat(path: str, rhythm_only: bool, mode: str | None = None) -> dict:
    if rhythm_only:
        res = _rhythm_only(path)
        r, cpu = res["r"], res["cpu"]
    else:
        import featherbeat

        t = time.process_time()
        r = featherbeat.analyze(path, rhythm=mode).rhythm
        cpu = time.process_time() - t
    return _reading(path, r, cpu)


def run_cached(path: str, mode: str | None, cache: str) -> dict:
    """The rhythm stage alone (``rhythm.track`` and the bar intervals, as the pipeline calls
    them) on the curves of ``path`` cached by bench/fusion_weights.py in ``cache``: the same
    beats, tempo and downbeats as ``featherbeat.analyze`` gives for them, in ~0.05 s a clip."""
    sys.path.insert(0, str(ROOT / "bench"))
    from fusion_weights import load_curves

    from featherbeat.analysis import rhythm
    from featherbeat.analysis.rhythm import learned
    from featherbeat.analysis.rhythm.bars import with_intervals

    curves, duration = load_curves(Path(cache) / f"{Path(path).stem}.npz")
    t = time.process_time()
    r = with_intervals(rhythm.track(curves, mode=learned.resolve_mode(mode)), duration)
    cpu = time.process_time() - t
    return _reading(path, r, cpu)


def fill_curve_cache(files: list[str], jobs: int) -> Path:
    """The curves of ``files`` cached by bench/fusion_weights.py for the current weights file
    (computed by ``analyze`` for the clips not there yet); returns the cache directory."""
    sys.path.insert(0, str(ROOT / "bench"))
    import fusion_weights

    cache = fusion_weights.CACHE / fusion_weights.weights_stamp()
    cache.mkdir(parents=True, exist_ok=True)
    todo = [(f, str(cache / f"{Path(f).stem}.npz")) for f in files]
    with multiprocessing.Pool(jobs) as pool:
        pool.map(fusion_weights.cache_curves, todo)
    return cache


def run_peer(name: str, python: str, files: list[str]) -> dict[str, dict]:
    script = ROOT / "bench" / "peers" / f"{name}_beats.py"
    return run_peer_script(python, script, files, CACHE / f"{name}.json")


def table(rows: dict[str, dict[str, list[dict]]], systems: list[str]) -> str:
    """Markdown table: one row per genre and system, columns = metrics (means)."""
    lines = [
        "| genre | n | system | " + " | ".join(METRICS) + " |",
        "|---|---|---|" + "---|" * len(METRICS),
    ]
    for genre in [*sorted(g for g in rows if g != "ALL"), "ALL"]:
        for sysname in systems:
            res = rows[genre].get(sysname, [])
            if not res:
                continue
            cells = []
            for k in METRICS:
                vals = [r[k] for r in res if k in r]
                cells.append(f"{np.mean(vals):.3f}" if vals else "n/a")
            g = f"**{genre}**" if genre == "ALL" else genre
            lines.append(f"| {g} | {len(res)} | {sysname} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=DEV)
    ap.add_argument(
        "--rhythm-only",
        action="store_true",
        help="decode with soundfile+soxr and run onset+rhythm only",
    )
    ap.add_argument("--librosa-python", help="python of a venv with librosa")
    ap.add_argument("--essentia-python", help="python of a venv with essentia")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="first N files only (quick look)")
    ap.add_argument(
        "--write", type=Path, help="write the table (with the command) to this markdown file"
    )
    ap.add_argument("--per-file", action="store_true")
    ap.add_argument(
        "--rhythm",
        help="comma-separated trackers to run side by side (fused,learned,committee,dsp); default: the "
        "product's default; --save/--compare/--per-file apply to the first",
    )
    ap.add_argument(
        "--cached-curves",
        action="store_true",
        help="run only the rhythm stage on the curves bench/fusion_weights.py caches (made "
        "first where missing); the cache is keyed by the weights file alone, so delete it "
        "after changing any stage before rhythm; CPU is the rhythm stage's",
    )
    ap.add_argument("--save", type=Path, help="write featherbeat's per-clip scores (JSON) here")
    ap.add_argument(
        "--compare", type=Path, help="per-clip scores saved by --save: print a paired comparison"
    )
    ap.add_argument(
        "--oracle",
        type=Path,
        nargs="+",
        help="per-clip scores of several runs saved by --save: print the best-per-clip means "
        "(an upper bound for choosing among those readings) and run nothing",
    )
    args = ap.parse_args(argv)
    if args.oracle:
        best = oracle([json.loads(p.read_text()) for p in args.oracle])
        print(" | ".join(f"{k} {v:.3f} (n {n})" for k, (v, n) in best.items()))
        return 0
    if not (args.dev / "manifest.csv").exists():
        print(f"no dev set at {args.dev}", file=sys.stderr)
        return 2
    with open(args.dev / "manifest.csv") as fh:
        manifest = list(csv.DictReader(fh))
    if args.limit:
        manifest = manifest[: args.limit]
    files = [str(args.dev / m["audio_file"]) for m in manifest]
    genre = {
        str(args.dev / m["audio_file"]): m["group"] if m["group"] != "gtzan" else m["genre"]
        for m in manifest
    }

    modes: list[str | None] = [m.strip() for m in args.rhythm.split(",")] if args.rhythm else [None]
    suffix = (
        " (rhythm-only)" if args.rhythm_only else " (cached curves)" if args.cached_curves else ""
    )
    cache = fill_curve_cache(files, min(2, max(1, args.jobs))) if args.cached_curves else None
    names = [f"featherbeat-{m}{suffix}" if m else f"featherbeat{suffix}" for m in modes]
    ours = names[0]
    results: dict[str, dict[str, dict]] = {}
    cpu_by: dict[str, list[float]] = {}
    t0 = time.time()
    with multiprocessing.Pool(min(2, max(1, args.jobs))) as pool:
        for name, mode in zip(names, modes, strict=True):
            if cache is not None:
                est = pool.starmap(run_cached, [(f, mode, str(cache)) for f in files])
            else:
                est = pool.starmap(run_featherbeat, [(f, args.rhythm_only, mode) for f in files])
            results[name] = {e["file"]: e for e in est}
            cpu_by[name] = [e["cpu"] for e in est]
    wall = time.time() - t0
    if args.librosa_python:
        results["librosa"] = run_peer("librosa", args.librosa_python, files)
    if args.essentia_python:
        results["essentia"] = run_peer("essentia", args.essentia_python, files)

    rows: dict[str, dict[str, list[dict]]] = {}
    for f in files:
        ref_beats, ref_down = load_reference(Path(f).with_suffix(".beats"))
        for sysname, res in results.items():
            if f not in res:
                continue
            s = score(ref_beats, ref_down, res[f])
            s["file"] = Path(f).stem
            for g in (genre[f], "ALL"):
                rows.setdefault(g, {}).setdefault(sysname, []).append(s)
            if args.per_file and sysname == ours:
                print(
                    f"{s['file']:40s} F={s['F']:.2f} CMLt={s['CMLt']:.2f} AMLt={s['AMLt']:.2f} "
                    f"DbF={s.get('DbF', float('nan')):.2f} tempo={s['tempo']:.1f} ref={s['ref_tempo']:.1f} "
                    f"meter={res[f].get('meter', '')}"
                )
    systems = [*names, *(k for k in results if k not in names)]
    text = table(rows, systems)
    dur = sum(float(m["duration_s"]) for m in manifest)
    foot = (
        "; ".join(
            f"{name} CPU (analysis only, in-process): {sum(cpu):.2f} s for {len(cpu)} files "
            f"(~{sum(cpu) / dur * 180:.3f} s per 3 minutes of audio)"
            for name, cpu in cpu_by.items()
        )
        + f"; wall {wall:.1f} s"
    )

    print(text)
    print(foot)
    mine = {
        s["file"]: {k: float(v) for k, v in s.items() if k in METRICS}
        for s in rows.get("ALL", {}).get(ours, [])
    }
    if args.save:
        args.save.write_text(json.dumps(mine, indent=1))
    if args.compare:
        print(compare_text(json.loads(args.compare.read_text()), mine))
    if args.write:
        cmd = "python bench/accuracy.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:])
        )
        body = (
            f"# Rhythm accuracy on ../shared/eval/dev\n\nCommand: `{cmd}`  \n"
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n{text}\n\n{foot}\n\n"
            f"{BARS}\n"
        )
        old = args.write.read_text() if args.write.exists() else ""
        marker = "\n## What was tried"
        tail = old[old.index(marker) :] if marker in old else ""
        args.write.write_text(body + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
