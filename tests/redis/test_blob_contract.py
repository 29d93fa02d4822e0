"""The BlobStore contract (featherbeat.jobs.blobs), one module run against every backend:
local files, Redis (a real redis-server) and S3 (a real S3 HTTP server on loopback, moto).
What only one backend has (Redis' cap and expiry, S3's multipart and prefixes) stays in that
backend's own tests.
"""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path

import pytest

from featherbeat.jobs.blobs import CHUNK, BlobStore
from featherbeat.jobs.local_blobs import LocalBlobStore
from featherbeat.jobs.redis_blobs import RedisBlobs

_prefixes = itertools.count()


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis), "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if request.param == "redis":
        redis = pytest.importorskip("redis")
        url = request.getfixturevalue("redis_url")
        return RedisBlobs(redis.Redis.from_url(url), f"contract{next(_prefixes)}:")
    pytest.importorskip("boto3")
    from featherbeat.jobs.s3_blobs import S3Blobs

    return S3Blobs(f"s3://{request.getfixturevalue('bucket')}/fb")


def test_round_trip_in_every_shape(blobs: BlobStore) -> None:
    data = os.urandom(2 * CHUNK + 123)
    assert blobs.put("uploads/x", io.BytesIO(data)) == len(data)
    assert blobs.size("uploads/x") == len(data)
    out = io.BytesIO()
    assert blobs.get("uploads/x", out) and out.getvalue() == data
    chunks = blobs.iter("uploads/x")
    assert chunks is not None
    pieces = list(chunks)
    assert b"".join(pieces) == data and max(map(len, pieces)) <= CHUNK
    with blobs.local_path("uploads/x") as path:
        assert path.read_bytes() == data


def test_put_replaces_and_an_empty_blob_exists(blobs: BlobStore) -> None:
    blobs.put("results/j/spotify", io.BytesIO(b"first version"))
    blobs.put("results/j/spotify", io.BytesIO(b"second"))
    out = io.BytesIO()
    assert blobs.get("results/j/spotify", out) and out.getvalue() == b"second"
    assert blobs.put("results/j/beats", io.BytesIO(b"")) == 0
    assert blobs.size("results/j/beats") == 0


def test_missing_is_absent_not_an_error(blobs: BlobStore) -> None:
    assert blobs.size("uploads/nope") is None
    assert blobs.iter("uploads/nope") is None
    assert blobs.get("uploads/nope", io.BytesIO()) is False
    assert blobs.local_file("uploads/nope") is None
    with pytest.raises(KeyError), blobs.local_path("uploads/nope"):
        pass
    blobs.delete("uploads/nope")  # no error


def test_delete_removes_only_its_key(blobs: BlobStore) -> None:
    blobs.put("results/j/spotify", io.BytesIO(b"a"))
    blobs.put("results/j/beats", io.BytesIO(b"b"))
    blobs.delete("results/j/spotify")
    blobs.delete("results/j/spotify")  # twice: no error
    assert blobs.size("results/j/spotify") is None and blobs.size("results/j/beats") == 1


def test_put_file_stores_and_takes_the_file(blobs: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "incoming-upload"
    src.write_bytes(b"RIFF....WAVE")
    blobs.put_file("uploads/f", src)
    assert not src.exists(), "the caller's temp file is taken over"
    assert blobs.size("uploads/f") == 12


def test_local_file_only_where_blobs_are_files(blobs: BlobStore) -> None:
    blobs.put("uploads/x", io.BytesIO(b"abc"))
    path = blobs.local_file("uploads/x")
    if isinstance(blobs, LocalBlobStore):
        assert path is not None and path.read_bytes() == b"abc"  # Range requests can seek
    else:
        assert path is None  # streamed, no Range support


@pytest.mark.parametrize("key", ["../x", "uploads/../../x", "/etc/passwd", "a//b", ""])
def test_keys_that_could_escape_are_refused(blobs: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        blobs.put(key, io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        blobs.size(key)
