"""What only the Redis backends do, against a real redis-server: Redis' clock for heartbeats,
the atomic check of huey's queue, no keys left behind, blobs with a cap and an expiry. What
every job store must do is in test_store_contract.py."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import threading
import time

import pytest

from featherbeat.jobs.blobs import BlobTooLargeError, StorageFullError
from featherbeat.jobs.redis_blobs import RedisBlobs
from featherbeat.jobs.redis_store import RedisJobStore
from featherbeat.jobs.store import Job
from featherbeat.testing.redis_server import RedisServer
from featherbeat.testing.store_race import links_share_one_analysis

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis


def store_of(server: RedisServer, **kwargs: object) -> RedisJobStore:
    return RedisJobStore(redis.Redis.from_url(server.url), **kwargs)


def new_job(job_id: str, sha: str = "s", created: float | None = None) -> Job:
    now = time.time() if created is None else created
    return Job(id=job_id, filename=f"{job_id}.wav", size_bytes=10, sha256=sha, created_at=now)


def test_links_share_one_analysis(redis_server: RedisServer) -> None:
    st = store_of(redis_server)
    links_share_one_analysis(st)
    # Nothing of the deleted jobs and links is left in Redis.
    left = [k.decode() for k in st.r.scan_iter("featherbeat:*ln-*")]
    assert left == [], left


def test_live_heartbeat_is_not_stale_whatever_the_workers_clock(redis_server: RedisServer) -> None:
    st = store_of(redis_server)
    st.create(new_job("j"))
    st.claim("j", "w", time.time() - 30)
    # A worker whose clock is a minute behind: its heartbeat is stamped with Redis' clock.
    assert st.update("j", "w", heartbeat_at=time.time() - 60)
    assert st.get("j").heartbeat_at > st.redis_now() - 1
    assert st.stale(time.time() - 5) == []
    assert st.claim("j", "thief", time.time() - 5) is None
    assert not st.requeue("j", stale_before=time.time() - 5)


def test_staleness_is_judged_when_asked_not_when_redis_gets_to_it(
    redis_server: RedisServer,
) -> None:
    """A request that waits (a loaded machine, a Redis pause) is judged against the cutoff of
    the moment it was made: a second reaper does not re-queue the job the first just renewed,
    and a claimer does not take a job whose heartbeat was fresh when it asked. The server is
    paused with SIGSTOP for longer than both margins while the two requests are in flight."""
    st = store_of(redis_server)
    st.create(new_job("lost"))
    assert st.claim("lost", "dead", time.time() - 60)
    time.sleep(0.05)
    cutoff = time.time()
    assert st.requeue("lost", stale_before=cutoff)  # the first reaper: enqueued_at renewed
    st.create(new_job("live"))
    assert st.claim("live", "owner", time.time() - 60)  # heartbeat: now
    late_reaper, claimer = store_of(redis_server), store_of(redis_server)
    late_reaper.r.ping(), claimer.r.ping()  # connected before the pause
    answers: dict[str, object] = {}
    calls = [
        threading.Thread(
            target=lambda: answers.update(requeue=late_reaper.requeue("lost", stale_before=cutoff))
        ),
        threading.Thread(
            target=lambda: answers.update(claim=claimer.claim("live", "thief", time.time() - 2))
        ),
    ]
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        for t in calls:
            t.start()
        time.sleep(3.0)  # the pause both requests wait through (longer than the 2 s lease)
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    for t in calls:
        t.join(timeout=30)
    assert answers == {"requeue": False, "claim": None}, answers
    assert st.get("live").owner == "owner"


def age(st: RedisJobStore, job_id: str, seconds: float) -> None:
    """Make a queued job look as if it had waited ``seconds`` (in Redis' clock)."""
    st.r.hset(st._key("job", job_id), "enqueued_at", json.dumps(st.redis_now() - seconds))


def test_long_queued_job_is_stale_then_refreshed(redis_server: RedisServer) -> None:
    st = store_of(redis_server)
    st.create(new_job("old"))
    st.create(new_job("new"))
    age(st, "old", 100)
    assert [j.id for j in st.stale(time.time() - 10)] == ["old"]  # the reaper checks the queue
    assert st.requeue("old", stale_before=time.time() - 10)
    assert st.stale(time.time() - 10) == []  # enqueued_at refreshed: not again at once


def test_stale_requeue_checks_the_queue_atomically(redis_server: RedisServer) -> None:
    queue = "huey.redis.test"
    st = store_of(redis_server, queue_key=queue)
    st.create(new_job("waitingjob"))
    age(st, "waitingjob", 100)
    st.r.zadd(queue, {b"\x00pickled(...'waitingjob'...)": 0})  # its message is still there
    assert not st.requeue("waitingjob", stale_before=time.time() - 10)
    st.r.delete(queue)  # popped by a worker that died before claiming it
    assert st.requeue("waitingjob", stale_before=time.time() - 10)


def test_blobs_stream_cap_and_expiry(redis_server: RedisServer) -> None:
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


def test_full_redis_is_a_storage_full_error(redis_server: RedisServer) -> None:
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
