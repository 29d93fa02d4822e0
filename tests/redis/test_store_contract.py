"""The JobStore contract (featherbeat.jobs.store), one module run against every backend.

Each test takes ``stores``: a factory of store objects on one shared storage (a second object
stands for a second process). Parametrized over SQLite (a file in tmp_path) and Redis (a real
redis-server, one per module, a fresh key prefix per test). What only one backend has (Redis'
clock, its atomic check of huey's queue) stays in that backend's own test module.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from featherbeat.jobs.redis_store import RedisJobStore
from featherbeat.jobs.sqlite_store import SqliteJobStore
from featherbeat.jobs.store import FIELDS, STATUSES, TRANSITIONS, Job, JobStore
from featherbeat.testing.store_race import (
    client_share_and_failure_memory,
    links_share_one_analysis,
    same_bytes_at_once,
)

Stores = Callable[[], JobStore]
_prefixes = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    made: list[JobStore] = []
    if request.param == "sqlite":

        def make() -> JobStore:
            made.append(SqliteJobStore(tmp_path / "jobs.db"))
            return made[-1]
    else:
        redis = pytest.importorskip("redis")
        url = request.getfixturevalue("redis_url")
        prefix = f"contract{next(_prefixes)}:"

        def make() -> JobStore:
            made.append(RedisJobStore(redis.Redis.from_url(url), prefix))
            return made[-1]

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(stores: Stores) -> JobStore:
    return stores()


def store_race_job(job_id: str) -> Job:
    return Job(
        id=job_id, filename=f"{job_id}.wav", size_bytes=1, sha256="same", created_at=time.time()
    )


def new_job(job_id: str, sha: str | None = None, created: float | None = None) -> Job:
    now = time.time() if created is None else created
    return Job(
        id=job_id,
        filename=f"{job_id}.wav",
        size_bytes=10,
        sha256=sha or f"sha-{job_id}",
        created_at=now,
        enqueued_at=now,
    )


FRESH = 60.0  # a stale_before this far back: no heartbeat of this test is that old


def put_in(store: JobStore, status: str, owner: str = "w1") -> Job:
    """A job in ``status``, claimed (and finished) by ``owner`` where that applies."""
    job = new_job(f"job-{status}")
    store.create(job)
    if status != "queued":
        assert store.claim(job.id, owner, time.time() - FRESH) is not None
    if status in ("done", "failed"):
        assert store.finish(job.id, owner, status)
    got = store.get(job.id)
    assert got is not None and got.status == status
    return got


def apply(store: JobStore, op: str, job: Job, caller: str) -> bool:
    """One row of TRANSITIONS: ``op`` on ``job`` by ``caller``; whether it won."""
    stale = time.time() + 1.0  # every heartbeat and enqueue time so far is older than this
    fresh = time.time() - FRESH
    owner = {"owner": job.owner or "w1", "other": "w2", "anyone": "w2"}.get(caller, "w2")
    if op == "claim":
        return store.claim(job.id, owner, stale if caller == "stale" else fresh) is not None
    if op == "update":
        return store.update(job.id, owner, progress=0.5)
    if op == "finish":
        return store.finish(job.id, owner, "done")
    if op == "requeue_owner":
        return store.requeue(job.id, owner=owner)
    if op == "requeue_stale":
        return store.requeue(job.id, stale_before=stale if caller == "stale" else fresh)
    raise AssertionError(op)


@pytest.mark.parametrize(
    ("op", "before", "caller"), list(TRANSITIONS), ids=["-".join(k) for k in TRANSITIONS]
)
def test_transition_table(store: JobStore, op: str, before: str, caller: str) -> None:
    wins, after = TRANSITIONS[(op, before, caller)]
    job = put_in(store, before)
    time.sleep(0.01)  # "stale" means strictly older than now
    assert apply(store, op, job, caller) is wins
    got = store.get(job.id)
    assert got is not None and got.status == after
    if not wins:
        assert got.seq == job.seq, "an operation that does not apply changes nothing"
    if op.startswith("requeue") and wins:
        assert got.owner is None and got.stage == "queued"
    if op == "claim" and wins and caller != "owner":
        assert got.owner == "w2" and got.claims == job.claims + 1
    if op in ("claim", "finish") and caller == "owner" and before == after:
        # A repeat of a claim or finish that won: the same answer, nothing written.
        assert got.seq == job.seq and got.claims == job.claims


def test_record_round_trip_and_ids_never_reused(store: JobStore) -> None:
    job = new_job("a", created=100.0)
    job.media_type = "audio/flac"
    store.create(job)
    assert job.seq == 1
    got = store.get("a")
    assert got is not None and got.seq == 1 and got.status == "queued" and got.stage == "queued"
    for name in FIELDS:
        if name not in ("seq", "enqueued_at"):  # enqueued_at: the store's clock on Redis
            assert getattr(got, name) == getattr(job, name), name
    assert got.result_keys is None and got.reduced is False and got.started_at is None
    with pytest.raises(KeyError):
        store.create(new_job("a"))
    with pytest.raises(KeyError):
        store.create_unless_duplicate(new_job("a", sha="other bytes"))
    assert store.get("missing") is None
    assert store.delete("a") and not store.delete("a") and store.get("a") is None


def test_every_change_bumps_seq_and_typed_fields_come_back(store: JobStore) -> None:
    store.create(new_job("j"))
    claimed = store.claim("j", "w", time.time() - FRESH)
    assert claimed is not None and claimed.seq == 2 and claimed.owner == "w"
    assert claimed.started_at is not None and claimed.heartbeat_at is not None
    assert store.update("j", "w", progress=0.25, stage="rhythm", attempts=1, reduced=True)
    keys = {"spotify": "results/j/spotify", "beats": "results/j/beats"}
    assert store.finish("j", "w", "done", result_keys=keys, duration=12.5, finished_at=1234.5)
    got = store.get("j")
    assert got is not None and got.seq == 4
    assert (got.progress, got.stage, got.attempts, got.reduced) == (0.25, "rhythm", 1, True)
    assert got.result_keys == keys and got.duration == 12.5 and got.finished_at == 1234.5
    assert got.owner == "w", "the owner stays recorded after finish"


def test_wrong_arguments_are_errors(store: JobStore) -> None:
    store.create(new_job("j"))
    store.claim("j", "w", time.time() - FRESH)
    with pytest.raises(KeyError):
        store.update("j", "w", no_such_field=1)
    with pytest.raises(ValueError):
        store.finish("j", "w", "queued")
    with pytest.raises(ValueError):
        store.requeue("j")


def test_one_of_many_claimers_wins_across_processes(stores: Stores) -> None:
    first = stores()
    first.create(new_job("j"))
    objects = [first, stores()]  # two store objects: two processes
    won: list[str] = []
    barrier = threading.Barrier(16)

    def claim(n: int) -> None:
        barrier.wait(timeout=10)
        if objects[n % 2].claim("j", f"w{n}", time.time() - FRESH) is not None:
            won.append(f"w{n}")

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(won) == 1, won
    got = first.get("j")
    assert got is not None and got.owner == won[0] and got.claims == 1


def test_take_over_fences_the_old_owner(store: JobStore) -> None:
    store.create(new_job("j"))
    first = store.claim("j", "dead", time.time() - FRESH)
    assert first is not None
    time.sleep(0.01)
    taken = store.claim("j", "new", time.time())
    assert taken is not None and taken.owner == "new" and taken.claims == 2
    assert taken.started_at == first.started_at, "started_at is the first claim's"
    assert not store.update("j", "dead", progress=0.9)
    assert not store.finish("j", "dead", "done")
    assert not store.requeue("j", owner="dead")
    assert store.finish("j", "new", "failed", error_code="x", error_message="y")
    got = store.get("j")
    assert got is not None and got.error_code == "x" and got.error_message == "y"


def test_same_bytes_at_once_create_one_job(stores: Stores) -> None:
    objects = [stores(), stores()]
    winner = same_bytes_at_once(objects)
    got = objects[1].get(winner)
    assert got is not None and got.seq == 1
    # The winner's own call repeated (a retry after a lost reply) answers with its job.
    assert objects[0].create_unless_duplicate(store_race_job(winner)).id == winner
    # A done job is joined before a newer queued one; a failed one never.
    objects[0].claim(winner, "w", time.time() - FRESH)
    objects[0].finish(winner, "w", "done")
    objects[0].create(new_job("newer", sha="same", created=time.time() + 1))
    assert objects[1].create_unless_duplicate(new_job("late", sha="same")).id == winner
    assert objects[1].get("late") is None
    found = objects[1].find_by_sha256("same")
    assert found is not None and found.id == winner
    other = new_job("other", sha="else")
    assert objects[1].create_unless_duplicate(other) is other and other.seq == 1


def test_links_share_one_analysis(store: JobStore) -> None:
    links_share_one_analysis(store)


def test_client_share_and_failure_memory(store: JobStore) -> None:
    client_share_and_failure_memory(store)


def test_find_by_sha256_prefers_done_then_newest_never_failed(store: JobStore) -> None:
    now = time.time()
    for job_id, created in (("q1", now - 3), ("q2", now - 2), ("f", now - 1)):
        store.create(new_job(job_id, sha="x", created=created))
    store.claim("f", "w", time.time() - FRESH)
    store.finish("f", "w", "failed")
    found = store.find_by_sha256("x")
    assert found is not None and found.id == "q2"
    store.claim("q1", "w", time.time() - FRESH)
    store.finish("q1", "w", "done")
    found = store.find_by_sha256("x")
    assert found is not None and found.id == "q1"
    assert store.find_by_sha256("nothing") is None


def test_stale_lists_old_heartbeats_and_long_queued_jobs(store: JobStore) -> None:
    store.create(new_job("running", created=time.time() - 2))
    store.claim("running", "w", time.time() - FRESH)
    store.create(new_job("queued", created=time.time() - 1))
    store.create(new_job("done", created=time.time()))
    store.claim("done", "w", time.time() - FRESH)
    store.finish("done", "w", "done")
    assert store.stale(time.time() - FRESH) == []
    time.sleep(0.01)
    assert [j.id for j in store.stale(time.time())] == ["running", "queued"]
    assert store.update("running", "w", heartbeat_at=time.time())
    assert store.requeue("queued", stale_before=time.time())
    assert store.stale(time.time() - 5) == [], "a fresh heartbeat and a renewed enqueue"


def test_listings_counts_and_queue_positions(store: JobStore) -> None:
    now = time.time()
    for i in range(4):
        store.create(new_job(f"j{i}", created=now - 10 + i))
    assert [store.queue_position(store.get(f"j{i}")) for i in range(4)] == [1, 2, 3, 4]
    for i, (status, finished) in enumerate((("done", now - 100), ("failed", now - 50))):
        store.claim(f"j{i}", "w", now - FRESH)
        store.finish(f"j{i}", "w", status, finished_at=finished)
    assert store.counts() == {"queued": 2, "running": 0, "done": 1, "failed": 1}
    assert set(store.counts()) == set(STATUSES)
    assert store.queue_position(store.get("j2")) == 1
    assert store.queue_position(store.get("j0")) is None
    assert [j.id for j in store.recent_finished(5)] == ["j1", "j0"]
    assert [j.id for j in store.recent_finished(1)] == ["j1"]
    assert [j.id for j in store.expired(now - 60)] == ["j0"]
    assert sorted(j.id for j in store.expired(now)) == ["j0", "j1"]


def test_counters(store: JobStore) -> None:
    assert store.counters() == {}
    store.incr("rejected:too_large")
    store.incr("rejected:too_large", 2)
    store.incr("uploads:accepted")
    assert store.counters() == {"rejected:too_large": 3, "uploads:accepted": 1}


def test_wait_change_wakes_on_change_times_out_and_sees_deletion(store: JobStore) -> None:
    store.create(new_job("j"))
    store.claim("j", "w", time.time() - FRESH)
    got = store.get("j")
    assert got is not None
    seq = got.seq
    timer = threading.Timer(0.2, lambda: store.update("j", "w", progress=0.3))
    timer.start()
    t0 = time.monotonic()
    assert store.wait_change("j", seq, timeout=5) == seq + 1
    assert time.monotonic() - t0 < 2
    timer.join()
    t0 = time.monotonic()
    assert store.wait_change("j", seq + 1, timeout=0.3) == seq + 1
    assert time.monotonic() - t0 >= 0.25
    store.delete("j")
    assert store.wait_change("j", seq + 1, timeout=5) == 0


def test_one_of_many_reapers_requeues_a_stale_job(stores: Stores) -> None:
    first = stores()
    first.create(new_job("j"))
    first.claim("j", "dead", time.time() - FRESH)
    time.sleep(0.05)
    cutoff = time.time()
    assert [j.id for j in first.stale(cutoff)] == ["j"]
    # The winner's renewed enqueue time is after the cutoff, so the other reapers find the job
    # fresh by it however long their requests wait (the Redis store fixes the cutoff on its
    # clock when asked: test_scale_store's SIGSTOP test; this sleep used to be 0.3 s).
    time.sleep(0.01)
    reapers = [stores() for _ in range(4)]
    won: list[bool] = []
    barrier = threading.Barrier(len(reapers))

    def reap(store: JobStore) -> None:
        barrier.wait(timeout=10)
        won.append(store.requeue("j", stale_before=cutoff))

    threads = [threading.Thread(target=reap, args=(r,)) for r in reapers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(won) == [False] * 3 + [True]
    got = first.get("j")
    assert got is not None and got.status == "queued" and got.owner is None
    assert not first.update("j", "dead", heartbeat_at=time.time()), "the old owner learns it lost"
    again = first.claim("j", "new", time.time() - FRESH)
    assert again is not None and again.claims == 2
