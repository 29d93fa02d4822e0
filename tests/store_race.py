"""The dedupe race both job stores must win: many uploads of the same bytes at the same moment.

Shared by the SQLite test (tests/test_service_jobs.py) and the Redis one
(tests/test_scale_store.py), so both stores are held to exactly the same check.
"""

from __future__ import annotations

import threading
import time

from featherbeat.jobs.store import Job, JobStore


def job_of(job_id: str, sha: str) -> Job:
    return Job(
        id=job_id, filename=f"{job_id}.wav", size_bytes=1, sha256=sha, created_at=time.time()
    )


def same_bytes_at_once(stores: list[JobStore], n: int = 16) -> str:
    """``n`` threads spread over ``stores`` (two stores = two web processes) call
    ``create_unless_duplicate`` for the same bytes, released together by a barrier, after a
    failed job of those bytes. Exactly one job must be created; returns its id."""
    stores[0].create(job_of("old", "same"))
    stores[0].claim("old", "w", time.time() - 60)
    stores[0].finish("old", "w", "failed", error_code="x", error_message="y")
    barrier = threading.Barrier(n)
    got: dict[int, str] = {}

    def upload(i: int) -> None:
        job = job_of(f"j{i}", "same")
        barrier.wait(timeout=10)
        got[i] = stores[i % len(stores)].create_unless_duplicate(job).id

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == n and len(set(got.values())) == 1, got
    winner = next(iter(got.values()))
    assert winner != "old", "a failed job does not block a new upload of the same bytes"
    assert stores[0].counts() == {"queued": 1, "running": 0, "done": 0, "failed": 1}
    return winner
