"""Tempo stability under lossy encoding: does the headline tempo survive MP3, AAC and Opus?

    .venv/bin/python bench/codecs.py                          # both trackers, all tracks
    .venv/bin/python bench/codecs.py --rhythm learned --limit 10 --per-file

Every dev clip (../shared/eval/dev) and every track of ../shared/eval/unannotated is
transcoded (PyAV, i.e. ffmpeg's encoders; stereo kept, 44.1 kHz for MP3/AAC, 48 kHz for Opus)
to MP3 96k and 128k, AAC 128k and Opus 64k, cached under /tmp/featherbeat-codecs, and
analysed by featherbeat with each tracker. Reported per codec and tracker: the share of tracks
whose tempo is within 4 % of the tempo of the original file, and the "confident flips": tracks
whose tempo moved by more than 4 % while the confidence of both readings stayed above 0.5.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import hashlib
import json
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
CACHE = Path("/tmp/featherbeat-codecs")
CODECS = {  # name: (container, encoder, extension, sample rate, bit rate)
    "mp3-96k": ("mp3", "libmp3lame", "mp3", 44100, 96_000),
    "mp3-128k": ("mp3", "libmp3lame", "mp3", 44100, 128_000),
    "aac-128k": ("adts", "aac", "aac", 44100, 128_000),
    "opus-64k": ("ogg", "libopus", "opus", 48000, 64_000),
}
FRAME = {"libmp3lame": 1152, "aac": 1024, "libopus": 960}


def transcode(src: Path, codec: str) -> Path:
    import av

    fmt, enc, ext, rate, bitrate = CODECS[codec]
    dst = CACHE / codec / f"{src.stem}.{ext}"
    if dst.exists():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.stem + ".tmp." + ext)
    with av.open(str(src)) as inp, av.open(str(tmp), "w", format=fmt) as out:
        layout = "stereo" if inp.streams.audio[0].channels >= 2 else "mono"
        st = out.add_stream(enc, rate=rate)
        st.bit_rate = bitrate
        st.layout = layout
        # The encoder takes fixed-size frames of its own sample format; the FIFO regroups.
        res = av.AudioResampler(format=st.format.name, layout=layout, rate=rate)
        fifo = av.AudioFifo()
        n = FRAME[enc]
        for frame in inp.decode(audio=0):
            frame.pts = None  # the FIFO checks timestamps; the resampler's own count is enough
            for r in res.resample(frame):
                r.pts = None
                fifo.write(r)
            while fifo.samples >= n:
                for pkt in st.encode(fifo.read(n)):
                    out.mux(pkt)
        for r in res.resample(None):
            r.pts = None
            fifo.write(r)
        if fifo.samples:
            for pkt in st.encode(fifo.read(fifo.samples)):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    tmp.replace(dst)
    return dst


def analysis_stamp() -> str:
    """Hash of the weights file the analysis will load ($FEATHERBEAT_RHYTHM_WEIGHTS or the
    packaged one: a candidate's readings must not be cached as the packaged weights') and of
    every source file of the analysis core."""
    import featherbeat.analysis
    from featherbeat.analysis.rhythm import learned

    h = hashlib.sha256()
    weights = learned.env_weights_path()
    if weights.exists():
        h.update(weights.read_bytes())
    src = Path(featherbeat.analysis.__file__).resolve().parent
    for f in sorted(src.rglob("*.py")):
        h.update(str(f.relative_to(src)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def run_one(path: str, mode: str) -> dict:
    import featherbeat

    r = featherbeat.analyze(path, rhythm=mode).rhythm
    return {"tempo": r.tempo, "conf": r.tempo_confidence}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rhythm", default="learned,dsp", help="trackers (comma-separated)")
    ap.add_argument("--limit", type=int, default=0, help="first N tracks only")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--per-file", action="store_true")
    ap.add_argument("--json", type=Path, help="write all readings here")
    ap.add_argument("--fresh", action="store_true", help="ignore cached readings")
    ap.add_argument(
        "--readings",
        type=Path,
        default=CACHE / "readings.json",
        help="the readings cache (another file for a candidate's weights keeps the shared one)",
    )
    args = ap.parse_args(argv)
    tracks = (
        sorted((EVAL / "dev").glob("*.flac"))
        + sorted(p for p in (EVAL / "unannotated").iterdir() if p.suffix in (".ogg", ".mp3"))
        if EVAL.is_dir()
        else []
    )
    if not tracks:
        print(f"no evaluation audio at {EVAL}", file=sys.stderr)
        return 2
    if args.limit:
        tracks = tracks[: args.limit]
    modes = [m.strip() for m in args.rhythm.split(",")]
    t0 = time.time()
    versions: dict[str, list[Path]] = {"original": tracks}
    for codec in CODECS:
        versions[codec] = [transcode(t, codec) for t in tracks]
    t_enc = time.time() - t0
    # Readings are cached per (tracker, file) for one weights file and one analysis code (the
    # hash of both): run again after more tracks are encoded and only the new ones are
    # analysed (--fresh to redo). A change of a confidence in the code is a new stamp, so
    # readings of the old code are never mixed in.
    stamp = analysis_stamp()
    cache_file = args.readings
    cached = json.loads(cache_file.read_text()) if cache_file.exists() and not args.fresh else {}
    if cached.get("stamp") != stamp:
        cached = {"stamp": stamp}
    jobs = [(str(p), m) for m in modes for v in versions.values() for p in v]
    todo = [j for j in jobs if f"{j[1]}|{j[0]}" not in cached]
    with multiprocessing.Pool(max(1, min(2, args.jobs))) as pool:
        out = pool.starmap(run_one, todo)
    cached.update({f"{m}|{p}": o for (p, m), o in zip(todo, out, strict=True)})
    cache_file.write_text(json.dumps(cached))
    readings = {f"{m}|{p}": cached[f"{m}|{p}"] for p, m in jobs}
    lines = [
        "| tracker | codec | tracks | tempo within 4 % | confident flips (conf > 0.5) |",
        "|---|---|---|---|---|",
    ]
    per_file = []
    for m in modes:
        for codec in CODECS:
            same, flips = 0, 0
            for orig, enc in zip(versions["original"], versions[codec], strict=True):
                a, b = readings[f"{m}|{orig}"], readings[f"{m}|{enc}"]
                ok = a["tempo"] > 0 and abs(b["tempo"] - a["tempo"]) <= 0.04 * a["tempo"]
                ok = ok or (a["tempo"] == 0 and b["tempo"] == 0)
                same += ok
                if not ok and min(a["conf"], b["conf"]) > 0.5:
                    flips += 1
                if not ok:
                    per_file.append(
                        f"{m:8s} {codec:9s} {orig.stem:40s} {a['tempo']:6.1f} ({a['conf']:.2f}) "
                        f"-> {b['tempo']:6.1f} ({b['conf']:.2f})"
                    )
            n = len(tracks)
            lines.append(f"| {m} | {codec} | {n} | {same / n:.3f} ({same}/{n}) | {flips} |")
    print("\n".join(lines))
    print(
        f"{len(tracks)} tracks; encoding {t_enc:.0f} s (cached after the first run), "
        f"analysis wall {time.time() - t0 - t_enc:.0f} s"
    )
    if args.per_file:
        print("\n".join(per_file))
    if args.json:
        args.json.write_text(json.dumps(readings, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
