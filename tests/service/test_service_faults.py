"""No accepted job is ever lost: kill -9 of the consumer or of an analysis child, restarts with
jobs queued, a burst of concurrent uploads, the watchdog's limits, and ``featherbeat serve``.

A real gunicorn + consumer (src/featherbeat/testing/service.py) with heartbeats every 0.3 s and jobs
presumed dead after 2 s of silence, so each recovery takes seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from featherbeat.testing.service import Service, free_port, running_service
from featherbeat.testing.signals import click_track, write_audio

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def long_track(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight minutes of clicks as FLAC: small to upload, seconds to analyse (long enough that
    a kill or a limit always lands mid-analysis)."""
    clicks = click_track(124.0, 480.0)
    return write_audio(tmp_path_factory.mktemp("long"), "long", clicks.audio, clicks.sr, "flac")


def short_tracks(folder: Path, n: int, seconds: float = 4.0) -> list[Path]:
    """``n`` different short tracks (different bytes: no dedupe between them)."""
    out = []
    for i in range(n):
        clicks = click_track(90.0 + 3 * i, seconds, offset=0.2 + 0.01 * i)
        out.append(write_audio(folder, f"short{i}", clicks.audio, clicks.sr, "wav"))
    return out


def wait_child(svc: Service, timeout: float = 30.0) -> int:
    """The pid of the analysis child as soon as the consumer has started one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = svc.analysis_children()
        if kids:
            return kids[0]
        time.sleep(0.01)
    raise AssertionError(f"no analysis child appeared\n{svc.logs()}")


def worker_log(svc: Service) -> str:
    """The whole consumer log (every consumer of ``svc`` appends to it)."""
    return (svc.log_dir / "worker.log").read_text(errors="replace")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return "State:\tZ" not in fh.read()
    except FileNotFoundError:
        return False


def test_kill9_consumer_mid_job_then_restart_finishes(tmp_path: Path, long_track: Path) -> None:
    # A 10-minute stale timeout: the restarted consumer must see at once that the job's
    # owner (a process on this machine) is gone, not wait for the heartbeat to age.
    with running_service(tmp_path, {"FEATHERBEAT_STALE_SECONDS": "600"}) as svc:
        status, job = svc.upload(long_track)
        assert status == 202
        child = wait_child(svc)
        svc.worker.send_signal(signal.SIGKILL)
        svc.worker.wait()
        # The child dies with its consumer (PR_SET_PDEATHSIG): no unsupervised analysis.
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
        assert svc.job(job["id"])["status"] == "running"  # the record still says so...
        svc.start_worker()  # ...until the new consumer finds its owner dead
        final = svc.wait_done(job["id"], timeout=60)
        assert final["status"] == "done", (final, svc.logs())
        assert final["attempts"] >= 2
        assert "job.recovered" in svc.logs()


def test_kill9_analysis_child_retries_reduced_and_finishes(
    tmp_path: Path, long_track: Path
) -> None:
    with running_service(tmp_path) as svc:
        status, job = svc.upload(long_track)
        os.kill(wait_child(svc), signal.SIGKILL)
        final = svc.wait_done(job["id"], timeout=120)
        assert final["status"] == "done", (final, svc.logs())
        assert final["attempts"] == 2
        doc = svc.request("GET", final["links"]["analysis"])
        assert doc[0] == 200 and b'"reduced": true' in doc[2].replace(
            b'"reduced":true', b'"reduced": true'
        )
        assert "analysis_killed" in svc.logs()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_mid_analysis_hands_job_back_at_once(
    tmp_path: Path, long_track: Path, sig: signal.Signals
) -> None:
    """Both stop signals mean "stop now": huey's own default for SIGINT would wait for the
    running analysis to end (and the job would be done, not handed back), longer than a
    platform waits before SIGKILL."""
    with running_service(tmp_path, {"FEATHERBEAT_STALE_SECONDS": "600"}) as svc:
        status, job = svc.upload(long_track)
        child = wait_child(svc)
        assert svc.worker is not None
        svc.worker.send_signal(sig)
        try:  # seconds, not the analysis' length (the status below tells the two apart)
            code = svc.worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the consumer ignored {sig.name}\n{svc.logs()}") from None
        assert code == 0, svc.logs()
        assert not alive(child), "the analysis child outlived its consumer"
        # Released, not left for the (here: 10-minute) stale timeout, nor finished first.
        assert svc.job(job["id"])["status"] == "queued", svc.logs()
        svc.start_worker()
        final = svc.wait_done(job["id"], timeout=120)
        assert final["status"] == "done", (final, svc.logs())
        assert "job.released" in svc.logs()


def test_consumer_paused_past_its_lease_loses_the_job_and_publishes_nothing(
    tmp_path: Path, long_track: Path
) -> None:
    """At-least-once, one result: a consumer and its analysis child stopped (SIGSTOP) for longer
    than the lease, as a machine at load 20 can starve a nice'd worker, are presumed dead; a
    second consumer takes the job over and finishes it. Resumed, the first finds it lost at its
    next heartbeat, kills its child, and the published result stays the winner's."""
    # The long track, so the child is still analysing when it is stopped: a 30 s track could
    # be finished by a child the test process reached too late on a loaded machine.
    with running_service(tmp_path / "svc") as svc:  # heartbeat 0.3 s, lease 2 s
        status, job = svc.upload(long_track)
        assert status == 202
        child = wait_child(svc)
        paused = svc.worker
        assert paused is not None
        for pid in (paused.pid, child):
            os.kill(pid, signal.SIGSTOP)
        try:
            svc.start_worker()  # its reaper finds the stale heartbeat and re-queues the job
            final = svc.wait_done(job["id"], timeout=120)
            assert final["status"] == "done", (final, svc.logs())
            first = svc.request("GET", final["links"]["analysis"])[2]
        finally:
            for pid in (child, paused.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        try:
            deadline = time.monotonic() + 30  # its next heartbeat tells it (bounded wait)
            while '"job.lost"' not in worker_log(svc) or alive(child):
                assert time.monotonic() < deadline, svc.logs()
                time.sleep(0.05)
            assert paused.poll() is None, "the paused consumer walks away, it does not die"
        finally:
            Service._stop(paused, signal.SIGTERM)
        assert svc.request("GET", final["links"]["analysis"])[2] == first
        events = [
            json.loads(line)["event"] for line in worker_log(svc).splitlines() if line[:1] == "{"
        ]
        assert events.count("job.finished") == 1 and events.count("job.started") == 2, events
        stored = svc.data_dir / "blobs" / "results" / job["id"]
        assert len(list(stored.iterdir())) == 1, "the winner's run only"


def test_whole_service_restarted_with_jobs_queued(tmp_path: Path) -> None:
    tracks = short_tracks(tmp_path, 4)
    svc = Service(tmp_path / "svc")
    svc.start_web()  # no consumer: everything stays queued
    try:
        ids = [svc.upload(t)[1]["id"] for t in tracks]
        assert [svc.job(i)["queue_position"] for i in ids] == [1, 2, 3, 4]
        svc.stop_web(signal.SIGKILL)
        svc.start()
        finals = [svc.wait_done(i, timeout=60) for i in ids]
        assert [f["status"] for f in finals] == ["done"] * 4, svc.logs()
        # FIFO: each started no earlier than the one uploaded before it.
        starts = [f["started_at"] for f in finals]
        assert starts == sorted(starts)
    finally:
        svc.stop()


def test_twenty_concurrent_uploads_all_finish_or_503(tmp_path: Path) -> None:
    tracks = short_tracks(tmp_path, 20, seconds=3.0)
    env = {"FEATHERBEAT_QUEUE_LIMIT": "12", "FEATHERBEAT_CONCURRENCY": "2"}
    with running_service(tmp_path / "svc", env) as svc:
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda t: svc.upload(t, raw=True), tracks))
        accepted = [job for status, job in answers if status == 202]
        refused = [job for status, job in answers if status == 503]
        assert len(accepted) + len(refused) == 20, answers
        assert accepted
        for job in refused:
            assert job["error"]["code"] == "queue_full"
        finals = [svc.wait_done(job["id"], timeout=120) for job in accepted]
        assert all(f["status"] == "done" for f in finals), [
            f for f in finals if f["status"] != "done"
        ]
        assert len({f["id"] for f in finals}) == len(accepted)


