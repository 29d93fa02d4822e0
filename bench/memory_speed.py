"""Peak memory and CPU time of `featherbeat analyze` on MP3s of 3 minutes to hours, librosa beside it.

    .venv/bin/python bench/memory_speed.py [--minutes 3 30 60 180] [--opus-minutes 360]
                                           [--librosa-python PY] [--librosa-minutes 3]
                                           [--stage-peaks] [--write-doc]

What is measured, per file, each in a fresh process:
- featherbeat: the real console script ``featherbeat analyze FILE -o OUT --quiet``. CPU seconds
  are user+sys of that whole process (interpreter start-up and imports included), from
  ``os.wait4``. Peak memory is VmHWM of that process, read from /proc/self/status at exit by a
  ``sitecustomize`` hook put on PYTHONPATH for the run (not ru_maxrss: VmHWM is what the
  service's watchdog reads).
- librosa (reference): ``librosa.load(FILE, sr=22050)`` + ``librosa.beat.beat_track`` in the
  throwaway venv given by ``--librosa-python`` (default /tmp/peer-librosa/bin/python), measured
  the same way. Numba's JIT compilation is part of what a user pays, so it is counted.

The inputs are built at bench time outside the repository (a temp folder): the tracks of
../shared/eval/unannotated/ decoded, resampled to 44.1 kHz stereo and concatenated (looping)
to the wanted length, written block by block as MP3 with soundfile (``--opus-minutes``: as
48 kHz stereo Ogg Opus). Nothing is committed.

``--stage-peaks`` adds, per input, one more fresh process that runs ``featherbeat.analyze`` and
the Spotify JSON writer with each stage wrapped: before a stage the peak is reset (writing 5 to
/proc/self/clear_refs resets VmHWM to the current RSS), after it VmHWM is read. So each figure is
the highest resident size *during* that stage, on top of what the earlier stages left.

Bars (issue 13): <= 60 MB for 3 minutes, <= 100 MB for 60 minutes, 3 hours (MP3) and 6 hours
(Opus); <= 1 CPU-second for 3 minutes; the CPU of 3 hours <= 3.2 x that of 60 minutes.

``--repeat N`` runs the inputs round after round (60 min, 3 h, 60 min, 3 h, ...) and keeps each
input's fastest run for the table. This VM's speed drifts over minutes (2026-12-07: the same
60-minute file 17.2-25.3 CPU-s, the 3-hour one 47.6-67.2, on a quiet machine within the hour),
so with N >= 3 the linearity bar is judged on the median of the per-round ratios (the two inputs
of a round ran back to back), and best / best is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
UNANNOTATED = ROOT.parent / "shared" / "eval" / "unannotated"
DOC = ROOT / "docs" / "benchmarks" / "memory_speed.md"
FEATHERBEAT = Path(sys.executable).parent / "featherbeat"
RATE = 44100
BARS = {3: (60, 1.0), 60: (100, None), 180: (100, None), 360: (100, None)}
CPU_LINEARITY = (60, 180, 3.2)  # the CPU of 180 minutes <= 3.2 x that of 60, in one run

# Written to a temp folder put first on PYTHONPATH: reports VmHWM of the measured process.
_SITECUSTOMIZE = """
import atexit, os
def _report():
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    with open(os.environ["FB_BENCH_HWM"], "w") as out:
        out.write(str(kb))
if os.environ.get("FB_BENCH_HWM"):
    atexit.register(_report)
"""

_LIBROSA = """
import sys, librosa
y, sr = librosa.load(sys.argv[1], sr=22050)
tempo, beats = librosa.beat.beat_track(y=y, sr=sr)
print(float(tempo[0] if getattr(tempo, "ndim", 0) else tempo), len(beats))
"""


# Run in a fresh process by --stage-peaks: the peak resident size during each stage.
_STAGE_PEAKS = """
import contextlib, io, json, sys, time
import featherbeat
from featherbeat.analysis import pipeline
from featherbeat.analysis.formats import write

def hwm_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024

def reset():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

peaks = {}
guard = pipeline.guard

@contextlib.contextmanager
def wrapped(profile, stage, *args, **kw):
    if not kw.get("trim", True):  # the decode loop's consumers: one figure for the whole pass
        with guard(profile, stage, *args, **kw):
            yield
        return
    if "decode pass" not in peaks:
        peaks["decode pass"] = round(hwm_mb(), 1)
    reset()
    try:
        with guard(profile, stage, *args, **kw):
            yield
    finally:
        peaks[stage] = max(peaks.get(stage, 0.0), round(hwm_mb(), 1))

pipeline.guard = wrapped
profile = featherbeat.analyze(sys.argv[1])
reset()
with open(sys.argv[2], "w") as out:
    write(profile, "spotify", out)
