"""CPU time per pipeline stage of one analysis: where the CPU-second goes.

    .venv/bin/python bench/stages.py [FILE] [--repeat 3]

FILE defaults to bench/memory_speed.py's 3-minute MP3 (built from ../shared/eval/unannotated in
--workdir when missing). In one process: the import of featherbeat, a decode-only pass (to split
decoding from feature extraction, which share one streaming loop in the product), then
``featherbeat.analyze`` with a progress callback that stamps ``time.process_time()`` at each
stage change (decoding -> rhythm -> structure -> done), then the Spotify JSON writer. The best of
``--repeat`` runs is kept per row, so the libraries' lazy imports (numpy, soundfile, soxr: paid
once, in the first run) are left out; the whole-process figure users see, start-up and imports
included, is bench/memory_speed.py's.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from memory_speed import build_mp3  # bench/ is sys.path[0]: bench scripts are run as files


def one_run(path: Path) -> dict[str, float]:
    from featherbeat import analyze
    from featherbeat.analysis.decode import open_audio
    from featherbeat.analysis.formats import write

    t0 = time.process_time()
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
    print(f"{path.name}, best of {len(runs)} runs, CPU seconds (user + sys) in one process\n")
    print("| stage | CPU s |\n|---|---:|")
    for key in runs[0]:
        print(f"| {key} | {min(r[key] for r in runs):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
