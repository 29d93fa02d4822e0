"""The scale-out for real: a redis-server (AOF on), two gunicorn web processes, several
``featherbeat worker`` processes, all separate processes on 127.0.0.1.

- 100 short generated tracks submitted at once through both web processes: every one ends
  with a valid analysis and one stored result, finished once (counted from the workers' job
  events). A job is analysed twice only after its first run lost its lease (a worker starved
  of CPU for the 3 s lease on a loaded machine is presumed dead, by design: at-least-once), and
  that first run then ended ``job.lost``, never finished, and left no result behind.
- Faults: ``kill -9`` of a worker in the middle of a job, a Redis restart, a web process
  stopped and started again: no accepted job is lost, none is stuck, none finishes twice.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from featherbeat.testing.redis_server import Deployment, RedisServer, http, wav_bytes

pytestmark = [pytest.mark.redis, pytest.mark.service, pytest.mark.timeout(240)]

FAST = {  # seconds, so a dead worker's job is recovered within the test's time
    "FEATHERBEAT_HEARTBEAT_SECONDS": "0.5",
    "FEATHERBEAT_STALE_SECONDS": "3",
    "FEATHERBEAT_QUEUE_LIMIT": "500",
}


@pytest.fixture
def deployment(tmp_path: Path, redis_server: RedisServer):
    """Three workers and two web processes on one fresh redis-server."""
    dep = Deployment(tmp_path, redis_server, **FAST)
    try:
        for i in range(3):
            dep.start_worker(i)
        dep.start_web(0)
        dep.start_web(1)
        dep.wait_workers_ready()
        yield dep
    finally:
        dep.close()


def submit(url: str, name: str, data: bytes) -> tuple[int, dict]:
    status, body, _ = http("POST", f"{url}/api/v1/analyses?filename={name}", data)
    return status, body


def wait_all(dep: Deployment, ids: list[str], timeout: float) -> dict[str, dict]:
    """Poll (round robin over the live web processes) until every job has finished."""
    deadline = time.monotonic() + timeout
    jobs: dict[str, dict] = {}
    while time.monotonic() < deadline:
        webs = sorted(dep.webs)
        for n, job_id in enumerate(ids):
            if jobs.get(job_id, {}).get("status") in ("done", "failed"):
                continue
            status, body, _ = http(
                "GET", f"{dep.url(webs[n % len(webs)])}/api/v1/analyses/{job_id}"
            )
            assert status == 200, (job_id, status, body)
            jobs[job_id] = body
        if all(j.get("status") in ("done", "failed") for j in jobs.values()) and len(jobs) == len(
            ids
        ):
            return jobs
        time.sleep(0.25)
    stuck = Counter(j.get("status") for j in jobs.values())
    raise AssertionError(f"jobs not finished after {timeout}s: {dict(stuck)}")


SCHEMA = (
    Path(__file__).resolve().parents[2]
    / "src/featherbeat/analysis/formats/schema/featherbeat-analysis.schema.json"
)


def check_analysis(url: str, job_id: str, seconds: float) -> None:
    status, doc, _ = http("GET", f"{url}/api/v1/analyses/{job_id}/analysis?format=spotify")
    assert status == 200, (status, doc)
    assert set(doc) >= {"meta", "track", "bars", "beats", "tatums", "sections", "segments"}
    assert abs(doc["track"]["duration"] - seconds) < 0.1 and doc["featherbeat"]["version"]
    if SCHEMA.is_file():  # the core's JSON schema (Spotify's, every property required)
        import jsonschema

        jsonschema.validate(doc, json.loads(SCHEMA.read_text()))


def every_run_ended(dep: Deployment, timeout: float = 60.0) -> dict[str, list[tuple[int, dict]]]:
    """The runs (worker index, ``job.started`` event; in order) of every job, once every run of
    a live worker has ended: finished, failed or lost. A run that lost its lease may still be
    winding down when its job is already done elsewhere (it learns at its next heartbeat):
    wait for that, bounded. A killed worker's run never ends: it is not waited for."""
    endings = ("job.finished", "job.failed", "job.lost")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = {i: [e["event"] for e in dep.events(f"worker{i}")] for i in dep.workers}
        if all(ev.count("job.started") <= sum(map(ev.count, endings)) for ev in events.values()):
            break
        time.sleep(0.2)
    runs: dict[str, list[tuple[int, dict]]] = {}
    for index, event in dep.worker_events("job.started"):
        runs.setdefault(event["job"], []).append((index, event))
    for job_runs in runs.values():
        job_runs.sort(key=lambda run: run[1]["claims"])
    return runs


def assert_runs_fenced(dep: Deployment, job_id: str, runs: list[tuple[int, dict]]) -> None:
    """A job is analysed again only after its run was presumed dead: every run but the last
    was killed with its worker or lost its lease and ended ``job.lost`` (never finished), and
    each later run took the job over (a claim counted) from a stale or recovered record."""
    lost = {e["owner"] for _, e in dep.worker_events("job.lost") if e["job"] == job_id}
    for (index, earlier), (_, later) in itertools.pairwise(runs):
        assert index not in dep.workers or earlier["owner"] in lost, (job_id, runs, lost)
        assert later["claims"] > earlier["claims"], (job_id, runs)


