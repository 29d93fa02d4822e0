"""Self-training corpus for the rhythm model: real recordings, pseudo-labelled by our trackers.

The rendered corpora (train/corpus.py, train/midi_corpus.py) have exact labels but no recorded
music: no vocals, no real instruments or rooms, no mixing. Debian's game packages ship freely
licensed recorded and produced music (rock, electronic, orchestral, ambient ...). It has no
labels, so the product's own trackers label it ("noisy student" self-training):

1. ``fetch``: ``apt-get download`` the packages in PACKAGES (music in Debian main, licence read
   from each package's debian/copyright: train/SOURCES.md), ``dpkg-deb -x`` them under
   train/out (nothing is installed), unzip the music of the Quake-style ``.pk3`` archives, and
   list the music files (``tracks.tsv``: package, path, seconds, sha256), duplicates and any
   file of ../shared/eval (by its sha256) left out.
2. ``label``: each whole, clean track analysed once by ``featherbeat.analyze(rhythm="fused")``;
   the DSP tracker and the learned decoder re-run on the same curves (``rhythm.track``, as the
   pipeline calls it): three readings of beats, bar positions and tempo per track.
3. ``build``: 30 s windows of each track kept only where independent readings agree: the DSP
   and the learned beats F >= --agree (+-70 ms) and their tempi within 4 %, and the fused
   beats (the labels) agree with both. Downbeats are labels only where the DSP and the
   learned downbeats agree too; otherwise the window is kept with its downbeat loss masked
   (``<k>_down_ok`` = 0 in the shard; train/train.py reads it). The kept windows are cut from
   the clean audio, augmented like every other example (train/corpus.py ``augment``: EQ,
   reverb, saturation, noise, level, lossy codecs) and turned into the model's input, so the
   student learns from degraded audio what the teacher read on clean audio.

    python train/selftrain_corpus.py fetch --out train/out/selftrain
    python train/selftrain_corpus.py label --root train/out/selftrain [--jobs 2 --part 0]
    python train/selftrain_corpus.py build --root train/out/selftrain \
        --out train/out/corpus6 --seed 17 [--jobs 2 --part 0]
    python train/selftrain_corpus.py check     # the filter's labels scored on dev clips

Shards are ``shard_pseudo_NNNNN.npz`` in train/corpus.py's format plus ``<k>_pseudo`` and
``<k>_down_ok``. The audio and the labels stay under train/out (git-ignored). The evaluation
sets (GTZAN, Ballroom, Hainsworth, SIMAC, SMC, Frets on Fire: the ``fretsonfire-songs-*``
packages) and ../shared/eval (two of whose tracks come from Debian's ``asc-music`` and
``singularity-music``: never fetched here) are never training data: ``fetch`` hashes every
file of ../shared/eval to refuse any copy of one, and ``check`` reads the dev clips only to
score the filter.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "train"))

import corpus  # noqa: E402
import midi_corpus  # noqa: E402


@dataclass(frozen=True)
class Package:
    name: str
    music: tuple[str, ...]  # path fragments (inside the extracted package) of its music files
    licence: str  # of the music, from the package's debian/copyright (train/SOURCES.md)
    pk3: str = ""  # a zip archive inside the package holding the music


# Debian 12 (bookworm) main. Music folders only (sound effects and ambience are left out).
PACKAGES = [
    Package("warzone2100-music", ("/music/",), "GPL-2+"),
    Package("wesnoth-1.16-music", ("/music/",), "GPL-2+"),
    Package("hedgewars-data", ("/Data/Music/",), "GPL-2"),
    Package("supertux-data", ("/music/",), "GPL-2+ (data/music/*)"),
    Package(
        "naev-data", ("/snd/music/",), "GPL-2+ / GPL-3 or CC-BY-3.0 / CC-BY-3.0 / CC-BY-SA-3.0"
    ),
    Package("colobot-common-sounds", ("/music/",), "GPL-3+"),
    Package("freedroidrpg-data", ("/sound/music/",), "GPL-2+"),
    Package("openclonk-data", ("/Music.ocg/",), "ISC / CC-BY-3.0 / CC0-1.0 (game content)"),
    Package("unknown-horizons", ("/audio/music/",), "CC-BY-SA-3.0 (content/*)"),
    Package("planetblupi-music-ogg", ("/",), "GPL-3+"),
    Package("hyperrogue-music", ("/music/",), "CC-BY-SA-3.0 / GPL-2+"),
    Package("xmoto-data", ("/Musics/",), "GPL-2+"),
    Package("lincity-ng-data", ("/music/",), "GPL-2+"),
    Package("extremetuxracer-data", ("/music/",), "GPL-2+"),
    Package(
        "nexuiz-music", ("/sound/cdtracks/",), "GPL-2+", "usr/share/games/nexuiz/data/music.pk3"
    ),
    Package(
        "ufoai-music",
        ("/music/",),
        "GPL-2+ / GPL-2 / CC-BY-3.0 / CC-BY-SA-3.0 / public domain (per file)",
        "usr/share/games/ufoai/base/0music.pk3",
    ),
]
# Stage 7 (model card): more and other recordings, the same Debian 12 main, packages left out
# of stage 6 for size (supertuxkart-data, 0ad-data) and ones not looked at then. Still mostly
# instrumental: Debian main ships few songs with vocals (train/SOURCES.md).
KENTA_CHO = "BSD-2-Clause (the game's licence, music included)"
PACKAGES7 = [
    Package("supertuxkart-data", ("/data/music/",), "CC-BY-SA-3.0 / CC-BY-SA-4.0 / GPL (per file)"),
    Package(
        "0ad-data", ("/audio/music/",), "CC-BY-SA-3.0", "usr/share/games/0ad/mods/public/public.zip"
    ),
    Package("widelands-data", ("/data/music/",), "GPL-2+ / CC-BY-SA-3.0 (per file)"),
    Package("megaglest-data", ("/music/",), "CC-BY-SA-3.0"),
    Package("redeclipse-data", ("/sounds/music/",), "CC-BY-SA-3.0"),
    Package("marsshooter-data", ("/audio/music/",), "CC-BY-SA-3.0 (data/audio/music/*)"),
    Package("flare-game", ("/music/",), "CC-BY-SA-3.0+"),
    Package("warmux-data", ("/music/",), "GPL-2+"),
    Package("drascula-music", ("/drascula/audio/",), "Drascula licence (BSD-like, DFSG-free)"),
    Package("pushover-data", ("/themes/",), "GPL-3+"),
    Package("fillets-ng-data", ("/music/",), "GPL-2"),
    Package("btanks-data", ("/tunes/",), "GPL-2 with the Battle Tanks exception"),
    Package("frozen-bubble-data", ("/snd/",), "GPL-2"),
    Package("powermanga-data", ("/music_",), "GPL-3+"),
    Package("pathological", ("/music/",), "GPL-2+"),
    Package("performous", ("/themes/default/",), "GPL-2+"),
    Package("caveexpress-data", ("/music-",), "GPL-3+"),
    Package("funnyboat", ("/data/",), "GPL-2"),
    Package("scorched3d-data", ("/data/music/",), "GPL-2+"),
    Package("gunroar-data", ("/musics/",), KENTA_CHO),
    Package("torus-trooper-data", ("/musics/",), KENTA_CHO),
    Package("titanion-data", ("/musics/",), KENTA_CHO),
    Package("parsec47-data", ("/sounds/ptn",), KENTA_CHO),
    Package("rrootage-data", ("/sounds/stg_",), KENTA_CHO),
    Package("tumiki-fighters-data", ("/sounds/",), KENTA_CHO),
]
# Songs with vocals kept in public git repositories, each file's licence read from its
# repository (train/SOURCES.md): only those free to reuse and adapt (CC BY, CC BY-SA). Taken at
# pinned commits, from a local mirror if there is one, else a blobless clone.
GIT_SONGS7 = [
    midi_corpus.Source(
        "ultrastar-songs",
        "https://github.com/UltraStar-Deluxe/songs",
        "c9246c799050acec96a03183df4b85493d283d51",
        "Creative Commons/Joshua Morin - On the run",
        "CC-BY-SA-2.5 (its license.txt)",
    ),
    midi_corpus.Source(
        "jamendolyrics",
        "https://github.com/f90/jamendolyrics",
        "6e54911444920137abe6fa81d4b4303dff7c73fe",
        "mp3/Fantasma_-_Los_Rombos.mp3",
        "CC-BY-SA (JamendoLyrics.csv)",
    ),
]
SETS = {"6": (PACKAGES, []), "7": (PACKAGES7, GIT_SONGS7)}
AUDIO = (".ogg", ".mp3", ".flac", ".opus", ".wav")
MIN_SECONDS = 45.0
EVAL_DIR = ROOT.parent / "shared/eval"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        return float(out)
    except ValueError:
        return 0.0


def _eval_digests(folder: Path) -> set[str]:
    """sha256 of every file under the evaluation folder (dev clips, unannotated tracks),
    and those its manifests list: whatever package a copy turns up in, it is refused."""
    digests: set[str] = set()
    if not folder.is_dir():
        return digests
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digests.add(_sha256(f))
        if f.name == "manifest.csv":
            with open(f) as fp:
                digests |= {row["sha256"] for row in csv.DictReader(fp) if row.get("sha256")}
    return digests


def _take(
    rows: list[tuple[str, str, str, str]],
    seen: set[str],
    banned: set[str],
    name: str,
    f: Path,
    root: Path,
) -> bool:
    """Lists one audio file unless it is short, a duplicate or a file of the evaluation set."""
    secs = _duration(f)
    if secs < MIN_SECONDS:
        return False
    digest = _sha256(f)
    if digest in seen or digest in banned:
        print(f"skip {f.name}: {'an evaluation file' if digest in banned else 'duplicate'}")
        return False
    seen.add(digest)
    rows.append((name, str(f.relative_to(root)), f"{secs:.1f}", digest))
    return True


def fetch_git(
    root: Path,
    songs: list[midi_corpus.Source],
    mirror_root: Path | None,
    rows: list[tuple[str, str, str, str]],
    seen: set[str],
    banned: set[str],
) -> None:
    """The audio files of each git source's folder (or file) at its pinned commit."""
    for src in songs:
        dest = root / "git" / src.name
        dest.mkdir(parents=True, exist_ok=True)
        n = 0
        for name, blob in midi_corpus.git_blobs(src, mirror_root, AUDIO):
            f = dest / Path(name).name
            if hashlib.sha256(blob).hexdigest() in banned:  # never written, not even here
                print(f"skip {name}: an evaluation file")
                continue
            if not f.exists():
                f.write_bytes(blob)
            n += _take(rows, seen, banned, src.name, f, root)
        print(f"{src.name} ({src.commit[:12]}): {n} tracks", flush=True)


