"""Classical pieces for the rhythm corpus: the Mutopia Project's LilyPond sources, compiled to MIDI.

The Mutopia Project (train/SOURCES.md) publishes engraved scores of public-domain music, each
piece's LilyPond source with its licence in its header (`license = ...`, older files
`copyright = ...`). This module takes the sources at a pinned commit, keeps the pieces licensed
Public Domain, CC BY or CC BY-SA (any version), and compiles them with the system's LilyPond to
MIDI, whose tempo map and time signatures then give exact beats and bars (train/midi_corpus.py
renders them like any other real composition).

Skipped, because their MIDI bars would not start at tick 0 or would not be whole: pieces with a
pickup (`\\partial`, `measurePosition`), with free time (`\\cadenzaOn`), without a `\\midi`
block, for a LilyPond older than 2.18 (most fail to compile with 2.24), and any file that does
not compile within --timeout seconds. The compile is time-boxed as a whole (--minutes) and
visits the pieces in a fixed random order, so a short run still spans the composers.

    python train/mutopia_corpus.py fetch --out train/out/mutopia [--mirror-root /work/.mirror]
    python train/mutopia_corpus.py compile --src train/out/mutopia --out train/out/mutopiamidi \
        --minutes 30 --seed 13
    python train/midi_corpus.py render --midi train/out/mutopiamidi --out train/out/corpus5 \
        --per-piece 2 --seed 13 --prefix mutopia --shuffle
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from midi_corpus import Source, git_blobs  # noqa: E402

MUTOPIA = Source(
    "mutopia",
    "https://github.com/MutopiaProject/MutopiaProject",
    "2144afd6f52d56c5b6995b8b589ef1268b3139f0",
    "ftp",
    "per piece: Public Domain, CC BY or CC BY-SA (others skipped)",
)
LICENCE = re.compile(r'\b(?:license|copyright|mutopiacopyright)\s*=\s*"([^"]*)"')
ACCEPTED = re.compile(r"^(public domain|creative commons attribution(-sharealike)? [0-9.]+)$", re.I)
SKIP = ("\\partial", "measurePosition", "\\cadenzaOn")


def fetch(out: Path, mirror_root: Path | None) -> None:
    n = 0
    for name, blob in git_blobs(MUTOPIA, mirror_root, (".ly", ".ily")):
        dest = out / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(blob)
        n += 1
    print(f"mutopia: {n} files at {MUTOPIA.commit[:12]}", flush=True)


def version(text: str) -> tuple[int, int]:
    m = re.search(r'\\version\s*"(\d+)\.(\d+)', text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def piece_verdict(files: list[Path]) -> tuple[str, list[Path]]:
    """('ok', the files to compile) or (why the piece is skipped, [])."""
    texts = {f: f.read_text(errors="replace") for f in files}
    every = "\n".join(texts.values())
    licences = {m.strip() for m in LICENCE.findall(every)}
    if not licences or not all(ACCEPTED.match(lic) for lic in licences):
        return "licence", []
    if any(s in every for s in SKIP):
        return "pickup or free time", []
    if "\\midi" not in every:
        return "no midi", []
    mains = [f for f, t in texts.items() if "\\midi" in t and "\\score" in t and f.suffix == ".ly"]
    if not mains:
        return "no midi", []
    if min(version(texts[f]) for f in mains) < (2, 18):
        return "old lilypond", []
    return "ok", mains


def compile_all(src: Path, out: Path, minutes: float, timeout: float, seed: int) -> None:
    pieces = sorted({p for p in (src / "ftp").glob("*/*") if p.is_dir()})
    order = np.random.default_rng(seed).permutation(len(pieces))
    dest = out / "mutopia"
    dest.mkdir(parents=True, exist_ok=True)
    why: Counter[str] = Counter()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as td:
        for j in order:
            if time.time() - t0 > minutes * 60:
                why["time box"] += 1
                continue
            piece = pieces[int(j)]
            files = sorted(piece.rglob("*.ly")) + sorted(piece.rglob("*.ily"))
            verdict, mains = piece_verdict(files)
            if verdict != "ok":
                why[verdict] += 1
                continue
            made = 0
            for k, main in enumerate(mains):
                work = Path(td) / f"{piece.name}_{k}"
                work.mkdir()
                try:
                    subprocess.run(
                        ["lilypond", "-s", "-dno-print-pages", "-o", str(work / "o"), main.name],
                        cwd=main.parent,
                        timeout=timeout,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                except subprocess.TimeoutExpired:
                    why["compile timeout"] += 1
                    continue
                for m, midi in enumerate(sorted(work.glob("*.mid*"))):
                    name = f"{piece.parent.name}_{piece.name}_{k}_{m}.mid"
                    (dest / name).write_bytes(midi.read_bytes())
                    made += 1
            why["compiled" if made else "compile failed"] += 1
            print(
                f"{time.time() - t0:7.1f}s {piece.parent.name}/{piece.name}: {made} midi",
                flush=True,
            )
    print(dict(why), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("--out", default="train/out/mutopia")
    f.add_argument("--mirror-root", default=None)
    c = sub.add_parser("compile")
    c.add_argument("--src", default="train/out/mutopia")
    c.add_argument("--out", default="train/out/mutopiamidi")
    c.add_argument("--minutes", type=float, default=30.0)
    c.add_argument("--timeout", type=float, default=60.0, help="seconds per file")
    c.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    if args.cmd == "fetch":
        fetch(Path(args.out), Path(args.mirror_root) if args.mirror_root else None)
    else:
        compile_all(Path(args.src), Path(args.out), args.minutes, args.timeout, args.seed)


if __name__ == "__main__":
    main()
