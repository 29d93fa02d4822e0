"""The dedupe race both job stores must win: many uploads of the same bytes at the same moment.

Shared by the store contract (tests/service/test_store_contract.py, run on SQLite and Redis)
and the Redis-only store tests, so both stores are held to exactly the same check.
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


def links_share_one_analysis(store: JobStore) -> None:
    """Every upload of the same bytes gets its own id (a link) to one analysis; a delete
    removes only the caller's id, and the analysis goes with the last id naming it."""
    first = job_of("ln-first", "ln-shared")
    assert store.create_unless_duplicate(first) is first
    for name in ("ln-second", "ln-third"):
        got = store.create_unless_duplicate(job_of(name, "ln-shared"))
        assert got.id == "ln-first" and store.get(name) is None
        link = store.get_link(name)
        assert link is not None and link.source == "ln-first" and link.filename == f"{name}.wav"
    assert store.get_link("ln-first") is None
    # The first uploader deletes: the analysis stays for the others, unreadable by its id.
    assert store.release("ln-first") is None
    kept = store.get("ln-first")
    assert kept is not None and kept.withdrawn
    assert store.release("ln-second") is None and store.get_link("ln-second") is None
    # A new upload of those bytes still shares the withdrawn analysis.
    assert store.create_unless_duplicate(job_of("ln-fourth", "ln-shared")).id == "ln-first"
    assert store.release("ln-fourth") is None
    gone = store.release("ln-third")  # the last id: the analysis goes, blobs for the caller
    assert gone is not None and gone.id == "ln-first" and store.get("ln-first") is None
    assert store.release("ln-third") is None and store.release("ln-nobody") is None
    # Not shared: its own id going takes the job at once.
    alone = job_of("ln-alone", "ln-alone-bytes")
    store.create(alone)
    assert (store.release("ln-alone") or job_of("x", "x")).id == "ln-alone"
    assert store.get("ln-alone") is None
    # Retention deletes a job with every link to it.
    store.create(job_of("ln-old", "ln-old-bytes"))
    store.create_unless_duplicate(job_of("ln-old-link", "ln-old-bytes"))
    assert store.delete("ln-old") and store.get_link("ln-old-link") is None
    # Repeating our own create (a retry after a lost reply) is not a link to ourselves.
    again = job_of("ln-again", "ln-again-bytes")
    store.create(again)
    assert store.create_unless_duplicate(job_of("ln-again", "ln-again-bytes")).id == "ln-again"
    assert store.get_link("ln-again") is None and store.release("ln-again") is not None


def client_share_and_failure_memory(store: JobStore) -> None:
    """``pending_for`` counts one client's queued and running jobs; ``recent_failure`` finds
    bytes that failed as bad input after a time, and not other failures."""
    for i in range(3):
        job = job_of(f"cs-{i}", f"cs-bytes-{i}")
        job.client = "alice"
        store.create(job)
    other = job_of("cs-bob", "cs-bob-bytes")
    other.client = "bob"
    store.create(other)
    assert store.pending_for("alice") == 3 and store.pending_for("bob") == 1
    assert store.claim("cs-0", "w", time.time() - 60) is not None
    assert store.pending_for("alice") == 3  # running still counts
    store.finish("cs-0", "w", "failed", error_code="not_audio", error_message="x")
    assert store.pending_for("alice") == 2 and store.pending_for("nobody") == 0
    assert store.release("cs-1") is not None
    assert store.pending_for("alice") == 1
    failed = store.recent_failure("cs-bytes-0", time.time() - 60)
    assert failed is not None and failed.id == "cs-0"
    assert store.recent_failure("cs-bytes-0", time.time() + 60) is None  # older than asked
    store.claim("cs-2", "w", time.time() - 60)
    store.finish("cs-2", "w", "failed", error_code="memory_limit", error_message="x")
    assert store.recent_failure("cs-bytes-2", time.time() - 60) is None  # may work next time
