"""CPU of the whole `featherbeat analyze` process against `ffmpeg` decoding the same file to
22.05 kHz mono (the issue-wide cost bar: <= 3x), optionally beside another source tree.

    .venv/bin/python bench/ffmpeg_ratio.py [FILE] [--repeat 5] [--other-src /tmp/base/src]

FILE defaults to bench/memory_speed.py's 3-minute MP3 (built in --workdir when missing). Each
run is a fresh process; CPU = user + sys from ``os.wait4`` (start-up and imports included),
peak = ru_maxrss. Runs are interleaved (ffmpeg, ours, other, ffmpeg, ...) so a busy machine
slows all of them alike; the best of ``--repeat`` is kept. ``--other-src`` runs the same
console script with PYTHONPATH pointing at another checkout's ``src`` (e.g. ``git archive
main src | tar -x -C /tmp/base``), for a before/after in one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_speed import build_mp3  # noqa: E402 (bench scripts are run as files)

FEATHERBEAT = Path(sys.executable).parent / "featherbeat"


def _cpu(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--other-src", type=Path, help="another checkout's src/ to run beside ours")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "fb-ratio")
    args = ap.parse_args(argv)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("ffmpeg is not on PATH (apt-get install ffmpeg)", file=sys.stderr)
        return 2
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.file if args.file is not None else build_mp3(3.0, args.workdir)
    out = args.workdir / "ratio-out.json"
    here = str(Path(__file__).resolve().parent.parent / "src")
    systems: dict[str, list[str] | None] = {"ffmpeg": None, "featherbeat (this tree)": [here]}
    if args.other_src:
        systems[f"featherbeat ({args.other_src})"] = [str(args.other_src)]
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in systems}
    for _ in range(args.repeat):
        for name, src in systems.items():
            if src is None:
                cmd = [ffmpeg, "-v", "quiet", "-y", "-i", str(path), "-ac", "1", "-ar", "22050"]
                runs[name].append(_cpu([*cmd, "-f", "s16le", os.devnull]))
            else:
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(src))
                cmd = [str(FEATHERBEAT), "analyze", str(path), "-o", str(out), "--quiet"]
                runs[name].append(_cpu(cmd, env))
                out.unlink(missing_ok=True)
    base = min(c for c, _ in runs["ffmpeg"])
    print(f"{path} (best of {args.repeat})")
    print("| process | CPU s | x ffmpeg | peak RSS MB |\n|---|---:|---:|---:|")
    for name, r in runs.items():
        cpu = min(c for c, _ in r)
        print(f"| {name} | {cpu:.3f} | {cpu / base:.2f} | {max(m for _, m in r):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
