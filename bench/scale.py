"""Scale-out throughput: tracks per minute with 1, 2 and 4 ``featherbeat worker`` processes on Redis.

    .venv/bin/python bench/scale.py                       # 1, 2, 4 workers, 24 tracks of 180 s
    .venv/bin/python bench/scale.py --workers 1 2 --tracks 8 --seconds 60 --out -

For each worker count: a fresh redis-server (AOF on, as in production) on a free 127.0.0.1
port, N worker processes (``FEATHERBEAT_BROKER=redis://...``, concurrency 1 each), then every
track is uploaded into Redis and enqueued at once through the service's intake use case
(``featherbeat.web.intake.accept``), exactly as the web process does after receiving an upload
(the HTTP part is left out: this measures what scales, the workers). Throughput is
tracks / (last finish - first enqueue). Memory: the peak RSS (VmHWM) of each worker's consumer
process, and the peak RSS of its analysis children (reported by the runner per job).

The tracks are generated (clicks, chords and noise, 44.1 kHz stereo MP3); nothing is read from
../shared. Encoding MP3 is slow, so a few distinct tracks are uploaded in turn, each upload
with its own ID3 tag in front (its own bytes: the intake would join repeated bytes).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from featherbeat.testing.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent

SR = 44100  # a CD-rate stereo MP3, as users upload (decoding and resampling are part of the cost)


def make_track(seed: int, seconds: float, folder: Path) -> Path:
    """A music-like MP3: a click pulse at a seed-dependent tempo over chords and noise."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    bpm = 80 + (seed * 7) % 80
    y = 0.02 * rng.standard_normal(n).astype(np.float32)
    roots = 110 * 2 ** (rng.integers(0, 12, size=int(seconds // 2) + 1) / 12)
    chord_of = roots[(t // 2).astype(int)]
    for ratio in (1.0, 1.26, 1.5):
        y += 0.08 * np.sin(2 * np.pi * chord_of * ratio * t).astype(np.float32)
    click = np.hanning(600)[300:].astype(np.float32) * np.sin(
        2 * np.pi * 1500 * np.arange(300) / SR
    )
    for k, beat in enumerate(np.arange(0.1, seconds - 0.1, 60.0 / bpm)):
        i = int(beat * SR)
        y[i : i + 300] += (0.9 if k % 4 == 0 else 0.5) * click.astype(np.float32)
    # Stereo: the same music with a slightly different noise floor on the right.
    right = y + 0.01 * rng.standard_normal(n).astype(np.float32)
    path = folder / f"track{seed:03d}.mp3"
    sf.write(path, np.clip(np.stack([y, right], axis=1), -1, 1), SR, format="MP3")
    return path


def tagged_copy(path: Path, n: int, folder: Path) -> Path:
    """A copy of the MP3 with an ID3v2.3 tag naming upload ``n`` in front: different bytes
    for every upload (the intake joins repeated bytes to one analysis), the same audio."""
    text = f"\x00featherbeat-bench\x00{n}".encode("latin-1")
    frame = b"TXXX" + len(text).to_bytes(4, "big") + b"\x00\x00" + text
    size = len(frame)  # ID3v2 sizes are "syncsafe": 7 bits per byte
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    folder.mkdir(exist_ok=True)
    out = folder / f"upload{n:04d}.mp3"
    out.write_bytes(b"ID3\x03\x00\x00" + syncsafe + frame + path.read_bytes())
    return out


def vm_hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` plus its waited-for children (the analysis processes)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[11..14] are utime, stime, cutime, cstime (stat fields 14-17) in clock ticks.
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run_config(workers: int, tracks: list[Path], work: Path, timeout: float) -> dict:
    from featherbeat.config import Settings
    from featherbeat.jobs.services import Services
    from featherbeat.web.intake import Upload, accept

    server = RedisServer(work / f"redis-{workers}")
    server.start()
    env = dict(
        os.environ,
        FEATHERBEAT_BROKER=server.url,
        FEATHERBEAT_QUEUE_LIMIT=str(len(tracks) + 10),
        FEATHERBEAT_CLIENT_QUEUE_SHARE=str(len(tracks) + 10),  # one client uploads them all
        OPENBLAS_NUM_THREADS="1",
    )
    procs, logs = [], []
    try:
        for i in range(workers):
            log = work / f"worker-{workers}-{i}.log"
            logs.append(log)
            wenv = dict(env, FEATHERBEAT_DATA_DIR=str(work / f"data-{workers}-{i}"))
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "featherbeat.cli", "worker"],
                    env=wenv,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 30
        while not all("consumer.started" in p.read_text() for p in logs if p.exists()) or not all(
            p.exists() for p in logs
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not start")
            time.sleep(0.1)
        services = Services.from_settings(Settings.from_env(env))
        load_before = os.getloadavg()[0]
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        ids = []
        t0 = time.time()
        for n, path in enumerate(tracks):
            # Through the service's own intake (sniff, queue limit, blob, record, enqueue),
            # as a web process does after receiving the body.
            upload = tagged_copy(path, n, work / "uploads")
            data = upload.read_bytes()
            with contextlib.redirect_stdout(sys.stderr):  # its job.accepted log lines
                accepted = accept(
                    services,
                    Upload(upload, path.name, len(data), hashlib.sha256(data).hexdigest()),
                )
            assert accepted.link is None, "every upload has its own bytes: no dedupe"
            ids.append(accepted.id)
        while True:
            jobs = [services.store.get(i) for i in ids]
            if all(j is not None and j.finished for j in jobs):
                break
            if time.time() - t0 > timeout:
                raise TimeoutError(f"{workers} workers: not finished after {timeout}s")
            time.sleep(0.1)
        elapsed = max(j.finished_at for j in jobs) - t0
        failed = [j.id for j in jobs if j.status != "done"]
        cpu_per_track = (sum(cpu_seconds(p.pid) for p in procs) - cpu_before) / len(ids)
        consumer_mb = [vm_hwm_mb(p.pid) for p in procs]
        child_mb = max(j.peak_rss_mb or 0.0 for j in jobs)
        analysis_s = float(np.median([j.analysis_seconds or 0.0 for j in jobs]))
        per_worker = {}
        for log in logs:
            for line in log.read_text().splitlines():
                if '"job.finished"' in line:
                    per_worker[log.name] = per_worker.get(log.name, 0) + 1
        return {
            "workers": workers,
            "tracks": len(ids),
            "failed": len(failed),
            "seconds": round(elapsed, 2),
            "tracks_per_minute": round(len(ids) / elapsed * 60, 1),
            "consumer_peak_mb": [round(m, 1) for m in consumer_mb],
            "child_peak_mb": round(child_mb, 1),
            "median_analysis_s": round(analysis_s, 2),
            "jobs_per_worker": sorted(per_worker.values()),
            "cpu_s_per_track": round(cpu_per_track, 2),
            "load_before": round(load_before, 1),
            "load_after": round(os.getloadavg()[0], 1),
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        server.stop()


def table(results: list[dict], args: argparse.Namespace) -> str:
    base = results[0]["tracks_per_minute"] / results[0]["workers"]
    lines = [
        "| workers | tracks | wall s | tracks/min | speed-up | jobs per worker | CPU s per track | consumer peak RSS MB (each) | analysis child peak RSS MB | median analysis s | load avg before/after |",
        "|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['workers']} | {r['tracks']} | {r['seconds']} | {r['tracks_per_minute']} "
            f"| {r['tracks_per_minute'] / base:.2f}x | {r['jobs_per_worker']} | {r['cpu_s_per_track']} "
            f"| {', '.join(map(str, r['consumer_peak_mb']))} | {r['child_peak_mb']} "
            f"| {r['median_analysis_s']} | {r['load_before']} / {r['load_after']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tracks", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=180.0, help="length of each track")
    parser.add_argument("--distinct", type=int, default=4, help="different tracks generated")
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--json", action="store_true", help="print raw results as JSON too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fb-scale-") as tmp:
        work = Path(tmp)
        (work / "tracks").mkdir()
        # MP3 encoding is slow (seconds per track): a few distinct tracks, uploaded in turn,
        # each upload with its own tag (its own bytes), so a repeated track is analysed again.
        distinct = [make_track(i, args.seconds, work / "tracks") for i in range(args.distinct)]
        tracks = [distinct[i % len(distinct)] for i in range(args.tracks)]
        results = []
        for n in args.workers:
            result = run_config(n, tracks, work, args.timeout)
            print(json.dumps(result), file=sys.stderr)
            results.append(result)
    print(
        f"{os.cpu_count()} CPUs; {args.tracks} jobs over {args.distinct} generated "
        f"44.1 kHz stereo MP3 tracks of {args.seconds:g} s\n"
    )
    print(table(results, args))
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
