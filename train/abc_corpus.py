"""Folk tunes in ABC for the rhythm corpus: abc2midi with its chord and bass accompaniment.

The Nottingham Music Database (train/SOURCES.md: about 1 000 jigs, reels, hornpipes, slip
jigs, waltzes, morris and Playford tunes with chord symbols, its bar lengths cleaned by
Jukedeck) is taken from a public git repository at a pinned commit. Each tune becomes one MIDI
file that train/midi_corpus.py then renders like any other real composition:

1. A tempo (beat 55-150 BPM before midi_corpus.py's own warp), a melody, chord and bass
   instrument from a folk-ish set, and in about a third of the tunes a bar-aligned drum pattern
   are written into the tune's header as abc2midi directives; abc2midi plays the melody, the
   repeats and parts as written, and a chord/bass accompaniment from the chord symbols.
2. Bars: abc2midi marks the first note of every bar by its velocity (105, `%%MIDI beat`'s
   default; other notes 95 or 80), so the bar lines in the MIDI timeline are read back from the
   melody rather than re-derived from the ABC text. A tune is kept only if at least 90 % of those
   bar-start notes agree on one phase modulo the bar length (a pickup bar is the usual
   exception) and it has one time signature throughout.
3. A pickup shifts the phase: every channel event is delayed so that the bars start on the
   time-signature grid from tick 0 (midi_corpus.parse then counts beats and bar positions from
   there and drops the silent beats before the first note). Half of the tunes get their melody
   velocities flattened (a random level, small jitter) so that loudness alone does not mark
   the downbeat.

    python train/abc_corpus.py fetch --out train/out/abc [--mirror-root /work/.mirror]
    python train/abc_corpus.py convert --abc train/out/abc --out train/out/abcmidi --seed 11
    python train/midi_corpus.py render --midi train/out/abcmidi --out train/out/corpus5 \
        --per-piece 1 --seed 11 --prefix abc

ABC, MIDI files and audio stay under train/out (git-ignored).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from midi_corpus import Source, git_blobs  # noqa: E402

ABC_SOURCES = [
    Source(
        "nmd",
        "https://github.com/jukedeck/nottingham-dataset",
        "0992bb6cd864f6d4b90d6663e08c0ef53ffaa08f",
        "ABC_cleaned",
        "GPL-3.0 (the repository, README.md); the tunes are traditional",
    ),
]

# beats per bar and the beat's length in quarters, per meter this corpus takes
METERS = {
    "2/4": (2, 1.0),
    "3/4": (3, 1.0),
    "4/4": (4, 1.0),
    "C": (4, 1.0),
    "2/2": (2, 2.0),
    "C|": (2, 2.0),
    "3/2": (3, 2.0),
    "6/8": (2, 1.5),
    "9/8": (3, 1.5),
    "12/8": (4, 1.5),
    "3/8": (3, 0.5),
}
MELODY = [40, 73, 21, 78, 0, 22, 71, 68, 105, 24, 41, 110, 25, 46, 79]
CHORDS = [24, 25, 0, 21, 19, 48, 4, 46, 1, 26]
BASS = [32, 33, 0, 58, 43, 35, 24]


def fetch(out: Path, mirror_root: Path | None) -> None:
    for src in ABC_SOURCES:
        dest = out / src.name
        dest.mkdir(parents=True, exist_ok=True)
        n = 0
        for name, blob in git_blobs(src, mirror_root, (".abc",)):
            (dest / Path(name).name).write_bytes(blob)
            n += 1
        print(f"{src.name}: {n} files at {src.commit[:12]}", flush=True)


def split_tunes(text: str) -> list[str]:
    """An ABC file -> its tunes (each from its X: line to the next)."""
    parts = re.split(r"(?m)^(?=X:)", text)
    return [p for p in parts if p.startswith("X:")]


def meters(tune: str) -> set[str]:
    found = re.findall(r"(?m)^M:\s*(\S+)", tune) + re.findall(r"\[M:\s*([^\]\s]+)", tune)
    return {m.strip() for m in found}


def prepare(tune: str, rng: np.random.Generator) -> tuple[str, str] | None:
    """The tune with tempo, instruments and maybe drums written into its header; its meter."""
    ms = meters(tune)
    if len(ms) != 1:
        return None
    meter = ms.pop()
    if meter not in METERS or "K:" not in tune:
        return None
    per_bar, beat_q = METERS[meter]
    bpm = float(rng.uniform(55, 150))
    lines = [ln for ln in tune.splitlines() if not ln.startswith("Q:")]
    k = next(i for i, ln in enumerate(lines) if ln.startswith("K:"))
    head = [f"Q:1/4={int(round(bpm * beat_q))}"]
    body = [
        f"%%MIDI program {int(rng.choice(MELODY))}",
        f"%%MIDI chordprog {int(rng.choice(CHORDS))}",
        f"%%MIDI bassprog {int(rng.choice(BASS))}",
        f"%%MIDI chordvol {int(rng.integers(45, 90))}",
        f"%%MIDI bassvol {int(rng.integers(55, 100))}",
    ]
    if rng.random() < 0.35:
        # One hit per beat: kick on 1, snare on the back beats of 2 and 4 beats, hats else.
        notes = {2: [36, 38], 3: [36, 42, 42], 4: [36, 42, 38, 42]}[per_bar]
        vels = [110] + [int(rng.integers(60, 95)) for _ in notes[1:]]
        body += [
            "%%MIDI drum " + "d" * per_bar + " " + " ".join(map(str, notes + vels)),
            "%%MIDI drumon",
        ]
    lines = lines[:k] + head + [lines[k]] + body + lines[k + 1 :]
    return "\n".join(lines) + "\n", meter


def convert_one(abc: str, meter: str, rng: np.random.Generator, tmp: Path, out: Path) -> str:
    """abc2midi one prepared tune and re-time it so that bars start on the grid; returns
    'ok' or why the tune was skipped."""
    import mido

    src, mid_path = tmp / "t.abc", tmp / "t.mid"
    src.write_text(abc)
    mid_path.unlink(missing_ok=True)
    try:
        run = subprocess.run(
            ["abc2midi", str(src), "-o", str(mid_path), "-quiet"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    # Errors that leave the timing alone: a tie or slur open at the end, an unreadable chord
    # symbol (that chord is not played). Any other error skips the tune.
    benign = ("Sustained notes beyond end of track", "Guitar chord does not start")
    errors = [
        ln
        for ln in (run.stdout + run.stderr).splitlines()
        if "Error" in ln and not any(b in ln for b in benign)
    ]
    if errors or not mid_path.exists():
        return "abc2midi error"
    mid = mido.MidiFile(str(mid_path))
    tpq = mid.ticks_per_beat
    per_bar, beat_q = METERS[meter]
    bar = int(round(per_bar * beat_q * tpq))
    firsts: list[int] = []
    channel = None
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                if channel is None:
                    channel = msg.channel  # the melody: abc2midi writes it first
                if msg.channel == channel and msg.velocity == 105:
                    firsts.append(tick)
    if len(firsts) < 12:
        return "too few bars"
    phases = Counter(int(t) % bar for t in firsts)
    phase, count = phases.most_common(1)[0]
    if count < 0.9 * len(firsts):
        return "bars disagree"
    delay = (bar - phase) % bar
    flat = rng.random() < 0.5
    level = int(rng.integers(70, 105))
    new = mido.MidiFile(type=1, ticks_per_beat=tpq)
    for track in mid.tracks:
        events: list[tuple[int, mido.Message | mido.MetaMessage]] = []
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.is_meta and msg.type == "end_of_track":
                continue
            at = tick if (msg.is_meta and tick == 0) else tick + delay
            if flat and msg.type == "note_on" and msg.velocity > 0 and msg.channel == channel:
                msg = msg.copy(velocity=int(np.clip(level + rng.integers(-6, 7), 1, 127)))
            events.append((at, msg))
        events.sort(key=lambda e: e[0])
        tr = mido.MidiTrack()
        last = 0
        for at, msg in events:
            tr.append(msg.copy(time=at - last))
            last = at
        new.tracks.append(tr)
    new.save(str(out))
    return "ok"


def convert(abc_dir: Path, out: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    why: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as td:
        for f in sorted(abc_dir.glob("*/*.abc")):
            dest = out / f.parent.name
            dest.mkdir(parents=True, exist_ok=True)
            for tune in split_tunes(f.read_text(errors="replace")):
                x = re.match(r"X:\s*(\d+)", tune)
                name = f"{f.stem}_{x.group(1) if x else 'na'}"
                prep = prepare(tune, rng)
                if prep is None:
                    why["meter"] += 1
                    continue
                res = convert_one(prep[0], prep[1], rng, Path(td), dest / f"{name}.mid")
                why[res] += 1
    print(dict(why), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("--out", default="train/out/abc")
    f.add_argument("--mirror-root", default=None)
    c = sub.add_parser("convert")
    c.add_argument("--abc", default="train/out/abc")
    c.add_argument("--out", default="train/out/abcmidi")
    c.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    if args.cmd == "fetch":
        fetch(Path(args.out), Path(args.mirror_root) if args.mirror_root else None)
    else:
        convert(Path(args.abc), Path(args.out), args.seed)


if __name__ == "__main__":
    main()