def test_memory_ceiling_fails_with_reason_after_reduced_retry(
    tmp_path: Path, long_track: Path
) -> None:
    # 16 MB is below what any Python with numpy needs: both attempts must hit the ceiling
    # (a long track, so no attempt can finish between two watchdog polls).
    with running_service(tmp_path / "svc", {"FEATHERBEAT_CHILD_MAX_RSS_MB": "16"}) as svc:
        final = svc.wait_done(svc.upload(long_track)[1]["id"], timeout=60)
        assert final["status"] == "failed"
        assert final["attempts"] == 2
        assert final["error"]["code"] == "memory_limit"
        assert "16 MB" in final["error"]["message"] and "reduced" in final["error"]["message"]
        status, body = svc.json("GET", final["links"]["analysis"])
        assert status == 409 and body["error"]["code"] == "job_failed"


def test_time_limit(tmp_path: Path, long_track: Path) -> None:
    with running_service(tmp_path, {"FEATHERBEAT_CHILD_TIMEOUT": "0.5"}) as svc:
        final = svc.wait_done(svc.upload(long_track)[1]["id"], timeout=60)
        assert final["status"] == "failed" and final["error"]["code"] == "time_limit"
        assert final["attempts"] == 2


START_TIMEOUT = 120.0


def start_serve(tmp_path: Path, **popen: Any) -> tuple[subprocess.Popen[bytes], Service]:
    """``featherbeat serve`` on a free port, once it answers /healthz, and a client for it."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "FEATHERBEAT_DATA_DIR": str(tmp_path / "data"),
        "FEATHERBEAT_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen([sys.executable, "-m", "featherbeat.cli", "serve"], env=env, **popen)
    probe = Service(tmp_path / "probe")
    probe.port = port
    # Until it answers and both children are up (an event, bounded): on a loaded machine the
    # first process alone (the CLI, then exec of the supervisor) can take many seconds, and
    # returning after a fixed 30 s handed the tests a service still starting.
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert proc.poll() is None, f"featherbeat serve exited ({proc.returncode})"
        with contextlib.suppress(OSError):
            if (
                probe.request("GET", "/healthz", timeout=5)[0] == 200
                and len(Service.children(proc.pid)) == 2
            ):
                return proc, probe
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"featherbeat serve not up after {START_TIMEOUT:g} s")
        time.sleep(0.1)


def test_featherbeat_serve_runs_both_and_stops_both(tmp_path: Path) -> None:
    log = (tmp_path / "serve.log").open("wb")
    proc, probe = start_serve(tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        kids = Service.children(proc.pid)
        assert len(kids) == 2, kids  # gunicorn master and the consumer
        consumer = next(k for k in kids if b"worker" in Path(f"/proc/{k}/cmdline").read_bytes())
        os.kill(consumer, signal.SIGKILL)  # the supervisor starts a new one; the web stays up
        clicks = click_track(120, 4.0)
        status, job = probe.upload(write_audio(tmp_path, "s", clicks.audio, clicks.sr, "wav"))
        assert status == 202
        assert probe.wait_done(job["id"])["status"] == "done"
        kids = Service.children(proc.pid)
        assert len(kids) == 2 and consumer not in kids, kids
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not any(alive(k) for k in kids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_serve_rejects_bad_settings_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "FEATHERBEAT_MAX_UPLOAD_MB": "lots", "FEATHERBEAT_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "featherbeat.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "FEATHERBEAT_MAX_UPLOAD_MB" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "featherbeat.cli", "serve", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--workers" in out.stderr


def test_ctrl_c_stops_serve_cleanly_without_a_restart(tmp_path: Path) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole process group: the consumer and
    gunicorn exit on their own at the same moment as the supervisor is told to stop. That
    must read as a clean stop (exit 0), not as a dead consumer to restart or a crashed web."""
    proc, _ = start_serve(
        tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    try:
        kids = Service.children(proc.pid)
        assert len(kids) == 2, kids
        os.killpg(proc.pid, signal.SIGINT)
        try:  # a quick stop, not gunicorn's 25 s graceful timeout running out
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            left = subprocess.run(
                ["ps", "-o", "pid,stat,args", "-g", str(proc.pid)], capture_output=True, text=True
            )
            raise AssertionError(f"still running 10 s after Ctrl-C:\n{left.stdout}") from None
        assert proc.returncode == 0, err
        assert b"restarting" not in err and b"exited" not in err, err
        assert not any(alive(k) for k in kids)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