def one_stored_result_per_job(dep: Deployment, ids: list[str]) -> bool:
    """Results are stored per run (results/<job>/<run>/<format>): one run's per job, whatever
    runs lost the job on the way."""
    import redis

    client = redis.Redis.from_url(dep.server.url)
    stored: dict[str, set[str]] = {}
    for key in client.scan_iter("featherbeat:blob:results/*"):
        _, job_id, run, _fmt = key.decode().split(":", 2)[2].split("/")
        stored.setdefault(job_id, set()).add(run)
    assert set(stored) == set(ids), set(ids) - set(stored)
    assert all(len(r) == 1 for r in stored.values()), {
        j: r for j, r in stored.items() if len(r) > 1
    }
    return True


def test_hundred_tracks_through_two_webs_and_three_workers(deployment: Deployment) -> None:
    dep = deployment
    lengths = [1.0 + (i % 5) * 0.5 for i in range(100)]  # 1 to 3 s
    tracks = [(f"t{i:03d}.wav", wav_bytes(i, s)) for i, s in enumerate(lengths)]

    with ThreadPoolExecutor(max_workers=32) as pool:  # all at once, both web processes
        answers = list(pool.map(lambda it: submit(dep.url(it[0] % 2), *it[1]), enumerate(tracks)))
    assert [status for status, _ in answers] == [202] * 100, answers
    ids = [body["id"] for _, body in answers]
    assert len(set(ids)) == 100

    jobs = wait_all(dep, ids, timeout=150)
    assert Counter(j["status"] for j in jobs.values()) == {"done": 100}, [
        j["error"] for j in jobs.values() if j["error"]
    ]
    for n, job_id in enumerate(ids):  # read back through the other web process
        check_analysis(dep.url((n + 1) % 2), job_id, lengths[n])

    runs = every_run_ended(dep)
    finished = Counter(e["job"] for _, e in dep.worker_events("job.finished"))
    assert set(finished) == set(ids) and set(finished.values()) == {1}
    assert set(runs) == set(ids)
    for job_id in ids:
        assert_runs_fenced(dep, job_id, runs[job_id])
        assert jobs[job_id]["attempts"] == len(runs[job_id])  # one attempt per run: no retry
    assert dep.worker_events("job.retry") == []  # 1-3 s tracks never need a reduced retry
    assert one_stored_result_per_job(dep, ids)
    per_worker = Counter(w for w, _ in dep.worker_events("job.finished"))
    assert len(per_worker) == 3, per_worker  # the three workers really shared the load
    skipped = dep.worker_events("job.skipped")  # duplicate messages, harmless: claim drops them
    assert len(skipped) <= 10, skipped  # (only the pop-to-claim window of a reaper pass)


def test_faults_lose_nothing_and_finish_nothing_twice(deployment: Deployment) -> None:
    dep = deployment
    accepted: list[str] = []

    def send(web: int, first: int, count: int, seconds: float = 2.0) -> None:
        for i in range(first, first + count):
            status, body = submit(dep.url(web), f"f{i:03d}.wav", wav_bytes(1000 + i, seconds))
            assert status == 202, (status, body)
            accepted.append(body["id"])

    # A long track first, so one worker is surely in the middle of it when killed.
    send(0, 0, 1, seconds=480.0)
    long_id = accepted[0]
    send(1, 1, 20)
    deadline = time.monotonic() + 60
    victim = None
    while victim is None:
        assert time.monotonic() < deadline, "the long job never started"
        _, job, _ = http("GET", f"{dep.url(0)}/api/v1/analyses/{long_id}")
        for index in dep.workers:
            ours = [e for e in dep.events(f"worker{index}") if e.get("job") == long_id]
            if job["status"] == "running" and any(e["event"] == "job.started" for e in ours):
                victim = index
        time.sleep(0.05)
    dep.workers[victim].send_signal(signal.SIGKILL)  # kill -9 mid-job
    dep.workers[victim].wait(10)
    del dep.workers[victim]

    dep.server.restart(signal.SIGKILL)  # Redis dies too; the AOF (fsync always) brings it back
    send(0, 21, 10)

    port = dep.stop_web(0)  # a web process goes away (deploy) ...
    send(1, 31, 10)
    dep.start_web(0, port=port)  # ... and comes back on the same address
    send(0, 41, 10)

    jobs = wait_all(dep, accepted, timeout=150)
    assert Counter(j["status"] for j in jobs.values()) == {"done": len(accepted)}, [
        (j["id"], j["error"]) for j in jobs.values() if j["error"]
    ]
    assert jobs[long_id]["attempts"] >= 2  # started again after the kill
    runs = every_run_ended(dep)
    finished = Counter(e["job"] for _, e in dep.worker_events("job.finished"))
    assert set(finished) == set(accepted) and set(finished.values()) == {1}  # none twice
    for job_id in accepted:
        assert_runs_fenced(dep, job_id, runs[job_id])
    assert one_stored_result_per_job(dep, accepted)
    by_victim = [e["job"] for w, e in dep.worker_events("job.finished") if w == victim]
    assert long_id not in by_victim
    recovered = [e["job"] for _, e in dep.worker_events("job.recovered")]
    assert long_id in recovered, recovered  # found by a surviving worker's reaper
    # Nothing queued or running is left behind in Redis either.
    from featherbeat.jobs.redis_store import RedisJobStore
    from featherbeat.jobs.services import redis_client

    counts = RedisJobStore(redis_client(dep.server.url)).counts()
    assert counts == {"queued": 0, "running": 0, "done": len(accepted), "failed": 0}
    assert json.loads(json.dumps(counts))  # plain data, printable on failure
