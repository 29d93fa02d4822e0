"""The Redis coordination scripts against a real redis-server: claims, leases, recovery, blobs."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest
from redis_harness import RedisServer, redis_server  # noqa: F401 (fixture)

from featherbeat.jobs.redis_blobs import BlobTooLargeError, RedisBlobs
from featherbeat.jobs.redis_state import RedisJobState

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis

QUEUE = "huey.redis.test"


def make_state(server: RedisServer, stale: float = 30.0) -> RedisJobState:
    return RedisJobState(redis.Redis.from_url(server.url), QUEUE, stale_seconds=stale)


def test_accept_is_atomic_and_fifo(redis_server: RedisServer) -> None:  # noqa: F811
    st = make_state(redis_server)
    assert st.accept("a", {"filename": "a.wav"}, b"msg-a", sha256="aa")
    assert st.accept("b", {"filename": "b.wav"}, b"msg-b")
    assert not st.accept("a", {"filename": "again.wav"}, b"msg-a2")  # ids are never reused
    assert st.r.lrange(QUEUE, 0, -1) == [b"msg-b", b"msg-a"]  # huey pops from the right
    assert (st.queue_position("a"), st.queue_position("b")) == (0, 1)
    assert st.get("a")["status"] == "queued" and st.get("a")["filename"] == "a.wav"
    assert st.by_sha("aa") == "a"


def test_one_claim_wins_among_many(redis_server: RedisServer) -> None:  # noqa: F811
    st = make_state(redis_server)
    st.accept("j", {}, b"m")
    results: list[tuple[int, str]] = []

    def claim(n: int) -> None:
        results.append(make_state(redis_server).start("j", f"t{n}", "now", max_attempts=3))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(code for code, _ in results) == [0] * 15 + [1]
    job = st.get("j")
    assert job["status"] == "running" and job["attempts"] == "1"
    assert st.queue_position("j") is None and st.running_count() == 1


def test_only_lease_holder_reports_and_finishes(redis_server: RedisServer) -> None:  # noqa: F811
    st = make_state(redis_server)
    st.accept("j", {}, b"m")
    assert st.start("j", "mine", "now", 3)[0] == 1
    assert st.beat("j", "mine", {"progress": 0.5, "stage": "rhythm"})
    assert not st.beat("j", "other", {"progress": 0.9})
    assert not st.finish("j", "other", "done", {"progress": 1})
    assert st.get("j")["progress"] == "0.5"
    assert st.finish("j", "mine", "done", {"progress": 1, "stage": "done"})
    assert not st.finish("j", "mine", "done", {"progress": 1})  # never twice
    assert st.get("j")["status"] == "done" and st.running_count() == 0
    assert st.start("j", "late", "now", 3) == (0, "done")  # a duplicate delivery is dropped


def test_stale_job_recovered_once_and_old_worker_fenced(redis_server: RedisServer) -> None:  # noqa: F811
    st = make_state(redis_server, stale=0.2)
    st.accept("j", {}, b"first")
    st.r.rpop(QUEUE)  # a worker took the message ...
    assert st.start("j", "dead", "now", 3)[0] == 1
    time.sleep(0.3)  # ... and stopped heart-beating
    assert st.stale_ids() == ["j"]
    sweepers = [make_state(redis_server, stale=0.2) for _ in range(4)]
    moved = [s.recover({"j": b"again"}) for s in sweepers]
    assert sorted(map(len, moved)) == [0, 0, 0, 1]  # whichever sweeper came first
    assert st.r.lrange(QUEUE, 0, -1) == [b"again"] and st.get("j")["status"] == "queued"
    assert not st.beat("j", "dead")  # the presumed-dead worker learns it lost the job
    assert st.start("j", "new", "now", 3) == (1, "2")
    assert not st.finish("j", "dead", "done", {})
    assert st.finish("j", "new", "done", {})


def test_out_of_attempts_is_claimed_to_fail(redis_server: RedisServer) -> None:  # noqa: F811
    st = make_state(redis_server, stale=0.1)
    st.accept("j", {}, b"m")
    assert st.start("j", "w1", "now", max_attempts=1) == (1, "1")
    time.sleep(0.2)
    assert st.recover({"j": b"m2"}) == ["j"]
    code, _ = st.start("j", "w2", "now", max_attempts=1)
    assert code == 2
    assert st.finish("j", "w2", "failed", {"error_code": "worker_lost"})
    assert st.get("j")["status"] == "failed"


def test_orphan_requeued_only_while_queued(redis_server: RedisServer) -> None:  # noqa: F811
    st = make_state(redis_server)
    st.accept("lost", {"accepted_at_epoch": time.time() - 60}, b"m1")
    st.accept("fresh", {}, b"m2")
    st.r.delete(QUEUE)  # both messages popped by a worker that died before start
    assert st.queued_ids(older_than=30) == ["lost"]
    assert st.requeue({"lost": b"m1"}) == ["lost"]
    st.start("lost", "w", "now", 3)
    assert st.requeue({"lost": b"m1"}) == []  # running now: no second message


def test_wait_change_wakes_on_progress(redis_server: RedisServer) -> None:  # noqa: F811
    st = make_state(redis_server)
    st.accept("j", {}, b"m")
    v = st.version("j")
    st.start("j", "w", "now", 3)
    threading.Timer(0.2, lambda: st.beat("j", "w", {"progress": 0.3})).start()
    t0 = time.monotonic()
    v2 = st.wait_change("j", v + 1, timeout=5)
    assert v2 >= v + 2 and time.monotonic() - t0 < 2
    assert st.wait_change("j", v2, timeout=0.2) == v2  # times out without a change


def test_blobs_stream_cap_and_expiry(redis_server: RedisServer) -> None:  # noqa: F811
    blobs = RedisBlobs(redis.Redis.from_url(redis_server.url), max_bytes=3 << 20)
    data = os.urandom((2 << 20) + 123)
    assert blobs.put("uploads/x", io.BytesIO(data), ttl=60) == len(data)
    out = io.BytesIO()
    assert blobs.get("uploads/x", out) and out.getvalue() == data
    assert 0 < blobs.r.ttl(blobs.prefix + "uploads/x") <= 60
    with pytest.raises(BlobTooLargeError):
        blobs.put("uploads/big", io.BytesIO(os.urandom(4 << 20)))
    assert blobs.size("uploads/big") is None
    assert not [k for k in blobs.r.keys("*partial*")]  # nothing half-written left behind
    blobs.delete("uploads/x")
    assert blobs.get("uploads/x", io.BytesIO()) is False
