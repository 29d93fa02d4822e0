"""The Redis JobStore and BlobStore against a real redis-server: claims, ownership, recovery."""

from __future__ import annotations

import errno
import io
import json
import os
import threading
import time

import pytest
from redis_harness import RedisServer, redis_server  # noqa: F401 (fixture)
from store_race import (
    client_share_and_failure_memory,
    links_share_one_analysis,
    same_bytes_at_once,
)

from featherbeat.jobs.blobs import BlobTooLargeError, StorageFullError
from featherbeat.jobs.redis_blobs import RedisBlobs
from featherbeat.jobs.redis_store import RedisJobStore
from featherbeat.jobs.store import Job

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis


def store_of(server: RedisServer, **kwargs: object) -> RedisJobStore:
    return RedisJobStore(redis.Redis.from_url(server.url), **kwargs)


def new_job(job_id: str, sha: str = "s", created: float | None = None) -> Job:
    now = time.time() if created is None else created
    return Job(id=job_id, filename=f"{job_id}.wav", size_bytes=10, sha256=sha, created_at=now)


def test_records_round_trip_and_fifo(redis_server: RedisServer) -> None:  # noqa: F811
    st = store_of(redis_server)
    st.create(new_job("a", created=100.0))
    st.create(new_job("b", created=101.0))
    with pytest.raises(KeyError):
        st.create(new_job("a"))  # ids are never reused
    a = st.get("a")
    assert a is not None and a.status == "queued" and a.filename == "a.wav" and a.seq == 1
    assert a.started_at is None and a.result_keys is None and a.reduced is False
    assert [st.queue_position(st.get(i)) for i in "ab"] == [1, 2]
    assert st.counts() == {"queued": 2, "running": 0, "done": 0, "failed": 0}
    assert st.delete("a") and not st.delete("a") and st.get("a") is None
    assert st.queue_position(st.get("b")) == 1


def test_one_claim_wins_among_many(redis_server: RedisServer) -> None:  # noqa: F811
    store_of(redis_server).create(new_job("j"))
    won: list[bool] = []

    def claim(n: int) -> None:
        won.append(store_of(redis_server).claim("j", f"w{n}", time.time() - 30) is not None)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 15 + [True]
    job = store_of(redis_server).get("j")
    assert job.status == "running" and job.claims == 1 and job.started_at is not None


def test_same_bytes_at_once_create_one_job(redis_server: RedisServer) -> None:  # noqa: F811
    # Two store objects (two connection pools) stand for two web processes, threads on each.
    stores = [store_of(redis_server), store_of(redis_server)]
    winner = same_bytes_at_once(stores)
    joined = stores[1].create_unless_duplicate(new_job("again", sha="same"))
    assert joined.id == winner and joined.status == "queued" and joined.seq == 1
    assert stores[1].get("again") is None
    # The winner's own call repeated (a retry after a lost reply) answers with its job.
    assert stores[0].create_unless_duplicate(new_job(winner, sha="same")).id == winner
    # A done job is joined before a newer queued one (the order of find_by_sha256).
    stores[0].claim(winner, "w", time.time() - 30)
    stores[0].finish(winner, "w", "done")
    stores[0].create(new_job("newer", sha="same"))
    assert stores[1].create_unless_duplicate(new_job("late", sha="same")).id == winner
    other = new_job("other", sha="else")
    assert stores[1].create_unless_duplicate(other) is other and stores[1].get("other").seq == 1
    with pytest.raises(KeyError):
        stores[1].create_unless_duplicate(new_job("other", sha="new"))  # ids are never reused


def test_links_share_one_analysis(redis_server: RedisServer) -> None:  # noqa: F811
    st = store_of(redis_server)
    links_share_one_analysis(st)
    # Nothing of the deleted jobs and links is left in Redis.
    left = [k.decode() for k in st.r.scan_iter("featherbeat:*ln-*")]
    assert left == [], left


def test_client_share_and_failure_memory(redis_server: RedisServer) -> None:  # noqa: F811
    client_share_and_failure_memory(store_of(redis_server))


