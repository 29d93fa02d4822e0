"""CPU time per pipeline stage of one analysis: where the CPU-second goes.

    .venv/bin/python bench/stages.py [FILE] [--repeat 3]

FILE defaults to bench/memory_speed.py's 3-minute MP3 (built from ../shared/eval/unannotated in
--workdir when missing). In one process: the import of featherbeat, a decode-only pass (to split
decoding from feature extraction, which share one streaming loop in the product), then
``featherbeat.analyze`` with a progress callback that stamps ``time.process_time()`` at each
stage change (decoding -> rhythm -> structure -> done), then the Spotify JSON writer. The best of
``--repeat`` runs is kept per row, so the libraries' lazy imports (numpy, soundfile, soxr: paid
once, in the first run) are left out; the whole-process figure users see, start-up and imports
included, is bench/memory_speed.py's and bench/cost_ratio.py's. The first row is measured apart:
the CPU of a fresh interpreter importing what ``featherbeat analyze`` imports, from bytecode
(as bench/cost_ratio.py runs it), best of --repeat after a warm-up. Not in any row: numpy.ma
(~0.01 CPU-s), which numpy imports on the first np.unique / np.median / np.percentile.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from pathlib import Path

from memory_speed import build_mp3  # bench/ is sys.path[0]: bench scripts are run as files


def one_run(path: Path) -> dict[str, float]:
    from featherbeat import analyze
    from featherbeat.analysis.decode import open_audio
    from featherbeat.analysis.formats import write
    from featherbeat.analysis.pipeline import _heap_for_streaming

    t0 = time.process_time()
    with _heap_for_streaming():  # the allocator settings analyze() decodes under
        for _ in open_audio(path):
            pass
    decode = time.process_time() - t0

    marks: dict[str, float] = {}

    def progress(_fraction: float, stage: str) -> None:
        marks.setdefault(stage, time.process_time())

    t0 = time.process_time()
    profile = analyze(path, progress=progress)
    t1 = time.process_time()
    write(profile, "spotify", io.StringIO())
    t2 = time.process_time()
    stream = marks["rhythm"] - marks.get("decoding", t0)
    return {
        "set-up before decoding": marks.get("decoding", t0) - t0,
        "decode (libsndfile/PyAV + soxr)": decode,
        "features (onset, STFT features, peaks)": stream - decode,
        "rhythm": marks["structure"] - marks["rhythm"],
        "structure": marks["done"] - marks["structure"],
        "analyze() total": t1 - t0,
        "Spotify JSON written": t2 - t1,
    }


_IMPORTS = (
    "import featherbeat.cli, featherbeat.analysis.pipeline, featherbeat.analysis.formats.spotify,"
    " soundfile, soxr"
)


def startup_cpu(workdir: Path, repeat: int) -> float:
    """CPU of a fresh interpreter doing the imports of ``featherbeat analyze``, from bytecode."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(workdir / "pycache"), OPENBLAS_NUM_THREADS="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    best = float("inf")
    for _ in range(repeat + 1):  # the first fills the bytecode cache
        proc = subprocess.Popen([sys.executable, "-c", _IMPORTS], env=env)
        _, _, usage = os.wait4(proc.pid, 0)
        best = min(best, usage.ru_utime + usage.ru_stime)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/coreio/bench"))
    args = ap.parse_args()
    path = args.file
    if path is None:
        path = args.workdir / "bench_3min.mp3"
        if not path.exists():
            args.workdir.mkdir(parents=True, exist_ok=True)
            path = build_mp3(3, args.workdir)
    runs = [one_run(path) for _ in range(max(1, args.repeat))]
    start = startup_cpu(args.workdir, max(1, args.repeat))
    print(f"{path.name}, best of {len(runs)} runs, CPU seconds (user + sys) in one process\n")
    print("| stage | CPU s |\n|---|---:|")
    print(f"| interpreter start-up and imports (fresh process) | {start:.3f} |")
    for key in runs[0]:
        print(f"| {key} | {min(r[key] for r in runs):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
