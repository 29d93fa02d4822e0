"""Fidelity to Spotify's scales: per-track statistics of our analyses against Spotify's range.

    .venv/bin/python bench/fidelity.py                                  # table on stdout
    .venv/bin/python bench/fidelity.py --write docs/benchmarks/fidelity.md
    .venv/bin/python bench/fidelity.py --fit-timbre     # + the timbre scale constants that fit
    .venv/bin/python bench/fidelity.py --split-check 6  # + timbre fitted on half, held-out count
    .venv/bin/python bench/fidelity.py --save-ranges tests/data/spotify_ranges.json --ranges-only

No audio comes with Spotify's responses, so fidelity is judged on distributions: for each
per-track statistic (see ``track_stats``) the 10th-90th percentile range over the genuine
audio-analysis responses in ../shared/spotify/examples, against the median over our analyses of
full-length songs (../shared/eval/unannotated by default; add folders or files as arguments).
A statistic is "inside" when our median lies in Spotify's range.

Why these statistics: they are what clients compute on (the Eternal Jukebox's timbre, pitch and
loudness distances; visualizers' loudness and loudness_max_time envelopes; confidence filters).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread: see bench/accuracy.py

import argparse  # noqa: E402
import json
import multiprocessing
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the checkout; a git worktree one level deeper finds it one level up.
SHARED = next(
    (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()),
    ROOT.parent / "shared",
)
EXAMPLES = SHARED / "spotify" / "examples"
UNANNOTATED = SHARED / "eval" / "unannotated"
AUDIO_SUFFIXES = (".mp3", ".ogg", ".flac", ".wav", ".m4a", ".opus")
# Segments within this many dB of the track's loudest (90th percentile of loudness_max) are
# "loud": pitch and timbre statistics ignore silence and fade tails, which carry no pitch.
LOUD_RANGE_DB = 20.0
PERCENTILES = (10.0, 90.0)


def _col(items: list[dict], key: str) -> np.ndarray:
    return np.array([float(x.get(key, np.nan)) for x in items], dtype=np.float64)


def _median(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else float("nan")


def _iqr(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan")
    q1, q3 = np.percentile(a, [25, 75])
    return float(q3 - q1)


def track_stats(analysis: dict[str, Any]) -> dict[str, float]:
    """The per-track statistics of one audio-analysis object (Spotify's or ours), by name."""
    track = analysis.get("track", {})
    seg = analysis.get("segments", [])
    beats, tatums = analysis.get("beats", []), analysis.get("tatums", [])
    bars, sections = analysis.get("bars", []), analysis.get("sections", [])
    starts = _col(seg, "start")
    durations = _col(seg, "duration")
    duration = float(track.get("duration") or (starts[-1] + durations[-1] if seg else 0.0))
    lmax = _col(seg, "loudness_max")
    lstart = _col(seg, "loudness_start")
    pitches = np.array([s["pitches"] for s in seg], dtype=np.float64).reshape(-1, 12)
    timbre = np.array([s["timbre"] for s in seg], dtype=np.float64).reshape(-1, 12)
    loud = lmax >= np.percentile(lmax, 90) - LOUD_RANGE_DB if seg else np.zeros(0, dtype=bool)
    out: dict[str, float] = {
        "segments per second": len(seg) / duration if duration > 0 else float("nan"),
        "segment median duration (s)": _median(durations),
        "pitch mean (loud segments)": float(pitches[loud].mean()) if loud.any() else np.nan,
        "pitch share > 0.5": float((pitches[loud] > 0.5).mean()) if loud.any() else np.nan,
        "share of segments with max pitch 1": float(
            (pitches.max(axis=1) >= 0.9995).mean() if seg else np.nan
        ),
    }
    for d in range(12):
        out[f"timbre {d + 1} median"] = _median(timbre[loud, d])
        out[f"timbre {d + 1} IQR"] = _iqr(timbre[loud, d])
    out["loudness_max IQR (dB)"] = _iqr(lmax)
    out["loudness_max - loudness_start (dB)"] = _median(lmax - lstart)
    out["loudness_max_time (s)"] = _median(_col(seg, "loudness_max_time"))
    for name, items in (
        ("segments", seg),
        ("beats", beats),
        ("bars", bars),
        ("tatums", tatums),
        ("sections", sections),
    ):
        out[f"{name} confidence median"] = _median(_col(items, "confidence"))
    out["tatums per beat"] = len(tatums) / len(beats) if beats else float("nan")
    out["sections per minute"] = 60.0 * len(sections) / duration if duration > 0 else np.nan
    sec_loud = _col(sections, "loudness")
    out["section loudness range (dB)"] = (
        float(sec_loud.max() - sec_loud.min()) if sec_loud.size else np.nan
    )
    for key in ("tempo", "key", "mode", "time_signature"):
        out[f"track {key}_confidence"] = float(track.get(f"{key}_confidence", np.nan))
    out["track loudness - median loudness_max (dB)"] = float(
        track.get("loudness", np.nan)
    ) - _median(lmax)
    return out


def spotify_analyses(folder: Path = EXAMPLES) -> dict[str, dict[str, Any]]:
    """The genuine audio-analysis responses (files with segments and a track header)."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("segments") and data.get("track"):
            out[path.stem] = data
    return out


def ranges(stats: Iterable[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Per statistic, the (10th, 90th) percentile over tracks."""
    rows = list(stats)
    out = {}
    for name in rows[0]:
        values = np.array([r[name] for r in rows], dtype=np.float64)
        values = values[np.isfinite(values)]
        lo, hi = np.percentile(values, PERCENTILES)
        out[name] = (float(lo), float(hi))
    return out


def scaled_timbre(raw: np.ndarray, gain: np.ndarray, level: np.ndarray) -> np.ndarray:
    """features/timbre.segment_timbre's mapping with the given constants (for --split-check)."""
    from featherbeat.analysis.features.timbre import SILENCE

    out = SILENCE[None, :] + gain[None, :] * raw + level[None, :] * raw[:, :1]
    out[:, 0] = np.maximum(0.0, gain[0] * raw[:, 0] + level[0])
    return out


def timbre_inside(
    raws: list[np.ndarray],
    gain: np.ndarray,
    level: np.ndarray,
    ref: dict[str, tuple[float, float]],
) -> int:
    """How many of the 24 timbre statistics (median over ``raws``' songs) are in ``ref``."""
    scaled = [scaled_timbre(r, gain, level) for r in raws]
    count = 0
    for d in range(12):
        med = float(np.median([np.median(t[:, d]) for t in scaled]))
        iqr = float(np.median([_iqr(t[:, d]) for t in scaled]))
        lo, hi = ref[f"timbre {d + 1} median"]
        count += int(lo <= med <= hi)
        lo, hi = ref[f"timbre {d + 1} IQR"]
        count += int(lo <= iqr <= hi)
    return count


def split_check(
    raws: list[np.ndarray],
    ref: dict[str, tuple[float, float]],
    target: dict[str, float],
    trials: int,
) -> list[tuple[int, int]]:
    """Fit the timbre constants on a random half of the songs, count the 24 timbre statistics
    inside Spotify's range on the other half: (held-out inside, in-sample inside) per trial."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(trials):
        order = rng.permutation(len(raws))
        fit_on = [raws[i] for i in order[: len(raws) // 2]]
        held = [raws[i] for i in order[len(raws) // 2 :]]
        gain, level = fit_timbre(fit_on, target)
        out.append((timbre_inside(held, gain, level, ref), timbre_inside(fit_on, gain, level, ref)))
    return out


def analyse_file(path: str) -> tuple[str, dict[str, Any], float, np.ndarray]:
    """Our Spotify-format analysis of one file (run in a worker process), and the raw timbre
    projections (before scaling) of its loud segments, for --fit-timbre."""
    from featherbeat import analyze
    from featherbeat.analysis.features.timbre import surface_projections
    from featherbeat.analysis.formats.spotify import to_dict
    from featherbeat.analysis.spans import frame_of, frame_rows

    started = time.process_time()
    profile = analyze(path)
    cpu = time.process_time() - started
    seg, curves = profile.segments, profile.curves
    n = int(curves.loudness.size)
    raw = np.zeros((0, 12))
    if len(seg) and n:
        # The same coarse frames find_segments reads the surface on.
        a = frame_of(seg.start, curves.frame_rate, n - 1)
        raw = surface_projections(frame_rows(curves.timbre, n), a, n)
        lmax = seg.loudness_max
        raw = raw[lmax >= np.percentile(lmax, 90) - LOUD_RANGE_DB]
    return path, to_dict(profile), cpu, raw


def fit_timbre(raws: list[np.ndarray], target: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(GAIN, LEVEL) of features/timbre.py putting the median over songs of each dimension's
    median and IQR (loud segments) on ``target`` (the median over Spotify's responses).

    Dimension 1: max(0, gain x level + offset). Dimensions 2..12: SILENCE + gain x (projection +
    r x level), gain from the IQR and r from the median, alternated until both settle.
    """
    from featherbeat.analysis.features.timbre import SILENCE

    def over_songs(f: Any) -> float:
        return float(np.median([f(r) for r in raws if r.shape[0]]))

    def iqr(x: np.ndarray) -> float:
        q1, q3 = np.percentile(x, [25, 75])
        return float(q3 - q1)

    gain, level = np.ones(12), np.zeros(12)
    gain[0] = target["timbre 1 IQR"] / over_songs(lambda r: iqr(r[:, 0]))
    level[0] = target["timbre 1 median"] - gain[0] * over_songs(lambda r: np.median(r[:, 0]))
    typical_level = over_songs(lambda r: np.median(r[:, 0]))
    for d in range(1, 12):
        share, g = 0.0, 1.0
        for _ in range(30):
            g = target[f"timbre {d + 1} IQR"] / over_songs(
                lambda r: iqr(r[:, d] + share * r[:, 0])  # noqa: B023 (used at once)
            )
            now = over_songs(
                lambda r: SILENCE[d] + g * np.median(r[:, d] + share * r[:, 0])  # noqa: B023
            )
            share += (target[f"timbre {d + 1} median"] - now) / (g * typical_level)
        gain[d], level[d] = g, g * share
    return gain, level


def audio_files(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        elif item.suffix.lower() in AUDIO_SUFFIXES:
            files.append(item)
    return files


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def table(
    ref: dict[str, tuple[float, float]], ours: dict[str, dict[str, float]]
) -> tuple[str, int]:
    """Markdown table (statistic, Spotify 10-90 %, our median, our 10-90 %, inside) and count."""
    lines = [
        "| statistic | Spotify 10-90 % | ours: median | ours: 10-90 % | inside |",
        "|---|---|---:|---|:---:|",
    ]
    inside = 0
    for name, (lo, hi) in ref.items():
        vals = np.array([s[name] for s in ours.values()], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        med = float(np.median(vals)) if vals.size else float("nan")
        olo, ohi = np.percentile(vals, PERCENTILES) if vals.size else (np.nan, np.nan)
        ok = bool(lo <= med <= hi)
        inside += ok
        lines.append(
            f"| {name} | {_fmt(lo)} .. {_fmt(hi)} | {_fmt(med)} | {_fmt(olo)} .. {_fmt(ohi)} "
            f"| {'yes' if ok else '**no**'} |"
        )
    return "\n".join(lines), inside


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", type=Path, default=[UNANNOTATED])
    ap.add_argument("--examples", type=Path, default=EXAMPLES)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--write", type=Path, help="markdown page to write the table to")
    ap.add_argument("--save-ranges", type=Path, help="write Spotify's ranges as JSON here")
    ap.add_argument("--ranges-only", action="store_true", help="with --save-ranges: no analyses")
    ap.add_argument(
        "--fit-timbre", action="store_true", help="print the timbre scale constants that fit"
    )
    ap.add_argument(
        "--split-check",
        type=int,
        default=0,
        metavar="TRIALS",
        help="fit timbre on random halves of the songs, count held-out statistics inside",
    )
    ap.add_argument("--per-track", action="store_true", help="also print every track's values")
    args = ap.parse_args()

    spotify = spotify_analyses(args.examples)
    ref = ranges(track_stats(a) for a in spotify.values())
    if args.save_ranges:
        args.save_ranges.write_text(
            json.dumps({k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in ref.items()}, indent=1)
            + "\n"
        )
        if args.ranges_only:
            return 0
    files = [str(p) for p in audio_files(args.inputs)]
    with multiprocessing.get_context("spawn").Pool(max(1, args.jobs)) as pool:
        results = pool.map(analyse_file, files, chunksize=1)
    ours = {Path(p).name: track_stats(a) for p, a, _, _ in results}
    cpu = sum(c for _, _, c, _ in results)
    spotify_stats = [track_stats(a) for a in spotify.values()]
    target = {k: float(np.median([s[k] for s in spotify_stats])) for k in ref}
    if args.split_check:
        raws = [r for _, _, _, r in results if r.shape[0]]
        for held, fitted in split_check(raws, ref, target, args.split_check):
            print(
                f"timbre fitted on half the songs: {held} of 24 inside on the other half ({fitted} on its own)"
            )
    if args.fit_timbre:
        gain, level = fit_timbre([r for _, _, _, r in results], target)
        np.set_printoptions(precision=4, suppress=True, linewidth=120)
        print(f"features/timbre.py:\nGAIN = {gain!r}\nLEVEL = {level!r}\n")
    text, inside = table(ref, ours)
    head = (
        f"{inside} of {len(ref)} statistics inside Spotify's 10-90 % range "
        f"({len(spotify)} Spotify analyses, {len(ours)} of our analyses, {cpu:.1f} CPU-s).\n"
    )
    print(head)
    print(text)
    if args.per_track:
        for name, stats in ours.items():
            print(f"\n{name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in stats.items()))
    if args.write:
        _write_page(args.write, head, text)
    return 0


def _write_page(path: Path, head: str, text: str) -> None:
    """Replace the generated block of ``path`` (between markers), keeping hand-written prose."""
    begin, end = "<!-- begin fidelity table -->", "<!-- end fidelity table -->"
    block = f"{begin}\n{head}\n{text}\n{end}"
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end) :]
    else:
        new = (old.rstrip() + "\n\n" if old else "") + block + "\n"
    path.write_text(new)


if __name__ == "__main__":
    sys.exit(main())
