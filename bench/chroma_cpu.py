"""CPU of the tonal chroma alone (features/chroma.py) and of the key estimate, on one file.

    .venv/bin/python bench/chroma_cpu.py [FILE] [--repeat 7] [--baseline GIT_REF]

FILE defaults to bench/memory_speed.py's 3-minute MP3 (built from ../shared/eval/unannotated in
--workdir when missing). The file is decoded and run through the product's STFT once, block by
block as in features/spectrum.py, and the magnitude blocks are kept; then ``Chroma.update`` over
those blocks plus ``result()`` is timed with ``time.process_time()`` ``--repeat`` times, and the
best run is printed (the machine is shared: the best is the least disturbed), with the median,
and the same for ``estimate_key`` on the chroma. The STFT and the ``sqrt`` that makes magnitudes
are shared with the centroid and are not counted.

``--baseline REF`` times features/chroma.py as it was at git commit REF too, interleaved run by
run with this tree's (on a loaded machine, a comparison made minutes apart is mostly noise).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from memory_speed import build_mp3  # bench/ is sys.path[0]: bench scripts are run as files


def magnitude_blocks(path: Path) -> tuple[list[np.ndarray], np.ndarray, float]:
    from featherbeat.analysis.decode import open_audio
    from featherbeat.analysis.features.spectrum import HOP, N_FFT
    from featherbeat.analysis.stft import STFT

    stft = STFT(N_FFT, HOP)
    blocks: list[np.ndarray] = []
    stream = open_audio(path)
    rate = 22050
    for block in stream:
        power = stft.push(block)
        if power.shape[0]:
            blocks.append(np.sqrt(power))
    power = stft.finish()
    if power.shape[0]:
        blocks.append(np.sqrt(power))
    return blocks, stft.frequencies(rate), rate / HOP


def module_at(ref: str, folder: Path) -> ModuleType:
    """features/chroma.py as it was at git commit ``ref``, imported from a temp copy."""
    rel = "src/featherbeat/analysis/features/chroma.py"
    root = Path(__file__).resolve().parent.parent
    text = subprocess.run(
        ["git", "show", f"{ref}:{rel}"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    path = folder / "chroma_baseline.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("chroma_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_chroma(
    chroma_class: type, blocks: list[np.ndarray], freqs: np.ndarray, rate: float
) -> tuple[float, np.ndarray]:
    frames = sum(b.shape[0] for b in blocks)
    t0 = time.process_time()
    c = chroma_class(freqs, capacity=frames + 8, frame_rate=rate)
    for b in blocks:
        c.update(b)
    chroma = c.result()
    return time.process_time() - t0, chroma


def main() -> int:
    from featherbeat.analysis.features import chroma as current
    from featherbeat.analysis.structure.key import estimate_key

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/coreio/bench"))
    ap.add_argument("--baseline", metavar="GIT_REF", help="also time chroma.py at this commit")
    args = ap.parse_args()
    path = args.file
    if path is None:
        path = args.workdir / "bench_3min.mp3"
        if not path.exists():
            args.workdir.mkdir(parents=True, exist_ok=True)
            path = build_mp3(3, args.workdir)
    blocks, freqs, rate = magnitude_blocks(path)
    frames = sum(b.shape[0] for b in blocks)
    classes = {"this tree": current.Chroma}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            classes[f"at {args.baseline}"] = module_at(args.baseline, Path(tmp)).Chroma
        cpu: dict[str, list[float]] = {name: [] for name in classes}
        key_cpu: list[float] = []
        chroma = np.zeros((0, 12))
        for _ in range(max(1, args.repeat)):
            for name, cls in classes.items():  # interleaved: both see the same load
                spent, out = time_chroma(cls, blocks, freqs, rate)
                cpu[name].append(spent)
                if name == "this tree":
                    chroma = out
            t0 = time.process_time()
            tone = estimate_key(chroma)
            key_cpu.append(time.process_time() - t0)
    print(f"{path.name}: {frames / rate / 60.0:.2f} min, {frames} frames in {len(blocks)} blocks")
    for name, runs in cpu.items():
        print(
            f"chroma ({name}) CPU s: best {min(runs):.4f}, "
            f"median {statistics.median(runs):.4f} of {len(runs)}"
        )
    print(f"estimate_key CPU s: best {min(key_cpu):.4f}, median {statistics.median(key_cpu):.4f}")
    print(f"key {tone.key} mode {tone.mode} confidence {tone.key_confidence:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
