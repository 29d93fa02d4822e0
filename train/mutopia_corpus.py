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
    # Pieces already tried (compiled or not): a second run resumes where the last time box ended.
    tried_log = out / "tried.txt"
    tried = set(tried_log.read_text().split()) if tried_log.exists() else set()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as td:
        for j in order:
            if time.time() - t0 > minutes * 60:
                why["time box"] += 1
                continue
            piece = pieces[int(j)]
            key = f"{piece.parent.name}/{piece.name}"
            if key in tried:
                why["tried before"] += 1
                continue
            files = sorted(piece.rglob("*.ly")) + sorted(piece.rglob("*.ily"))
            verdict, mains = piece_verdict(files)
            if verdict != "ok":
                why[verdict] += 1
                continue
            made = 0
            for k, main in enumerate(mains):
                work = Path(td) / f"{piece.parent.name}_{piece.name}_{k}"
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
            with tried_log.open("a") as log:
                log.write(key + "\n")
            print(
                f"{time.time() - t0:7.1f}s {piece.parent.name}/{piece.name}: {made} midi",
                flush=True,
            )
    print(dict(why), flush=True)


def tidy(raw: Path, src: Path, out: Path, seed: int) -> None:
    """One version of each piece, at a plausible tempo.

    - Pieces engraved as separate part files (violin, viola, continuo ...) compile to one MIDI
      file per part; only the files with the most tracks (the full score, or every movement of
      it) are kept, so a piece is not rendered once per part.
    - Without a metronome mark (`\\tempo ... = N`) LilyPond plays a quarter at 60 BPM; such
      pieces get a random beat tempo of 60-140 BPM (the tempo map scaled as a whole); marked
      tempi outside 50-200 beats per minute are halved or doubled into it.
    """
    import mido

    rng = np.random.default_rng(seed)
    dest = out / "mutopia"
    dest.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[Path]] = {}
    for f in sorted((raw / "mutopia").glob("*.mid")):
        key = "_".join(f.stem.split("_")[:-2])  # <composer>_<piece>
        groups.setdefault(key, []).append(f)
    kept = rescaled = 0
    for key, files in groups.items():
        composer, piece = key.split("_", 1)
        texts = "\n".join(
            p.read_text(errors="replace") for p in (src / "ftp" / composer / piece).rglob("*.ly")
        )
        has_tempo = re.search(r"\\tempo[^\n%]*=\s*\d", texts) is not None
        mids = {}
        for f in files:
            try:
                mids[f] = mido.MidiFile(str(f))
            except Exception as exc:  # noqa: BLE001 (mido: e.g. KeySignatureError, 8 sharps)
                print(f"{f.name}: unreadable ({exc}), skipped", flush=True)
        if not mids:
            continue
        most = max(len(m.tracks) for m in mids.values())
        for f, mid in mids.items():
            if len(mid.tracks) < most:
                continue
            if not has_tempo:
                scale = _tempo_scale(mid, float(rng.uniform(60, 140)))
            else:
                # A marked tempo is kept up to octaves: a Largo marked in eighths (a quarter at
                # 30) would put the beat below the model's 40-250 BPM tempo classes.
                bpm = _tempo_scale(mid, 1.0)  # the beat tempo now
                scale = 1.0
                while bpm / scale < 50:
                    scale /= 2
                while bpm / scale > 200:
                    scale *= 2
            if scale != 1.0:
                for track in mid.tracks:
                    for msg in track:
                        if msg.type == "set_tempo":
                            msg.tempo = int(round(msg.tempo * scale))
                rescaled += 1
            mid.save(str(dest / f.name))
            kept += 1
    print(f"{kept} of {sum(map(len, groups.values()))} files kept, {rescaled} re-timed", flush=True)


def _tempo_scale(mid: object, bpm: float) -> float:
    """Factor on the microseconds per quarter that puts the first beat tempo at `bpm`."""
    tempo, num, den = 1_000_000, 4, 4
    for track in mid.tracks:  # type: ignore[attr-defined]
        for msg in track:
            if msg.time > 0:
                break
            if msg.type == "set_tempo":
                tempo = msg.tempo
            elif msg.type == "time_signature":
                num, den = msg.numerator, msg.denominator
    # beat length in quarters, as midi_corpus._beat_unit counts it
    quarters = 1.5 if den == 8 and num % 3 == 0 and num > 3 else 4.0 / den
    now = 60e6 / (tempo * quarters)
    return now / bpm


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
    t = sub.add_parser("tidy")
    t.add_argument("--raw", default="train/out/mutopiamidi")
    t.add_argument("--src", default="train/out/mutopia")
    t.add_argument("--out", default="train/out/mutopiamidi2")
    t.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    if args.cmd == "fetch":
        fetch(Path(args.out), Path(args.mirror_root) if args.mirror_root else None)
    elif args.cmd == "tidy":
        tidy(Path(args.raw), Path(args.src), Path(args.out), args.seed)
    else:
        compile_all(Path(args.src), Path(args.out), args.minutes, args.timeout, args.seed)


if __name__ == "__main__":
    main()
