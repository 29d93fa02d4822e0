"""The HTTP API in the scale-out mode: the service harness (gunicorn + one worker) pointed at a
real redis-server. Every JSON answer is validated against the OpenAPI document by the harness;
SSE here is served from the job's Redis stream (XREAD), not from polling."""

from __future__ import annotations

from pathlib import Path

import pytest

from featherbeat.testing.redis_server import REDIS_SERVER, RedisServer, wav_bytes
from featherbeat.testing.service import running_service

pytestmark = [pytest.mark.redis, pytest.mark.service, pytest.mark.timeout(120)]


def test_upload_events_results_cache_delete(tmp_path: Path, redis_server: RedisServer) -> None:
    audio = wav_bytes(7, 20.0)
    with running_service(tmp_path, env={"FEATHERBEAT_BROKER": redis_server.url}) as svc:
        status, job = svc.upload(audio, "song.wav")
        assert status == 202 and job["status"] in ("queued", "running")

        events = [e for e in svc.events(job["id"]) if e.get("event") == "status"]
        ids = [int(e["id"]) for e in events if "id" in e]  # stages passed between reads: none
        assert ids == sorted(set(ids)) and events[-1]["data"]["status"] == "done"
        progress = [e["data"]["progress"] for e in events]
        assert progress == sorted(progress) and progress[-1] == 1.0
        stages = [e["data"]["stage"] for e in events]
        assert [s for i, s in enumerate(stages) if s not in stages[:i]][-5:] == [
            "decoding",
            "rhythm",
            "structure",
            "writing",
            "done",
        ], stages
        # A reconnect after the end gets the final status again, then the stream closes.
        again = [e for e in svc.events(job["id"], last_event_id=str(ids[-1])) if "event" in e]
        assert [e["data"]["status"] for e in again] == ["done"]

        for fmt in ("spotify", "beats", "jams"):
            code, _headers, body = svc.request("GET", f"{job['links']['analysis']}?format={fmt}")
            assert code == 200 and body
        code, _headers, body = svc.request("GET", job["links"]["audio"])
        assert code in (200, 410)  # uploads are dropped once analysed unless kept

        status, cached = svc.upload(audio, "same-bytes.wav")  # sha256 dedupe across Redis
        assert status == 202 and cached["status"] == "done"
        assert cached["id"] != job["id"] and cached["filename"] == "same-bytes.wav"

        code, _headers, _body = svc.request("DELETE", job["links"]["self"])
        assert code == 204
        status, gone = svc.json("GET", job["links"]["self"])
        assert status == 404 and gone["error"]["code"]
        # The other uploader's id still reads the shared analysis, until it goes too.
        code, _headers, body = svc.request("GET", cached["links"]["analysis"])
        assert code == 200 and body
        code, _headers, _body = svc.request("DELETE", cached["links"]["self"])
        assert code == 204

    import redis

    client = redis.Redis.from_url(redis_server.url)
    leftovers = [k for k in client.scan_iter(f"*{job['id']}*")]
    leftovers += [k for k in client.scan_iter(f"*{cached['id']}*")]
    assert leftovers == []  # record, stream and blobs of the deleted job are all gone


def test_worker_without_redis_is_one_clear_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from featherbeat.testing.redis_server import free_port

    env = {
        **os.environ,
        "FEATHERBEAT_BROKER": f"redis://:s3cret@127.0.0.1:{free_port()}/0",  # nobody listens
        "FEATHERBEAT_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "featherbeat.cli", "worker"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "cannot reach Redis" in lines[0]
    assert "s3cret" not in lines[0] and ":***@127.0.0.1" in lines[0]  # no password in logs


def test_password_protected_redis_and_no_password_in_logs(tmp_path: Path) -> None:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make system-deps)")
    server = RedisServer(tmp_path / "redis", password="pa55-word")
    server.start()
    try:
        env = {"FEATHERBEAT_BROKER": server.url}
        with running_service(tmp_path / "svc", env=env) as svc:
            status, job = svc.upload(wav_bytes(11, 3.0), "song.wav")
            assert status == 202 and svc.wait_done(job["id"])["status"] == "done"
            logs = svc.logs()
        assert "pa55-word" not in logs and ":***@127.0.0.1" in logs
    finally:
        server.stop()


def test_full_redis_is_507_storage_full(tmp_path: Path, redis_server: RedisServer) -> None:
    import redis

    with running_service(tmp_path, env={"FEATHERBEAT_BROKER": redis_server.url}) as svc:
        client = redis.Redis.from_url(redis_server.url)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + (1 << 20)))
        status, body = svc.upload(wav_bytes(12, 60.0), "big.wav")  # 2.6 MB > 1 MB of room
        assert status == 507 and body["error"]["code"] == "storage_full"
        client.config_set("maxmemory", "0")
        status, job = svc.upload(wav_bytes(12, 60.0), "big.wav")  # room again: accepted
        assert status == 202 and svc.wait_done(job["id"])["status"] == "done"


def test_two_web_processes_take_the_same_bytes_at_once(
    tmp_path: Path,
    redis_server: RedisServer,
) -> None:
    """Eight uploads of the same bytes, released together by a barrier, spread over two web
    processes on one Redis: every uploader gets their own id and name, one analysis runs, no
    stored copy is left behind, and the shared result goes with the last id."""
    import threading

    import redis

    from featherbeat.testing.service import Service

    audio = wav_bytes(13, 6.0)
    env = {"FEATHERBEAT_BROKER": redis_server.url}
    with running_service(tmp_path / "a", env=env) as first:
        second = Service(tmp_path / "b", env)
        second.start_web()
        try:
            webs = [first, second]
            n = 8
            barrier = threading.Barrier(n)
            answers: dict[int, tuple[int, dict]] = {}

            def upload(i: int) -> None:
                barrier.wait(timeout=10)
                answers[i] = webs[i % 2].upload(audio, f"same{i}.wav", raw=bool(i % 3))

            threads = [threading.Thread(target=upload, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert len(answers) == n, answers
            assert all(status == 202 for status, _ in answers.values()), answers
            ids = {job["id"] for _, job in answers.values()}
            assert len(ids) == n
            for i, (_, job) in answers.items():
                assert job["filename"] == f"same{i}.wav"
            done = [webs[k % 2].wait_done(job_id) for k, job_id in enumerate(sorted(ids))]
            assert all(j["status"] == "done" and j["attempts"] == 1 for j in done), done
            client = redis.Redis.from_url(redis_server.url)
            assert len(list(client.scan_iter("featherbeat:job:*"))) == 1  # one analysis
            assert len(list(client.scan_iter("featherbeat:link:*"))) == n - 1
            assert list(client.scan_iter("featherbeat:blob:uploads/*")) == []  # none left
            counters = {
                k.decode(): int(v) for k, v in client.hgetall("featherbeat:counters").items()
            }
            assert counters.get("uploads:accepted") == 1, counters
            for k, job_id in enumerate(sorted(ids)):
                status, _, _ = webs[k % 2].request("DELETE", f"/api/v1/analyses/{job_id}")
                assert status == 204
                left = list(client.scan_iter("featherbeat:blob:results/*"))
                assert bool(left) == (k < n - 1), (k, left)  # the last id takes the result
            assert list(client.scan_iter("featherbeat:job:*")) == []
            assert list(client.scan_iter("featherbeat:link*")) == []
        finally:
            second.stop()
