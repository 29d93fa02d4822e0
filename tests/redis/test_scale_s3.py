"""The S3 blob store (``FEATHERBEAT_BLOB_URL=s3://bucket/prefix``) against a real S3 HTTP server.

The server is src/featherbeat/testing/s3_server.py (moto on loopback; nothing here ever talks to AWS). Nothing of
featherbeat is mocked. The BlobStore contract every backend meets is test_blob_contract.py;
here what only S3 has (prefixes, the cap while streaming, memory of a large put, start-up
checks), then one job through a real gunicorn + worker in the scale-out mode (real
redis-server) with its blobs in the bucket.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from featherbeat.config import ConfigError
from featherbeat.jobs.blobs import CHUNK, BlobTooLargeError
from featherbeat.jobs.s3_blobs import S3Blobs
from featherbeat.testing.redis_server import RedisServer, free_port, redis_env, wav_bytes
from featherbeat.testing.s3_server import keys_in
from featherbeat.testing.service import running_service

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

pytestmark = pytest.mark.timeout(120)


class Source(io.RawIOBase):
    """A non-seekable upload body of ``size`` bytes that counts what was read from it."""

    def __init__(self, size: int) -> None:
        self.left, self.read_bytes = size, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        self.read_bytes += n
        return b"\x5a" * n


def test_s3_put_get_iter_local_path_delete(bucket: str) -> None:
    blobs = S3Blobs(f"s3://{bucket}/fb", max_bytes=8 << 20)
    data = os.urandom((2 << 20) + 123)
    assert blobs.put("uploads/x", io.BytesIO(data)) == len(data)
    assert keys_in(bucket) == ["fb/uploads/x"]  # under the URL's prefix
    assert blobs.size("uploads/x") == len(data)
    out = io.BytesIO()
    assert blobs.get("uploads/x", out) and out.getvalue() == data
    chunks = list(blobs.iter("uploads/x"))
    assert b"".join(chunks) == data and max(map(len, chunks)) <= CHUNK
    with blobs.local_path("uploads/x") as path:
        assert path.read_bytes() == data
    assert blobs.put("results/x/spotify", io.BytesIO(b"")) == 0  # an empty blob exists
    assert blobs.size("results/x/spotify") == 0
    blobs.delete("uploads/x")
    blobs.delete("uploads/x")  # absent: no error
    assert keys_in(bucket) == ["fb/results/x/spotify"]


def test_s3_prefixes_are_kept_apart(bucket: str) -> None:
    one, two, bare = (S3Blobs(f"s3://{bucket}/{p}") for p in ("one", "two/deep/", ""))
    one.put("uploads/x", io.BytesIO(b"one"))
    two.put("uploads/x", io.BytesIO(b"two"))
    bare.put("uploads/x", io.BytesIO(b"bare"))
    assert keys_in(bucket) == ["one/uploads/x", "two/deep/uploads/x", "uploads/x"]
    for store, body in ((one, b"one"), (two, b"two"), (bare, b"bare")):
        out = io.BytesIO()
        assert store.get("uploads/x", out) and out.getvalue() == body
    one.delete("uploads/x")
    assert one.size("uploads/x") is None and two.size("uploads/x") == 3
    assert bare.size("uploads/x") == 4


@pytest.mark.parametrize("cap_mb", [3, 12])  # a single PUT, and a multipart upload
def test_s3_cap_enforced_while_streaming(bucket: str, cap_mb: int) -> None:
    blobs = S3Blobs(f"s3://{bucket}/fb", max_bytes=cap_mb << 20)
    source = Source(64 << 20)
    with pytest.raises(BlobTooLargeError, match="larger than"):
        blobs.put("uploads/big", source)
    # Stopped within one 8 MiB transfer part past the cap, not after reading all 64 MiB.
    assert source.read_bytes <= (cap_mb << 20) + (8 << 20)
    assert blobs.size("uploads/big") is None and keys_in(bucket) == []
    s3 = boto3.client("s3")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # aborted
    assert blobs.put("uploads/ok", Source(cap_mb << 20)) == cap_mb << 20  # exactly the cap fits


MEMORY_PROBE = """
import os, sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) // 1024
from featherbeat.jobs.s3_blobs import S3Blobs
blobs = S3Blobs(sys.argv[1], max_bytes=1 << 30)
blobs.check()
before = hwm()
with open(sys.argv[2], "rb") as fp:
    size = blobs.put("uploads/big", fp)
