"""Peak memory and CPU time of `featherbeat analyze` on 3-, 30- and 60-minute MP3s, librosa beside it.

    .venv/bin/python bench/memory_speed.py [--minutes 3 30 60] [--librosa-python PY]
                                           [--librosa-minutes 3] [--write-doc]

What is measured, per file, each in a fresh process:
- featherbeat: the real console script ``featherbeat analyze FILE -o OUT --quiet``. CPU seconds
  are user+sys of that whole process (interpreter start-up and imports included), from
  ``os.wait4``. Peak memory is VmHWM of that process, read from /proc/self/status at exit by a
  ``sitecustomize`` hook put on PYTHONPATH for the run (not ru_maxrss: VmHWM is what the
  service's watchdog reads).
- librosa (reference): ``librosa.load(FILE, sr=22050)`` + ``librosa.beat.beat_track`` in the
  throwaway venv given by ``--librosa-python`` (default /tmp/peer-librosa/bin/python), measured
  the same way. Numba's JIT compilation is part of what a user pays, so it is counted.

The inputs are built at bench time outside the repository (a temp folder): the tracks of
../shared/eval/unannotated/ decoded, resampled to 44.1 kHz stereo and concatenated (looping)
to the wanted length, written block by block as MP3 with soundfile. Nothing is committed.
Bars: <= 80 MB for 3 minutes, <= 100 MB for 60 minutes, <= 1 CPU-second for 3 minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNANNOTATED = ROOT.parent / "shared" / "eval" / "unannotated"
DOC = ROOT / "docs" / "benchmarks" / "memory_speed.md"
FEATHERBEAT = Path(sys.executable).parent / "featherbeat"
RATE = 44100
BARS = {3: (80, 1.0), 60: (100, None)}

# Written to a temp folder put first on PYTHONPATH: reports VmHWM of the measured process.
_SITECUSTOMIZE = """
import atexit, os
def _report():
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    with open(os.environ["FB_BENCH_HWM"], "w") as out:
        out.write(str(kb))
if os.environ.get("FB_BENCH_HWM"):
    atexit.register(_report)