def test_only_the_owner_updates_and_finishes_once(redis_server: RedisServer) -> None:  # noqa: F811
    st = store_of(redis_server)
    st.create(new_job("j", sha="x"))
    assert st.claim("j", "me", time.time() - 30).owner == "me"
    assert st.claim("j", "me", time.time() - 30).claims == 1  # a retried claim, not a new one
    assert st.update("j", "me", progress=0.5, stage="rhythm", attempts=1)
    assert not st.update("j", "other", progress=0.9)
    assert not st.finish("j", "other", "done")
    assert st.get("j").progress == 0.5
    keys = {"spotify": "results/j/spotify"}
    assert st.finish("j", "me", "done", progress=1.0, stage="done", result_keys=keys)
    assert st.finish("j", "me", "done")  # the same finish retried (lost reply) is idempotent
    assert not st.finish("j", "other", "done") and not st.finish("j", "me", "failed")
    job = st.get("j")
    assert job.status == "done" and job.result_keys == keys and job.finished_at is not None
    assert st.claim("j", "late", time.time()) is None  # a duplicate delivery is dropped
    assert st.find_by_sha256("x").id == "j"
    assert [j.id for j in st.recent_finished(5)] == ["j"]
    assert [j.id for j in st.expired(time.time() + 1)] == ["j"] and st.expired(0) == []


def test_stale_job_recovered_once_and_old_owner_fenced(redis_server: RedisServer) -> None:  # noqa: F811
    st = store_of(redis_server)
    st.create(new_job("j"))
    st.claim("j", "dead", time.time() - 30)
    time.sleep(0.05)
    cutoff = time.time()
    assert [j.id for j in st.stale(cutoff)] == ["j"]
    reapers = [store_of(redis_server) for _ in range(4)]
    assert sorted(r.requeue("j", stale_before=cutoff) for r in reapers) == [False] * 3 + [True]
    assert st.get("j").status == "queued" and st.get("j").owner is None
    assert not st.update("j", "dead", heartbeat_at=time.time())  # the old owner learns it lost
    assert st.claim("j", "new", cutoff - 30).claims == 2
    assert not st.finish("j", "dead", "done")
    assert st.finish("j", "new", "failed", error_code="x", error_message="y")
    assert st.counts()["failed"] == 1 and st.find_by_sha256("s") is None


def test_stopping_worker_hands_its_job_back(redis_server: RedisServer) -> None:  # noqa: F811
    st = store_of(redis_server)
    st.create(new_job("j", created=50.0))
    st.create(new_job("k", created=60.0))
    st.claim("j", "w", time.time() - 30)
    assert not st.requeue("j", owner="someone-else")
    assert st.requeue("j", owner="w")
    job = st.get("j")
    assert job.status == "queued" and job.owner is None and st.queue_position(job) == 1


def test_live_heartbeat_is_not_stale_whatever_the_workers_clock(redis_server: RedisServer) -> None:  # noqa: F811
    st = store_of(redis_server)
    st.create(new_job("j"))
    st.claim("j", "w", time.time() - 30)
    # A worker whose clock is a minute behind: its heartbeat is stamped with Redis' clock.
    assert st.update("j", "w", heartbeat_at=time.time() - 60)
    assert st.get("j").heartbeat_at > st.redis_now() - 1
    assert st.stale(time.time() - 5) == []
    assert st.claim("j", "thief", time.time() - 5) is None
    assert not st.requeue("j", stale_before=time.time() - 5)


def age(st: RedisJobStore, job_id: str, seconds: float) -> None:
    """Make a queued job look as if it had waited ``seconds`` (in Redis' clock)."""
    st.r.hset(st._key("job", job_id), "enqueued_at", json.dumps(st.redis_now() - seconds))


def test_long_queued_job_is_stale_then_refreshed(redis_server: RedisServer) -> None:  # noqa: F811
    st = store_of(redis_server)
    st.create(new_job("old"))
    st.create(new_job("new"))
    age(st, "old", 100)
    assert [j.id for j in st.stale(time.time() - 10)] == ["old"]  # the reaper checks the queue
    assert st.requeue("old", stale_before=time.time() - 10)
    assert st.stale(time.time() - 10) == []  # enqueued_at refreshed: not again at once