print(size, hwm() - before)
"""


def test_s3_put_of_a_large_upload_holds_one_part_in_memory(bucket: str, tmp_path: Path) -> None:
    """A web process streams an 80 MB upload to S3 without holding it: boto3's threaded
    transfer kept up to 10 parts of 8 MiB of a non-seekable body (+90 MB peak here)."""
    big = tmp_path / "big.bin"
    with big.open("wb") as fp:
        for _ in range(80):
            fp.write(os.urandom(1 << 20))
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, f"s3://{bucket}/fb", str(big)],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    size, grown_mb = map(int, done.stdout.split())
    head = boto3.client("s3").head_object(Bucket=bucket, Key="fb/uploads/big")
    assert size == 80 << 20 and head["ContentLength"] == size
    assert grown_mb < 32, f"peak RSS grew by {grown_mb} MB while uploading 80 MB"


def test_s3_url_and_bucket_problems_are_config_errors(s3_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        S3Blobs("s3:///no-bucket")
    with pytest.raises(ConfigError, match="NoSuchBucket"):
        S3Blobs("s3://no-such-bucket-here/fb").check()


def test_s3_unreachable_endpoint_is_a_config_error(
    s3_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
    with pytest.raises(ConfigError, match="Could not connect to the endpoint"):
        S3Blobs("s3://some-bucket/fb").check()


def test_worker_with_missing_bucket_is_one_clear_line(
    tmp_path: Path,
    s3_env: dict[str, str],
    redis_server: RedisServer,
) -> None:
    env = {
        **redis_env(redis_server),
        "FEATHERBEAT_BLOB_URL": "s3://no-such-bucket-here/fb",
        "FEATHERBEAT_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "featherbeat.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "NoSuchBucket" in lines[0], lines
    assert "s3://no-such-bucket-here/fb/" in lines[0]


@pytest.mark.redis
@pytest.mark.service
@pytest.mark.parametrize("keep_uploads", [False, True])
def test_job_end_to_end_with_blobs_in_s3(
    tmp_path: Path,
    bucket: str,
    s3_env: dict[str, str],
    redis_server: RedisServer,
    keep_uploads: bool,
) -> None:
    import redis

    audio = wav_bytes(21, 8.0)
    env = {
        **s3_env,
        "FEATHERBEAT_BROKER": redis_server.url,
        "FEATHERBEAT_BLOB_URL": f"s3://{bucket}/featherbeat",
        "FEATHERBEAT_KEEP_UPLOADS": "1" if keep_uploads else "0",
    }
    with running_service(tmp_path, env=env) as svc:
        status, job = svc.upload(audio, "song.wav")
        assert status == 202, job
        job = svc.wait_done(job["id"])
        assert job["status"] == "done", svc.logs()
        job_id = job["id"]

        code, _headers, body = svc.request("GET", job["links"]["analysis"])
        assert code == 200, body[:300]
        assert json.loads(body)["track"]["duration"] == pytest.approx(8.0, abs=0.1)
        code, _headers, beats = svc.request("GET", f"{job['links']['analysis']}?format=beats")
        assert code == 200 and beats

        # One run's results (results/<job>/<run>/<format>: each run of a job has its own keys).
        runs = {k.split("/")[3] for k in keys_in(bucket) if k.startswith("featherbeat/results/")}
        assert len(runs) == 1, keys_in(bucket)
        base = f"featherbeat/results/{job_id}/{runs.pop()}"
        results = [f"{base}/{fmt}" for fmt in ("beats", "jams", "spotify")]
        upload = f"featherbeat/uploads/{job_id}"
        # The upload is deleted once analysed, unless FEATHERBEAT_KEEP_UPLOADS.
        assert keys_in(bucket) == sorted(results + ([upload] if keep_uploads else []))
        s3 = boto3.client("s3")
        stored = s3.get_object(Bucket=bucket, Key=f"{base}/spotify")
        assert stored["Body"].read() == body  # served from the bucket as stored
        code, _headers, played = svc.request("GET", f"/api/v1/analyses/{job_id}/audio")
        if keep_uploads:
            assert job["links"]["audio"].endswith(f"/{job_id}/audio")
            assert code == 200 and played == audio  # streamed back from the bucket
            assert s3.get_object(Bucket=bucket, Key=upload)["Body"].read() == audio
        else:
            assert job["links"]["audio"] is None  # the JOB says so: no need to ask
            assert code == 410

        client = redis.Redis.from_url(redis_server.url)
        assert list(client.scan_iter("*blob:*")) == []  # Redis holds records only

        code, _headers, _body = svc.request("DELETE", job["links"]["self"])
        assert code == 204
        assert keys_in(bucket) == []  # results (and a kept upload) go with the job