"""

_LIBROSA = """
import sys, librosa
y, sr = librosa.load(sys.argv[1], sr=22050)
tempo, beats = librosa.beat.beat_track(y=y, sr=sr)
print(float(tempo[0] if getattr(tempo, "ndim", 0) else tempo), len(beats))
"""


@dataclass
class Run:
    tool: str
    minutes: float
    peak_mb: float
    cpu_s: float
    wall_s: float
    ok: bool
    note: str = ""


def build_mp3(minutes: float, folder: Path) -> Path:
    """Concatenate the unannotated tracks (looping) into a 44.1 kHz stereo MP3 of ``minutes``."""
    import numpy as np
    import soundfile as sf
    import soxr

    path = folder / f"bench_{minutes:g}min.mp3"
    sources = sorted(p for p in UNANNOTATED.iterdir() if p.suffix in (".mp3", ".ogg"))
    if not sources:
        raise SystemExit(f"no audio in {UNANNOTATED}")
    todo = int(minutes * 60 * RATE)
    with sf.SoundFile(path, "w", RATE, 2, format="MP3", subtype="MPEG_LAYER_III") as out:
        while todo > 0:
            for src in sources:
                with sf.SoundFile(src) as f:
                    resampler = soxr.ResampleStream(f.samplerate, RATE, 2, dtype="float32")
                    for block in f.blocks(blocksize=65536, dtype="float32", always_2d=True):
                        stereo = (
                            block if block.shape[1] == 2 else np.repeat(block[:, :1], 2, axis=1)
                        )
                        chunk = resampler.resample_chunk(np.ascontiguousarray(stereo[:, :2]))
                        chunk = chunk[:todo]
                        out.write(chunk)
                        todo -= chunk.shape[0]
                        if todo <= 0:
                            return path
    return path


def measure(tool: str, minutes: float, argv: list[str], env: dict[str, str]) -> Run:
    with tempfile.NamedTemporaryFile(prefix="hwm-", delete=False) as tmp:
        hwm_file = tmp.name
    env = dict(env, FB_BENCH_HWM=hwm_file)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()  # small: -o used
    proc.stdout.close()
    proc.stderr.close()
    try:
        peak = int(Path(hwm_file).read_text() or 0) / 1024
    except (OSError, ValueError):
        peak = float("nan")
    finally:
        os.unlink(hwm_file)
    ok = os.waitstatus_to_exitcode(status) == 0
    note = "" if ok else (err.strip().splitlines() or ["failed"])[-1][:80]
    if ok and tool == "librosa":
        note = f"tempo {float(out.split()[0]):.1f}"
    return Run(tool, minutes, peak, usage.ru_utime + usage.ru_stime, wall, ok, note)


def table(runs: list[Run]) -> str:
    lines = [
        "| tool | input | peak VmHWM (MB) | CPU user+sys (s) | wall (s) | bar | note |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in runs:
        bar = ""
        if r.tool == "featherbeat" and int(r.minutes) in BARS:
            mb, cpu = BARS[int(r.minutes)]
            met = r.peak_mb <= mb and (cpu is None or r.cpu_s <= cpu)
            bar = f"{'met' if met else 'MISSED'} (<= {mb} MB" + (f", <= {cpu:g} s)" if cpu else ")")
        lines.append(
            f"| {r.tool} | {r.minutes:g} min MP3 | {r.peak_mb:.1f} | {r.cpu_s:.2f} | "
            f"{r.wall_s:.1f} | {bar} | {r.note if r.ok else 'FAILED: ' + r.note} |"
        )
    by = {(r.tool, r.minutes): r for r in runs}
    ratios = []
    for (tool, minutes), lib in by.items():
        fb = by.get(("featherbeat", minutes))
        if tool == "librosa" and lib.ok and fb is not None and fb.ok:
            ratios.append(
                f"- {minutes:g} min: librosa needs {lib.peak_mb / fb.peak_mb:.1f}x the memory and "
                f"{lib.cpu_s / fb.cpu_s:.1f}x the CPU time of featherbeat"
            )
    return "\n".join(lines + ([""] + ratios if ratios else []))


START, END = "<!-- memory_speed:begin -->", "<!-- memory_speed:end -->"


def write_doc(text: str, command: str) -> None:
    """Replace the measured part of the doc (between the markers), keep the prose around it."""
    block = (
        f"{START}\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on this machine "
        f"({os.cpu_count()} cores; the analysis itself is single-threaded) with:\n\n"
        f"    {command}\n\n{text}\n{END}"
    )
    old = DOC.read_text() if DOC.exists() else f"# Memory and speed\n\n{START}\n{END}\n"
    if START not in old or END not in old:
        old = old.rstrip() + f"\n\n{START}\n{END}\n"
    head, rest = old.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(head + block + tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[3, 30, 60])
    ap.add_argument("--librosa-python", default="/tmp/peer-librosa/bin/python")
    ap.add_argument("--librosa-minutes", type=float, nargs="*", default=[3, 30, 60])
    ap.add_argument("--repeat", type=int, default=1, help="runs per featherbeat input (best kept)")
    ap.add_argument("--workdir", help="where to build the inputs (default: a temp folder)")
    ap.add_argument("--write-doc", action="store_true", help=f"write the table to {DOC}")
    args = ap.parse_args()

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    hook = work / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    # The caller's PYTHONPATH is kept after the hook (e.g. to measure another checkout's src/).
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
    )
    have_librosa = Path(args.librosa_python).exists()
    runs: list[Run] = []
    try:
        for minutes in args.minutes:
            path = work / f"bench_{minutes:g}min.mp3"
            if not path.exists():
                print(f"building {minutes:g}-minute MP3 ...", file=sys.stderr)
                path = build_mp3(minutes, work)
            argv = [str(FEATHERBEAT), "analyze", str(path), "-o", str(work / "out.json"), "--quiet"]
            best = min(
                (measure("featherbeat", minutes, argv, env) for _ in range(max(1, args.repeat))),
                key=lambda r: r.cpu_s,
            )
            runs.append(best)
            print(
                f"featherbeat {minutes:g} min: {best.peak_mb:.1f} MB {best.cpu_s:.2f} s",
                file=sys.stderr,
            )
            if have_librosa and minutes in args.librosa_minutes:
                argv = [args.librosa_python, "-c", _LIBROSA, str(path)]
                runs.append(measure("librosa", minutes, argv, env))
                print(
                    f"librosa {minutes:g} min: {runs[-1].peak_mb:.1f} MB {runs[-1].cpu_s:.2f} s",
                    file=sys.stderr,
                )
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    text = table(runs)
    print(text)
    if args.write_doc:
        command = "python bench/memory_speed.py " + " ".join(
            a for a in sys.argv[1:] if a != "--write-doc"
        )
        write_doc(text, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