def fetch(root: Path, which: str = "6", mirror_root: Path | None = None) -> None:
    packages, songs = SETS[which]
    debs, debx = root / "debs", root / "debx"
    debs.mkdir(parents=True, exist_ok=True)
    names = [p.name for p in packages]
    missing = [n for n in names if not list(debs.glob(f"{n}_*.deb"))]
    if missing:  # apt-get update first (the Makefile's train-deps6 does)
        subprocess.run(["apt-get", "download", "-q", *missing], cwd=debs, check=True)
    # Never a file of the evaluation folder, whatever package it came in.
    banned = _eval_digests(EVAL_DIR)
    rows: list[tuple[str, str, str, str]] = []
    seen: set[str] = set()
    for pkg in packages:
        deb = sorted(debs.glob(f"{pkg.name}_*.deb"))[-1]
        dest = debx / pkg.name
        if not dest.is_dir():
            dest.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
        base = dest
        if pkg.pk3:
            base = dest / "pk3"
            if not base.is_dir():
                with zipfile.ZipFile(dest / pkg.pk3) as z:
                    members = [m for m in z.namelist() if any(s in "/" + m for s in pkg.music)]
                    z.extractall(base, members)
        n = 0
        for f in sorted(base.rglob("*")):
            rel = "/" + str(f.relative_to(dest))
            if f.suffix.lower() not in AUDIO or not any(s in rel for s in pkg.music):
                continue
            n += _take(rows, seen, banned, pkg.name, f, root)
        print(f"{pkg.name} ({deb.name}): {n} tracks", flush=True)
    fetch_git(root, songs, mirror_root, rows, seen, banned)
    with open(root / "tracks.tsv", "w") as f:
        f.write("package\tpath\tseconds\tsha256\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    print(f"{len(rows)} tracks, {sum(float(r[2]) for r in rows) / 60:.0f} minutes")


def read_tracks(root: Path) -> list[dict[str, str]]:
    with open(root / "tracks.tsv") as f:
        return list(csv.DictReader(f, delimiter="\t"))


# ---- labels ---------------------------------------------------------------------------------
MODES = ("fused", "dsp", "learned")


def label(root: Path, jobs: int, part: int, labels: str = "labels") -> None:
    import featherbeat
    from featherbeat.analysis import rhythm

    # The teacher is the weights the analysis loads ($FEATHERBEAT_RHYTHM_WEIGHTS or the
    # packaged file); a second round labels into another folder with the student's weights.
    out = root / labels
    out.mkdir(exist_ok=True)
    tracks = read_tracks(root)
    t0 = time.time()
    for i in range(part, len(tracks), jobs):
        tr = tracks[i]
        dst = out / f"{tr['sha256'][:16]}.npz"
        if dst.exists():
            continue
        t = time.process_time()
        p = featherbeat.analyze(str(root / tr["path"]), rhythm="fused")
        arrays: dict[str, np.ndarray] = {"duration": np.float64(p.source.duration)}
        for mode in MODES:
            # The fused reading is the pipeline's own; the others from the same curves.
            r = p.rhythm if mode == "fused" else rhythm.track(p.curves, mode=mode)
            arrays[f"{mode}_beats"] = np.asarray(r.beats, np.float64)
            arrays[f"{mode}_pos"] = np.asarray(r.beat_position, np.int16)
            arrays[f"{mode}_tempo"] = np.float64(r.tempo)
            arrays[f"{mode}_conf"] = np.float64(r.tempo_confidence)
            arrays[f"{mode}_meter"] = np.int16(r.time_signature)
        tmp = out / f".{dst.stem}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, dst)
        print(
            f"{time.time() - t0:7.1f}s {i} {tr['path']} {float(tr['seconds']):.0f} s audio, "
            f"{time.process_time() - t:.1f} CPU-s, tempi "
            + " ".join(f"{m} {float(arrays[f'{m}_tempo']):.1f}" for m in MODES),
            flush=True,
        )


# ---- windows --------------------------------------------------------------------------------
def f_measure(ref: np.ndarray, est: np.ndarray, win: float = 0.07) -> float:
    """Beat F-measure within +-win, no 5 s skip (windows are cut from inside the track)."""
    return corpus.beat_f_measure(ref, est, win)


def _tempo(beats: np.ndarray) -> float:
    return float(60.0 / np.median(np.diff(beats))) if beats.size >= 3 else 0.0


def judge(
    sel: dict[str, tuple[np.ndarray, np.ndarray]], agree: float, down_agree: float
) -> tuple[bool, float, float] | None:
    """None when the readings (mode -> beats, bar positions) of one stretch disagree, else
    (downbeats trusted, F of the DSP against the learned beats, the same for downbeats)."""
    bf, pf = sel["fused"]
    bd, pd = sel["dsp"]
    bl, pl = sel["learned"]
    if min(bf.size, bd.size, bl.size) < 12:
        return None
    f_dl = f_measure(bd, bl)
    td, tl = _tempo(bd), _tempo(bl)
    if f_dl < agree or abs(td - tl) > 0.04 * max(td, tl):
        return None
    if f_measure(bd, bf) < agree or f_measure(bl, bf) < agree:
        return None
    if not 40 <= _tempo(bf) <= 250:
        return None
    f_down = f_measure(bd[pd == 1], bl[pl == 1])
    # The labels' downbeats: the fused reading's, trusted when the DSP and the learned bar
    # phases agree and the fused one is the DSP's (the fused bar decoder is the DSP's with the
    # model's downbeat cue).
    down_ok = (
        f_down >= down_agree
        and f_measure(bd[pd == 1], bf[pf == 1]) >= down_agree
        and int(pf.max(initial=0)) >= 2
    )
    return down_ok, f_dl, f_down


@dataclass
class Window:
    start: float
    beats: np.ndarray  # the fused reading, seconds from the window start
    pos: np.ndarray
    down_ok: bool
    f_dl: float  # F of the DSP against the learned beats
    f_down: float  # F of the DSP against the learned downbeats


def windows(z: dict[str, np.ndarray], agree: float, down_agree: float, rng) -> list[Window]:
    """The 30 s windows of one track where the readings agree (module docstring)."""
    dur = float(z["duration"])
    span = corpus.CLIP_S
    if dur < span + 2:
        return []
    n = int((dur - 2) // span)
    # A random offset, then back to back: every window a different stretch of the track.
    off = float(rng.uniform(0, dur - 2 - n * span)) + 1.0
    out = []
    for k in range(n):
        w0 = off + k * span
        sel = {}
        for m in MODES:
            b = z[f"{m}_beats"]
            inside = (b >= w0) & (b < w0 + span)
            sel[m] = (b[inside] - w0, z[f"{m}_pos"][inside])
        bf, pf = sel["fused"]
        verdict = judge(sel, agree, down_agree)
        if verdict is None:
            continue
        down_ok, f_dl, f_down = verdict
        out.append(Window(w0, bf, pf, down_ok, f_dl, f_down))
    return out


def _clean_audio(path: Path) -> np.ndarray:
    from featherbeat.analysis.decode import open_audio

    with open_audio(str(path)) as st:
        return np.concatenate(list(st)).astype(np.float64)


def build(
    root: Path,
    out: Path,
    seed: int,
    agree: float,
    down_agree: float,
    jobs: int,
    part: int,
    max_per_track: int,
    labels: str = "labels",
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tracks = read_tracks(root)
    # Plan every window first (cheap: labels only), so shards are a fixed list for any --jobs.
    plan: list[tuple[int, Window, int]] = []
    stats = {"tracks": 0, "windows": 0, "kept": 0, "down_ok": 0}
    per_pkg: dict[str, list[int]] = {}
    for i, tr in enumerate(tracks):
        lab = root / labels / f"{tr['sha256'][:16]}.npz"
        if not lab.exists():
            continue
        with np.load(lab) as zz:
            z = {k: zz[k] for k in zz.files}
        rng = np.random.default_rng(seed * 1_000_003 + i)
        dur = float(z["duration"])
        stats["tracks"] += 1
        stats["windows"] += max(0, int((dur - 2) // corpus.CLIP_S))
        ws = windows(z, agree, down_agree, rng)
        if len(ws) > max_per_track:  # long loops: a spread of them, not one track's hour
            pick = np.sort(rng.choice(len(ws), max_per_track, replace=False))
            ws = [ws[j] for j in pick]
        c = per_pkg.setdefault(tr["package"], [0, 0, 0])
        c[0] += 1
        c[1] += len(ws)
        c[2] += sum(w.down_ok for w in ws)
        for k, w in enumerate(ws):
            plan.append((i, w, seed * 1_000_003 + i * 1009 + k))
    stats["kept"] = len(plan)
    stats["down_ok"] = sum(w.down_ok for _, w, _ in plan)
    if part == 0:
        print(f"plan: {stats}", flush=True)
        for name, (nt, nw, nd) in sorted(per_pkg.items()):
            print(f"  {name}: {nt} tracks, {nw} windows kept, {nd} with downbeats", flush=True)
    # Shards hold windows of consecutive tracks: each process decodes a track once.
    n_shards = -(-len(plan) // corpus.SHARD)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as td:
        cached: tuple[int, np.ndarray] | None = None
        for s in range(part, n_shards, jobs):
            path = out / f"shard_pseudo_{s:05d}.npz"
            if path.exists():
                continue
            items = []
            for i, w, ex_seed in plan[s * corpus.SHARD : (s + 1) * corpus.SHARD]:
                if cached is None or cached[0] != i:
                    cached = (i, _clean_audio(root / tracks[i]["path"]))
                y_all = cached[1]
                i0 = int(round(w.start * corpus.SR))
                y = y_all[i0 : i0 + int(corpus.CLIP_S * corpus.SR)]
                if y.size < int(corpus.CLIP_S * corpus.SR) * 0.95 or np.max(np.abs(y)) < 1e-4:
                    continue
                rng = np.random.default_rng(ex_seed)
                y, tags = corpus.augment(y, rng, Path(td))
                x = corpus.features(y)
                items.append(
                    {
                        "x": x.astype(np.float16),
                        "beats": w.beats.astype(np.float32),
                        "pos": w.pos.astype(np.int16),
                        "bpm": np.float32(_tempo(w.beats)),
                        "meter": np.array(str(int(w.pos.max())) if w.down_ok else "?"),
                        "tags": np.array(tags),
                        "source": np.array(
                            f"{tracks[i]['package']}:{Path(tracks[i]['path']).name}"
                        ),
                        "pseudo": np.int8(1),
                        "down_ok": np.int8(1 if w.down_ok else 0),
                    }
                )
            corpus.write_shard(path, items)
            print(f"{time.time() - t0:7.1f}s pseudo shard {s} done ({len(items)})", flush=True)


# ---- how good are the pseudo-labels? --------------------------------------------------------
def check(dev: Path, agree: float, down_agree: float) -> None:
    """The filter on annotated clips (../shared/eval/dev: read to measure, never trained on):
    each whole clip is one stretch, judged as the windows are; the fused reading is scored
    against the annotations (mir_eval) for the clips kept and the clips dropped, so the
    labels' accuracy on real music is a figure, not a hope."""
    import mir_eval

    import featherbeat
    from featherbeat.analysis import rhythm

    rows = []
    for flac in sorted(dev.glob("*.flac")):
        ann = np.loadtxt(flac.with_suffix(".beats"), ndmin=2)
        p = featherbeat.analyze(str(flac), rhythm="fused")
        sel = {}
        for mode in MODES:
            r = p.rhythm if mode == "fused" else rhythm.track(p.curves, mode=mode)
            b, pos = np.asarray(r.beats), np.asarray(r.beat_position)
            sel[mode] = (b[b >= 5.0], pos[b >= 5.0])  # mir_eval skips the first 5 s
        verdict = judge(sel, agree, down_agree)
        ref = mir_eval.beat.trim_beats(ann[:, 0])
        est = mir_eval.beat.trim_beats(sel["fused"][0])
        f = mir_eval.beat.f_measure(ref, est)
        cmlt = mir_eval.beat.continuity(ref, est)[1]
        fd = np.nan
        if ann.shape[1] > 1:
            fd = mir_eval.beat.f_measure(
                mir_eval.beat.trim_beats(ann[ann[:, 1] == 1, 0]),
                mir_eval.beat.trim_beats(sel["fused"][0][sel["fused"][1] == 1]),
            )
        kept = verdict is not None
        rows.append((flac.stem, kept, bool(kept and verdict[0]), f, cmlt, fd))
        print(
            f"{flac.stem:40s} kept {kept!s:5} bars {rows[-1][2]!s:5} F {f:.3f} "
            f"CMLt {cmlt:.3f} DbF {fd:.3f}",
            flush=True,
        )
    for name, pick in (
        ("kept", [r for r in rows if r[1]]),
        ("dropped", [r for r in rows if not r[1]]),
        ("kept with bars", [r for r in rows if r[2]]),
        ("kept, bars masked", [r for r in rows if r[1] and not r[2]]),
    ):
        if pick:
            a = np.array([r[3:] for r in pick], np.float64)
            print(
                f"{name}: {len(pick)} clips, fused beat F {a[:, 0].mean():.3f}, CMLt "
                f"{a[:, 1].mean():.3f}, downbeat F {np.nanmean(a[:, 2]):.3f}; beat F >= 0.8 "
                f"in {int((a[:, 0] >= 0.8).sum())}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("--out", default="train/out/selftrain")
    f.add_argument("--set", default="6", choices=sorted(SETS), help="6: stage 6's packages")
    f.add_argument("--mirror-root", default=None, help="local git mirrors (owner+name/repo)")
    lab = sub.add_parser("label")
    lab.add_argument("--root", default="train/out/selftrain")
    lab.add_argument("--jobs", type=int, default=1)
    lab.add_argument("--part", type=int, default=0)
    lab.add_argument("--labels", default="labels", help="folder under --root for the readings")
    b = sub.add_parser("build")
    b.add_argument("--root", default="train/out/selftrain")
    b.add_argument("--out", default="train/out/corpus6")
    b.add_argument("--seed", type=int, default=17)
    b.add_argument("--agree", type=float, default=0.9, help="beat F the readings must reach")
    b.add_argument("--down-agree", type=float, default=0.8, help="downbeat F for bar labels")
    b.add_argument("--max-per-track", type=int, default=8)
    b.add_argument("--jobs", type=int, default=1)
    b.add_argument("--part", type=int, default=0)
    b.add_argument("--labels", default="labels", help="folder under --root with the readings")
    c = sub.add_parser("check")
    c.add_argument("--dev", default=str(ROOT.parent / "shared/eval/dev"))
    c.add_argument("--agree", type=float, default=0.9)
    c.add_argument("--down-agree", type=float, default=0.8)
    args = ap.parse_args()
    if args.cmd == "check":
        check(Path(args.dev), args.agree, args.down_agree)
    elif args.cmd == "fetch":
        fetch(Path(args.out), args.set, Path(args.mirror_root) if args.mirror_root else None)
    elif args.cmd == "label":
        label(Path(args.root), args.jobs, args.part, args.labels)
    else:
        build(
            Path(args.root),
            Path(args.out),
            args.seed,
            args.agree,
            args.down_agree,
            args.jobs,
            args.part,
            args.max_per_track,
            args.labels,
        )


if __name__ == "__main__":
    main()
