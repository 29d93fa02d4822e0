"""Real compositions for the rhythm corpus: freely licensed MIDI files with exact beat maps.

Each source is a public git repository pinned to one commit (train/SOURCES.md lists them with
their licences). For every piece:

1. The tempo map and the time signatures give the exact time of every beat and its position in
   the bar (beat unit: the quarter in x/4, the dotted quarter in 6/8, 9/8, 12/8, the eighth in
   other x/8, the half in x/2).
2. An example is a 30 s window of the piece, its timing warped by a smooth random tempo curve
   (global tempo x0.8-1.25, drift or rubato; the beat labels are warped with it, so they stay
   exact), sometimes with its instruments swapped within their General MIDI family, rendered by
   fluidsynth and augmented exactly like the procedural examples (train/corpus.py).

    python train/midi_corpus.py fetch --out train/out/midi [--mirror-root /work/.mirror]
    python train/midi_corpus.py render --midi train/out/midi --out train/out/corpus \
        --per-piece 6 --seed 3 [--jobs 2 --part 0]

Shards are written as ``shard_midi_00000.npz`` beside the procedural ones (the trainer reads
every ``shard_*.npz``). MIDI files and audio stay under train/out (git-ignored).
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    commit: str
    folder: str
    licence: str


SOURCES = [
    Source(
        "freedoom",
        "https://github.com/freedoom/freedoom",
        "d14dbbee3b6fbfb2c11cdb65eb61216e86d4ee85",
        "musics",
        "BSD-3-Clause",
    ),
    Source(
        "openmsx",
        "https://github.com/OpenTTD/OpenMSX",
        "5ecb59b97e13fe65b22014583b2c9aa46a2b9e63",
        "src",
        "GPL-2.0-only",
    ),
]


# ---- fetching -------------------------------------------------------------------------------
def git_blobs(
    src: Source, mirror_root: Path | None, suffixes: tuple[str, ...]
) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every file under the source's folder at its pinned commit whose name
    ends with one of `suffixes`: from a local mirror if there is one, else a blobless clone."""
    owner_repo = src.url.split("github.com/")[1]
    git_dir = None
    if mirror_root is not None:
        cand = mirror_root / owner_repo.replace("/", "+") / "repo"
        if cand.is_dir():
            git_dir = cand
    with tempfile.TemporaryDirectory() as td:
        if git_dir is None:  # a blobless clone, then only the folder's blobs are fetched
            subprocess.run(
                ["git", "clone", "-q", "--filter=blob:none", "--no-checkout", src.url, td],
                check=True,
            )
            git_dir = Path(td) / ".git"
        names = subprocess.run(
            ["git", f"--git-dir={git_dir}", "ls-tree", "-r", "--name-only", src.commit, src.folder],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        for name in names:
            if not name.lower().endswith(suffixes):
                continue
            blob = subprocess.run(
                ["git", f"--git-dir={git_dir}", "show", f"{src.commit}:{name}"],
                check=True,
                capture_output=True,
            ).stdout
            yield name, blob


def fetch(out: Path, mirror_root: Path | None) -> None:
    """Copy every .mid of each source's folder at its pinned commit into out/<name>/."""
    for src in SOURCES:
        dest = out / src.name
        dest.mkdir(parents=True, exist_ok=True)
        for name, blob in git_blobs(src, mirror_root, (".mid", ".midi")):
            (dest / Path(name).name).write_bytes(blob)
        print(f"{src.name}: {len(list(dest.glob('*')))} files at {src.commit[:12]}", flush=True)


# ---- parsing --------------------------------------------------------------------------------
@dataclass
class Piece:
    name: str
    events: list[tuple[float, int, bytes]]  # (seconds, sort order, channel message bytes)
    beats: np.ndarray  # seconds
    positions: np.ndarray  # 1-based position in bar
    meter_known: bool  # the file states its time signature (else 4/4 is assumed)
    end: float


def _beat_unit(num: int, den: int, tpq: int) -> tuple[float, int]:
    """(ticks per beat, beats per bar) of a time signature."""
    whole = 4 * tpq
    if den == 8 and num % 3 == 0 and num > 3:
        return 3 * whole / 8, num // 3
    if den == 8 and num == 3:
        return whole / 8, 3
    return whole / den, num


def parse(path: Path) -> Piece | None:
    import mido

    try:
        mid = mido.MidiFile(str(path), clip=True)
    except Exception:  # noqa: BLE001 (a malformed file is skipped, not fatal)
        return None
    if mid.type == 2:
        return None
    tpq = mid.ticks_per_beat
    tick = 0
    tempos = [(0, 500000)]
    sigs: list[tuple[int, int, int]] = []
    raw: list[tuple[int, int, bytes]] = []
    for msg in mido.merge_tracks(mid.tracks):
        tick += msg.time
        if msg.is_meta:
            if msg.type == "set_tempo":
                tempos.append((tick, msg.tempo))
            elif msg.type == "time_signature":
                sigs.append((tick, msg.numerator, msg.denominator))
            continue
        if msg.type in ("sysex",):
            continue
        if msg.type == "note_on" and msg.velocity > 0:
            order = 2
        elif msg.type in ("note_on", "note_off"):
            order = 1
        else:
            order = 0  # programs and controllers before notes of the same tick
        raw.append((tick, order, bytes(msg.bytes())))
    notes = [t for t, o, _ in raw if o == 2]
    if len(notes) < 50:
        return None
    # Ticks -> seconds through the tempo map (later entries at one tick win).
    tempos.sort(key=lambda e: e[0])
    tt = np.array([t for t, _ in tempos], np.float64)
    us = np.array([u for _, u in tempos], np.float64)
    sec_at = np.concatenate([[0.0], np.cumsum(np.diff(tt) * us[:-1] / 1e6 / tpq)])

    def seconds(ticks: np.ndarray) -> np.ndarray:
        i = np.searchsorted(tt, ticks, side="right") - 1
        return sec_at[i] + (ticks - tt[i]) * us[i] / 1e6 / tpq

    last_tick = max(t for t, _, _ in raw)
    meter_known = bool(sigs)
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    # Beats: each time signature from its tick to the next one, positions restart there.
    bt: list[float] = []
    pos: list[int] = []
    for k, (t0, num, den) in enumerate(sigs):
        t1 = sigs[k + 1][0] if k + 1 < len(sigs) else last_tick + 1
        step, per_bar = _beat_unit(num, den, tpq)
        if step <= 0 or per_bar <= 0:
            return None
        n = int(np.ceil((t1 - t0) / step - 1e-9))
        bt.extend(t0 + step * np.arange(n))
        pos.extend((np.arange(n) % per_bar + 1).tolist())
    ticks = np.array([t for t, _, _ in raw], np.float64)
    secs = seconds(ticks)
    events = [(float(s), o, b) for s, (_, o, b) in zip(secs, raw, strict=True)]
    beats = seconds(np.array(bt, np.float64))
    first_note = float(seconds(np.array([min(notes)], np.float64))[0])
    end = float(secs.max())
    keep = (beats >= first_note - 1e-6) & (beats <= end)
    if keep.sum() < 16:
        return None
    return Piece(path.stem, events, beats[keep], np.array(pos, np.int16)[keep], meter_known, end)


# ---- one example ----------------------------------------------------------------------------
def _warp(rng: np.random.Generator, end: float) -> tuple[np.ndarray, np.ndarray]:
    """A monotone time map old -> new seconds on a 0.1 s grid: global scale with drift or
    rubato (smoothed log-rate noise)."""
    grid = np.arange(0.0, end + 5.0, 0.1)
    scale = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    style = rng.choice(["steady", "drift", "rubato"], p=[0.45, 0.35, 0.2])
    if style == "steady":
        lr = np.zeros(grid.size)
    else:
        k = int(rng.integers(20, 80)) if style == "drift" else int(rng.integers(8, 30))
        sd = rng.uniform(0.01, 0.04) if style == "drift" else rng.uniform(0.05, 0.15)
        noise = rng.normal(0, 1, grid.size + k)
        lr = np.convolve(noise, np.ones(k) / k, "valid")[: grid.size]
        lr = lr / (lr.std() + 1e-9) * sd
        lr = np.clip(lr, -0.3, 0.3)
    rate = np.exp(lr) / scale  # new seconds per old second
    new = np.concatenate([[0.0], np.cumsum(rate[:-1] * 0.1)])
    return grid, new


def example(piece: Piece, seed: int, tmp: Path) -> dict[str, np.ndarray] | None:
    rng = np.random.default_rng(seed)
    grid, new = _warp(rng, piece.end)
    beats = np.interp(piece.beats, grid, new)
    dur = corpus.CLIP_S + 4
    span_end = float(np.interp(piece.end, grid, new))
    first = float(beats[0])
    lo, hi = max(0.0, first - 3.0), max(0.0, span_end - dur + 2.0)
    w0 = float(rng.uniform(lo, max(lo, hi)))
    # Instruments: sometimes swapped within their General MIDI family (8 programs each).
    remap = rng.random() < 0.35
    family_shift = {p: int(rng.integers(0, 8)) for p in range(0, 128, 8)}
    events: list[tuple[float, int, bytes]] = []
    for t, order, msg in piece.events:
        nt = float(np.interp(t, grid, new)) - w0
        status = msg[0] & 0xF0
        ch = msg[0] & 0x0F
        if remap and status == 0xC0 and ch != 9:
            msg = bytes([msg[0], (msg[1] // 8) * 8 + family_shift[(msg[1] // 8) * 8]])
        if nt < 0:
            if status in (0xB0, 0xC0, 0xE0):  # the state at the window start
                events.append((0.0, order, msg))
            continue
        if nt > dur:
            continue
        events.append((nt, order, msg))
    # Close the window: fluidsynth renders until every voice has ended, so a note cut off by
    # the window (an organ never decays) would render for ever. Sustain off, all notes off.
    for ch in range(16):
        events.append((dur, 1, bytes([0xB0 | ch, 64, 0])))
        events.append((dur, 1, bytes([0xB0 | ch, 123, 0])))
        events.append((dur, 1, bytes([0xB0 | ch, 120, 0])))
    bw = beats - w0
    if int(((bw >= 0) & (bw < dur)).sum()) < 8:
        return None
    mid = tmp / "x.mid"
    write_events(events, mid)
    try:
        y = corpus.render_file(mid, rng, dur, tmp)
    except subprocess.TimeoutExpired:
        # fluidsynth never finishes some windows (Freedoom's d_map15, window 0 at seed 3: its
        # closing all-notes-off does not end it; cause not found): skip the window, not the run.
        print(f"{piece.name}: fluidsynth timed out, window skipped", flush=True)
        return None
    if np.max(np.abs(y)) < 1e-4:
        return None
    start = rng.uniform(0, 4.0)
    i0 = int(start * corpus.SR)
    y = y[i0 : i0 + int(corpus.CLIP_S * corpus.SR)]
    bw = bw - start
    keep = (bw >= 0) & (bw < corpus.CLIP_S)
    if keep.sum() < 8:
        return None
    y, tags = corpus.augment(y, rng, tmp)
    x = corpus.features(y)
    bpm = float(60.0 / np.median(np.diff(bw[keep])))
    return {
        "x": x.astype(np.float16),
        "beats": bw[keep].astype(np.float32),
        "pos": piece.positions[keep],
        "bpm": np.float32(bpm),
        "meter": np.array(str(int(piece.positions.max())) if piece.meter_known else "?"),
        "tags": np.array(("remap+" if remap else "") + tags),
        "source": np.array(piece.name),
    }


def write_events(events: list[tuple[float, int, bytes]], path: Path) -> None:
    """Channel messages at absolute seconds -> SMF type 0 at 960 ticks per second."""
    ev = sorted(
        ((int(round(t * 2 * corpus.TICKS)), o, m) for t, o, m in events), key=lambda e: (e[0], e[1])
    )
    data = bytearray(b"\x00\xff\x51\x03\x07\xa1\x20")
    last = 0
    for tick, _, msg in ev:
        data += corpus._vlq(tick - last) + msg
        last = tick
    data += b"\x00\xff\x2f\x00"
    path.write_bytes(
        b"MThd"
        + struct.pack(">IHHH", 6, 0, 1, corpus.TICKS)
        + b"MTrk"
        + struct.pack(">I", len(data))
        + bytes(data)
    )


def render_all(args: argparse.Namespace) -> None:
    if args.soundfont:
        # Only the soundfonts whose file name contains this text (e.g. a new one, for windows
        # that add timbres the corpus lacks).
        corpus.SOUNDFONTS[:] = [p for p in corpus.SOUNDFONTS if args.soundfont in Path(p).name]
        if not corpus.SOUNDFONTS:
            sys.exit(f"no installed soundfont matches {args.soundfont!r}")
    files = sorted(Path(args.midi).glob("*/*.mid"))
    pieces = []
    for f in files:
        p = parse(f)
        if p is not None:
            pieces.append(p)
    print(f"{len(pieces)} of {len(files)} files usable", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(i, k) for k in range(args.per_piece) for i in range(len(pieces))]
    if args.shuffle:
        # A fixed permutation, so that a run stopped early still spans every collection
        # (the files are sorted by collection) and a restart renders the same shards.
        order = np.random.default_rng(args.seed).permutation(len(jobs))
        jobs = [jobs[j] for j in order]
    n_shards = -(-len(jobs) // corpus.SHARD)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as td:
        for s in range(args.part, n_shards, args.jobs):
            path = out / f"shard_{args.prefix}_{s:05d}.npz"
            if path.exists():
                continue
            if time.time() - t0 > args.minutes * 60:
                print(f"time box of {args.minutes} min reached, stopping before shard {s}")
                break
            items = []
            for i, k in jobs[s * corpus.SHARD : (s + 1) * corpus.SHARD]:
                it = example(pieces[i], args.seed * 1_000_003 + i * 1009 + k, Path(td))
                if it is not None:
                    items.append(it)
            corpus.write_shard(path, items)
            print(f"{time.time() - t0:7.1f}s midi shard {s} done ({len(items)})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("--out", default="train/out/midi")
    f.add_argument("--mirror-root", default=None)
    r = sub.add_parser("render")
    r.add_argument("--midi", default="train/out/midi")
    r.add_argument("--out", default="train/out/corpus")
    r.add_argument("--per-piece", type=int, default=6)
    r.add_argument("--seed", type=int, default=3)
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--part", type=int, default=0)
    r.add_argument("--prefix", default="midi", help="shards are shard_<prefix>_NNNNN.npz")
    r.add_argument("--soundfont", default="", help="only soundfonts whose name contains this")
    r.add_argument("--shuffle", action="store_true", help="render the windows in a random order")
    r.add_argument("--minutes", type=float, default=1e9, help="start no shard after this")
    args = ap.parse_args()
    if args.cmd == "fetch":
        fetch(Path(args.out), Path(args.mirror_root) if args.mirror_root else None)
    else:
        render_all(args)


if __name__ == "__main__":
    main()