peaks["JSON"] = round(hwm_mb(), 1)
print(json.dumps(peaks))
"""

STAGES = ("decode pass", "rhythm", "segments", "key", "sections", "fades", "loudness", "JSON")


@dataclass
class Run:
    tool: str
    minutes: float
    peak_mb: float
    cpu_s: float
    wall_s: float
    ok: bool
    note: str = ""
    fmt: str = "MP3"
    stages: dict[str, float] | None = None
    round_cpu_s: list[float] | None = None  # CPU of every repeat, in round order


def input_path(minutes: float, folder: Path, fmt: str = "MP3") -> Path:
    return folder / f"bench_{minutes:g}min.{'mp3' if fmt == 'MP3' else 'opus'}"


def build_mp3(minutes: float, folder: Path, fmt: str = "MP3") -> Path:
    """A stereo file of ``minutes`` looping the unannotated tracks: 44.1 kHz MP3 (128 kbit/s),
    or 48 kHz Ogg Opus (96 kbit/s) with ``fmt="Opus"``.

    The ~25-minute loop is encoded once (PyAV: LAME / libopus) and its packets are muxed again
    and again with shifted timestamps up to the length: a 6-hour input costs one encode of 25
    minutes, not of 6 hours (on a busy 2-core machine that is minutes, not an hour). The
    container is written by FFmpeg's muxer, so headers (MP3's Xing frame count, Ogg granule
    positions) describe the whole file.
    """
    import av
    import numpy as np
    import soundfile as sf
    import soxr

    path = input_path(minutes, folder, fmt)
    sources = sorted(p for p in UNANNOTATED.iterdir() if p.suffix in (".mp3", ".ogg"))
    if not sources:
        raise SystemExit(f"no audio in {UNANNOTATED}")
    rate = RATE if fmt == "MP3" else 48000
    container, codec = ("mp3", "libmp3lame") if fmt == "MP3" else ("ogg", "libopus")
    todo = int(minutes * 60 * rate)
    part = path.with_suffix(".part")
    with av.open(str(part), "w", format=container) as out:
        stream: Any = out.add_stream(codec, rate=rate, layout="stereo")
        stream.bit_rate = 128000 if fmt == "MP3" else 96000
        loop: list[tuple[bytes, int]] = []  # (payload, duration) of the first pass
        time_base = Fraction(1, rate)
        clock = 0  # in time_base units: timestamps are ours (the encoder leaves them unset)

        def mux(payload: bytes, duration: int) -> None:
            nonlocal clock
            packet = av.Packet(payload)
            packet.pts = packet.dts = clock
            packet.duration = duration
            packet.time_base = time_base
            packet.stream = stream
            out.mux(packet)
            clock += duration

        def keep(packets: list[av.Packet]) -> None:
            for packet in packets:
                if packet.size and clock < todo:
                    loop.append((bytes(packet), int(packet.duration or 0)))
                    mux(*loop[-1])

        cache = folder / f"loop_{fmt}.pickle"  # the encoded loop, for the next length
        if cache.exists():
            loop = pickle.loads(cache.read_bytes())
        else:
            for src in sources:
                with sf.SoundFile(src) as f:
                    resampler = soxr.ResampleStream(f.samplerate, rate, 2, dtype="float32")
                    for block in f.blocks(blocksize=65536, dtype="float32", always_2d=True):
                        stereo = (
                            block if block.shape[1] == 2 else np.repeat(block[:, :1], 2, axis=1)
                        )
                        chunk = resampler.resample_chunk(np.ascontiguousarray(stereo[:, :2]))
                        if chunk.shape[0]:
                            frame = av.AudioFrame.from_ndarray(
                                np.ascontiguousarray(chunk.T), format="fltp", layout="stereo"
                            )
                            frame.sample_rate = rate
                            keep(stream.encode(frame))
            keep(stream.encode(None))
            if clock >= todo:  # the loop was cut short: not cached
                loop = []
            else:
                cache.write_bytes(pickle.dumps(loop))
        while clock < todo and loop:
            for payload, duration in loop:
                if clock >= todo:
                    break
                mux(payload, duration)
    part.rename(path)
    return path


def drop_cached_libraries(prefix: str = sys.prefix) -> int:
    """Drop the page cache of the shared libraries under ``prefix`` (posix_fadvise DONTNEED):
    the next process reads them from disk. Returns how many files were dropped.

    Why: a process's resident size counts the library pages it has mapped, and how many the
    kernel maps per page fault can depend on how the file came into the page cache (the
    previous session measured 39 against 25 MB of file pages with PyAV + numpy + soundfile
    imported, in a venv pip had just written against the same files dropped and read again).
    Not reproduced on 2026-12-07 14:00 UTC (46 MB resident after those imports either way,
    files read whole into the cache or dropped), so this only makes every run start from the
    same state: the libraries read from disk as they are used.
    """
    dropped = 0
    for folder, _, names in os.walk(prefix):
        for name in names:
            if ".so" not in name:
                continue
            try:
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                dropped += 1
            finally:
                os.close(fd)
    return dropped


def measure(
    tool: str, minutes: float, argv: list[str], env: dict[str, str], fmt: str = "MP3"
) -> Run:
    with tempfile.NamedTemporaryFile(prefix="hwm-", delete=False) as tmp:
        hwm_file = tmp.name
    env = dict(env, FB_BENCH_HWM=hwm_file)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()  # small: -o used
    proc.stdout.close()
    proc.stderr.close()
    try:
        peak = int(Path(hwm_file).read_text() or 0) / 1024
    except (OSError, ValueError):
        peak = float("nan")
    finally:
        os.unlink(hwm_file)
    ok = os.waitstatus_to_exitcode(status) == 0
    note = "" if ok else (err.strip().splitlines() or ["failed"])[-1][:80]
    if ok and tool == "librosa":
        note = f"tempo {float(out.split()[0]):.1f}"
    return Run(tool, minutes, peak, usage.ru_utime + usage.ru_stime, wall, ok, note, fmt)


def stage_peaks(path: Path, out: Path, env: dict[str, str]) -> dict[str, float] | None:
    """Peak resident MB during each stage, from a fresh process (see the module doc)."""
    proc = subprocess.run(
        [sys.executable, "-c", _STAGE_PEAKS, str(path), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"stage peaks failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    peaks: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return peaks


def _label(minutes: float, fmt: str) -> str:
    return f"{minutes / 60:g} h {fmt}" if minutes >= 120 else f"{minutes:g} min {fmt}"


def table(runs: list[Run]) -> str:
    lines = [
        "| tool | input | peak VmHWM (MB) | CPU user+sys (s) | wall (s) | bar | note |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in runs:
        bar = ""
        if r.tool == "featherbeat" and r.minutes in BARS:
            mb, cpu = BARS[int(r.minutes)]
            met = r.peak_mb <= mb and (cpu is None or r.cpu_s <= cpu)
            bar = f"{'met' if met else 'MISSED'} (<= {mb} MB" + (f", <= {cpu:g} s)" if cpu else ")")
        lines.append(
            f"| {r.tool} | {_label(r.minutes, r.fmt)} | {r.peak_mb:.1f} | {r.cpu_s:.2f} | "
            f"{r.wall_s:.1f} | {bar} | {r.note if r.ok else 'FAILED: ' + r.note} |"
        )
    by = {(r.tool, r.minutes, r.fmt): r for r in runs}
    ratios = []
    for (tool, minutes, fmt), lib in by.items():
        fb = by.get(("featherbeat", minutes, fmt))
        if tool == "librosa" and lib.ok and fb is not None and fb.ok:
            ratios.append(
                f"- {_label(minutes, fmt)}: librosa needs {lib.peak_mb / fb.peak_mb:.1f}x the "
                f"memory and {lib.cpu_s / fb.cpu_s:.1f}x the CPU time of featherbeat"
            )
    short, long, limit = CPU_LINEARITY
    a, b = by.get(("featherbeat", short, "MP3")), by.get(("featherbeat", long, "MP3"))
    if a is not None and b is not None and a.ok and b.ok and a.cpu_s > 0:
        ratio = b.cpu_s / a.cpu_s
        judged = ratio
        paired = ""
        ra, rb = a.round_cpu_s or [], b.round_cpu_s or []
        if len(ra) >= 3 and len(ra) == len(rb):
            # Each round ran the two inputs back to back, so a round's ratio compares runs
            # of the same spell of this VM's drifting speed; their median is what the bar
            # judges (best / best can pair a fast spell with a slow one).
            per_round = [y / x for x, y in zip(ra, rb, strict=True) if x > 0]
            judged = statistics.median(per_round)
            paired = (
                f"; per round {', '.join(f'{q:.2f}' for q in per_round)}, "
                f"median {judged:.2f} (judged)"
            )
        ratios.append(
            f"- CPU of {_label(long, 'MP3')} / {_label(short, 'MP3')}: best / best {ratio:.2f}"
            f"{paired} ({'met' if judged <= limit else 'MISSED'}, bar <= {limit:g}; "
            f"{long / short:g} would be exactly linear)"
        )
    staged = [r for r in runs if r.stages]
    if staged:
        lines_s = [
            "",
            "Peak resident MB during each stage (`--stage-peaks`, one more process per input):",
            "",
            "| input | " + " | ".join(STAGES) + " |",
            "|---|" + "---:|" * len(STAGES),
        ]
        for r in staged:
            cells = [f"{r.stages.get(k, float('nan')):.1f}" for k in STAGES]  # type: ignore[union-attr]
            lines_s.append(f"| {_label(r.minutes, r.fmt)} | " + " | ".join(cells) + " |")
        lines += lines_s
    return "\n".join(lines + ([""] + ratios if ratios else []))


START, END = "<!-- memory_speed:begin -->", "<!-- memory_speed:end -->"


def write_doc(text: str, command: str) -> None:
    """Replace the measured part of the doc (between the markers), keep the prose around it."""
    block = (
        f"{START}\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on this machine "
        f"({os.cpu_count()} cores; the analysis itself is single-threaded) with:\n\n"
        f"    {command}\n\n{text}\n{END}"
    )
    old = DOC.read_text() if DOC.exists() else f"# Memory and speed\n\n{START}\n{END}\n"
    if START not in old or END not in old:
        old = old.rstrip() + f"\n\n{START}\n{END}\n"
    head, rest = old.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(head + block + tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="*", default=[3, 30, 60], help="MP3 inputs")
    ap.add_argument("--opus-minutes", type=float, nargs="*", default=[], help="Ogg Opus inputs")
    ap.add_argument(
        "--stage-peaks", action="store_true", help="also measure the peak of each stage"
    )
    ap.add_argument("--librosa-python", default="/tmp/peer-librosa/bin/python")
    ap.add_argument("--librosa-minutes", type=float, nargs="*", default=[3, 30, 60])
    ap.add_argument("--repeat", type=int, default=1, help="runs per featherbeat input (best kept)")
    ap.add_argument("--workdir", help="where to build the inputs (default: a temp folder)")
    ap.add_argument("--write-doc", action="store_true", help=f"write the table to {DOC}")
    ap.add_argument(
        "--warm-libs",
        action="store_true",
        help="keep the venv's libraries in the page cache as they are (default: drop them "
        "before each featherbeat run; see drop_cached_libraries)",
    )
    args = ap.parse_args()

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    hook = work / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    # The caller's PYTHONPATH is kept after the hook (e.g. to measure another checkout's src/).
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
    )
    have_librosa = Path(args.librosa_python).exists()
    runs: list[Run] = []
    try:
        inputs = [(m, "MP3") for m in args.minutes] + [(m, "Opus") for m in args.opus_minutes]
        paths = []
        for minutes, fmt in inputs:
            path = input_path(minutes, work, fmt)
            if not path.exists():
                print(f"building {minutes:g}-minute {fmt} ...", file=sys.stderr)
                path = build_mp3(minutes, work, fmt)
            paths.append(path)
        # Repeats go round the inputs (a, b, a, b, ...), not input by input: this VM's speed
        # drifts over minutes (the same 3-hour file took 47.6 to 67.2 CPU-s on a quiet machine
        # within half an hour), and the 3 h / 60 min ratio must compare runs of the same spell.
        measured: list[list[Run]] = [[] for _ in inputs]
        for _ in range(max(1, args.repeat)):
            for i, ((minutes, fmt), path) in enumerate(zip(inputs, paths, strict=True)):
                # No duration cap: the CLI analyses any length (the old default refused > 240).
                argv = [
                    str(FEATHERBEAT),
                    "analyze",
                    str(path),
                    "-o",
                    str(work / "out.json"),
                    "--quiet",
                ]
                if not args.warm_libs:
                    drop_cached_libraries()
                measured[i].append(measure("featherbeat", minutes, argv, env, fmt))
        for ((minutes, fmt), path), tries in zip(
            zip(inputs, paths, strict=True), measured, strict=True
        ):
            best = min(tries, key=lambda r: r.cpu_s)
            best.round_cpu_s = [r.cpu_s for r in tries]
            if args.stage_peaks:
                if not args.warm_libs:
                    drop_cached_libraries()
                best.stages = stage_peaks(path, work / "out.json", env)
            runs.append(best)
            print(
                f"featherbeat {minutes:g} min {fmt}: {best.peak_mb:.1f} MB {best.cpu_s:.2f} s "
                f"(CPU of each run: {', '.join(f'{r.cpu_s:.2f}' for r in tries)}) "
                f"{best.note} {best.stages or ''}",
                file=sys.stderr,
            )
            if have_librosa and minutes in args.librosa_minutes:
                argv = [args.librosa_python, "-c", _LIBROSA, str(path)]
                runs.append(measure("librosa", minutes, argv, env, fmt))
                print(
                    f"librosa {minutes:g} min: {runs[-1].peak_mb:.1f} MB {runs[-1].cpu_s:.2f} s",
                    file=sys.stderr,
                )
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    text = table(runs)
    print(text)
    if args.write_doc:
        command = "python bench/memory_speed.py " + " ".join(
            a for a in sys.argv[1:] if a != "--write-doc"
        )
        write_doc(text, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
