"""CPU of the whole `featherbeat analyze` process against `ffmpeg` decoding the same file, per tracker.

    .venv/bin/python bench/cost_ratio.py --workdir /tmp/fb-bench --minutes 3 60 --repeat 3
    .venv/bin/python bench/cost_ratio.py --minutes 3 --rhythm dsp --other-src /tmp/base/src

The issue-wide cost bar: the whole analyze process on a 3-minute MP3 takes <= 3x the CPU of
``ffmpeg -i FILE -ac 1 -ar 22050 -f f32le /dev/null`` (decoding to what we analyse), both
measured in one run, and peak memory <= 60 MB (3 min) / <= 100 MB (60 min). Each command runs
in a fresh process; CPU = user + sys from os.wait4 (start-up included), peak = VmHWM (the
featherbeat process, via bench/memory_speed.py's sitecustomize hook). The inputs are
bench/memory_speed.py's (built there, or reused from --workdir). Runs are interleaved (ffmpeg,
ours, other, ffmpeg, ...) so a busy machine slows all of them alike; the best of --repeat is
kept, and beside it the ratio of the medians (ours over ffmpeg's). ``--other-src`` runs the
same console script with PYTHONPATH at another checkout's ``src`` (e.g. ``git archive main src
| tar -x -C /tmp/base``): a before/after in one run.

Every tree runs from bytecode, as an installed package does (pip compiles the modules when it
installs them): the children get PYTHONPYCACHEPREFIX=<workdir>/pycache (without
PYTHONDONTWRITEBYTECODE) and one unmeasured warm-up run per tree fills it. Before 2026-12-07 the
children inherited PYTHONDONTWRITEBYTECODE=1 from the sessions' environment and compiled every
featherbeat module without a valid __pycache__ from source in every run, ~0.05 CPU-s counted
as analysis cost (how much depended on which __pycache__ folders happened to exist).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import memory_speed as ms  # noqa: E402

HERE_SRC = Path(__file__).resolve().parent.parent / "src"


def ffmpeg_cpu(path: Path) -> float:
    argv = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-ac", "1", "-ar", "22050"]
    proc = subprocess.Popen([*argv, "-f", "f32le", "-y", "/dev/null"])
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[3, 60])
    # "default": no --rhythm flag (what a user gets; also for trees older than the flag).
    ap.add_argument("--rhythm", default="learned,dsp")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/fb-bench")
    ap.add_argument("--other-src", type=Path, help="another checkout's src/ to run beside ours")
    ap.add_argument(
        "--from-source",
        action="store_true",
        help="as before 2026-12-07: keep the inherited PYTHONDONTWRITEBYTECODE, no bytecode cache",
    )
    args = ap.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found (apt-get install ffmpeg)", file=sys.stderr)
        return 2
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    hook = work / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(ms._SITECUSTOMIZE)
    trees = {"this tree": HERE_SRC}
    if args.other_src:
        trees[str(args.other_src)] = args.other_src

    def env_for(src: Path) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), str(src)]))
        if args.from_source:
            return env
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # The cache mirrors each source's absolute path, so the trees never share an entry.
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        return env

    rows = [
        "| input | tree | tracker | featherbeat CPU | ffmpeg decode CPU | ratio | median ratio "
        "| peak memory |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    t0 = time.time()
    for minutes in args.minutes:
        path = ms.input_path(minutes, work)
        if not path.exists():
            path = ms.build_mp3(minutes, work)
        systems = [(tree, mode) for tree in trees for mode in args.rhythm.split(",")]
        ff: list[float] = []
        runs: dict[tuple[str, str], list[ms.Run]] = {s: [] for s in systems}

        def command(mode: str, path: Path = path) -> list[str]:
            cmd = [str(ms.FEATHERBEAT), "analyze", str(path), "-o", str(work / "out.json")]
            return cmd + ["--quiet"] + ([] if mode == "default" else ["--rhythm", mode])

        for tree, mode in systems:  # warm-up: fills each tree's bytecode cache, not counted
            ms.measure("featherbeat", minutes, command(mode), env_for(trees[tree]))
        for _ in range(args.repeat):
            ff.append(ffmpeg_cpu(path))
            for tree, mode in systems:
                runs[(tree, mode)].append(
                    ms.measure("featherbeat", minutes, command(mode), env_for(trees[tree]))
                )
        base = min(ff)
        base_median = statistics.median(ff)
        for (tree, mode), results in runs.items():
            if not all(r.ok for r in results):
                failed = next(r for r in results if not r.ok)
                print(f"{tree} {mode}: failed: {failed.note}", file=sys.stderr)
                continue
            best = min(results, key=lambda r: r.cpu_s)
            median = statistics.median(r.cpu_s for r in results)
            rows.append(
                f"| {minutes:g} min MP3 | {tree} | {mode} | {best.cpu_s:.2f} s | {base:.2f} s | "
                f"{best.cpu_s / base:.2f}x | {median / base_median:.2f}x | {best.peak_mb:.1f} MB |"
            )
            print(rows[-1], file=sys.stderr)
    print("\n".join(rows))
    print(
        f"best of {args.repeat} (median ratio: median of ours over median of ffmpeg's, less"
        f" sensitive to one lucky quiet moment on a busy machine); wall {time.time() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