def test_stale_requeue_checks_the_queue_atomically(redis_server: RedisServer) -> None:  # noqa: F811
    queue = "huey.redis.test"
    st = store_of(redis_server, queue_key=queue)
    st.create(new_job("waitingjob"))
    age(st, "waitingjob", 100)
    st.r.zadd(queue, {b"\x00pickled(...'waitingjob'...)": 0})  # its message is still there
    assert not st.requeue("waitingjob", stale_before=time.time() - 10)
    st.r.delete(queue)  # popped by a worker that died before claiming it
    assert st.requeue("waitingjob", stale_before=time.time() - 10)


def test_wait_change_wakes_on_change(redis_server: RedisServer) -> None:  # noqa: F811
    st = store_of(redis_server)
    st.create(new_job("j"))
    st.claim("j", "w", 0)
    seq = st.get("j").seq
    threading.Timer(0.2, lambda: st.update("j", "w", progress=0.3)).start()
    t0 = time.monotonic()
    assert st.wait_change("j", seq, timeout=5) == seq + 1
    assert time.monotonic() - t0 < 2 and st.get("j").progress == 0.3
    t0 = time.monotonic()
    assert st.wait_change("j", seq + 1, timeout=0.3) == seq + 1
    assert time.monotonic() - t0 >= 0.25
    st.delete("j")
    assert st.wait_change("j", seq + 1, timeout=5) == 0  # gone: returns at once


def test_counters(redis_server: RedisServer) -> None:  # noqa: F811
    st = store_of(redis_server)
    st.incr("rejected_too_large")
    st.incr("rejected_too_large", 2)
    assert st.counters() == {"rejected_too_large": 3}


def test_blobs_stream_cap_and_expiry(redis_server: RedisServer) -> None:  # noqa: F811
    client = redis.Redis.from_url(redis_server.url)
    blobs = RedisBlobs(client, max_bytes=3 << 20, ttls={"uploads/": 60, "results/": None})
    data = os.urandom((2 << 20) + 123)
    assert blobs.put("uploads/x", io.BytesIO(data)) == len(data)
    out = io.BytesIO()
    assert blobs.get("uploads/x", out) and out.getvalue() == data
    assert 0 < client.ttl(blobs.prefix + "uploads/x") <= 60
    blobs.put("results/x/spotify", io.BytesIO(b"{}"))
    assert client.ttl(blobs.prefix + "results/x/spotify") == -1
    with blobs.local_path("uploads/x") as path:
        assert path.read_bytes() == data
    with pytest.raises(BlobTooLargeError):
        blobs.put("uploads/big", io.BytesIO(os.urandom(4 << 20)))
    assert blobs.size("uploads/big") is None
    assert not client.keys("*partial*")  # nothing half-written left behind
    with pytest.raises(ValueError):
        blobs.put("../etc/passwd", io.BytesIO(b""))
    blobs.delete("uploads/x")
    assert blobs.get("uploads/x", io.BytesIO()) is False and blobs.iter("uploads/x") is None


def test_full_redis_is_a_storage_full_error(redis_server: RedisServer) -> None:  # noqa: F811
    client = redis.Redis.from_url(redis_server.url)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + (1 << 20)))
    blobs = RedisBlobs(client)
    with pytest.raises(StorageFullError) as caught:
        blobs.put("uploads/big", io.BytesIO(os.urandom(4 << 20)))
    assert caught.value.errno == errno.ENOSPC and "FEATHERBEAT_BLOB_URL" in str(caught.value)
    client.config_set("maxmemory", "0")
    assert not client.keys("*partial*")  # the half-written blob was removed


def test_s3_url_errors_are_config_errors() -> None:
    from featherbeat.config import ConfigError
    from featherbeat.jobs.s3_blobs import S3Blobs

    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        S3Blobs("https://bucket/prefix")
    try:
        import boto3  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ConfigError, match="pip install boto3"):
            S3Blobs("s3://bucket/prefix")
