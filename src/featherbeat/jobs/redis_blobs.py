"""Uploads and results on storage every machine can reach: Redis (default) or S3.

In the scale-out mode a web process on one machine accepts the upload and a worker on another
analyses it, so a local folder no longer works. Redis itself holds the blobs by default: one
string per blob, written in 1 MiB ``APPEND`` chunks under a temporary key and renamed into place,
so a reader never sees half a blob and neither side ever holds a whole upload in memory. Every
blob has a size cap and an expiry (uploads are short-lived; results follow the retention).

``FEATHERBEAT_BLOB_URL=s3://bucket/prefix`` moves blobs to any S3-compatible store through boto3
(endpoint from the usual ``AWS_ENDPOINT_URL`` / credentials chain). boto3 is an optional extra:
imported only when that URL is set.
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from collections.abc import Iterator
from typing import IO, Any, Protocol

CHUNK = 1 << 20  # 1 MiB: small enough to keep processes' memory flat, big enough for throughput


class BlobTooLargeError(ValueError):
    """The blob is bigger than the store's cap."""


class Blobs(Protocol):
    """Byte blobs by key, streamed in and out. Keys look like ``uploads/<id>`` or ``results/<id>.json``."""

    def put(self, key: str, fp: IO[bytes], *, ttl: float | None = None) -> int: ...
    def get(self, key: str, out: IO[bytes]) -> bool: ...
    def iter(self, key: str) -> Iterator[bytes] | None: ...
    def size(self, key: str) -> int | None: ...
    def delete(self, key: str) -> None: ...


class RedisBlobs:
    """Blobs as Redis strings with a size cap and an expiry."""

    def __init__(
        self, client: Any, prefix: str = "featherbeat:", max_bytes: int = 256 << 20
    ) -> None:
        self.r = client
        self.prefix = prefix + "blob:"
        # Redis strings stop at 512 MB; the cap keeps one huge upload from eating the server.
        self.max_bytes = min(int(max_bytes), 512 << 20)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, fp: IO[bytes], *, ttl: float | None = None) -> int:
        partial = f"{self._key(key)}:partial:{secrets.token_hex(6)}"
        total = 0
        try:
            # A partial key expires on its own if this process dies half-way.
            self.r.set(partial, b"", ex=3600)
            while chunk := fp.read(CHUNK):
                total += len(chunk)
                if total > self.max_bytes:
                    raise BlobTooLargeError(
                        f"blob {key!r} is larger than the Redis blob cap of {self.max_bytes} bytes "
                        "(FEATHERBEAT_REDIS_BLOB_MAX_BYTES, or use FEATHERBEAT_BLOB_URL=s3://...)"
                    )
                self.r.append(partial, chunk)
            pipe = self.r.pipeline(transaction=True)
            pipe.rename(partial, self._key(key))
            if ttl:
                pipe.pexpire(self._key(key), int(ttl * 1000))
            else:
                pipe.persist(self._key(key))
            pipe.execute()
        except BaseException:
            self.r.delete(partial)
            raise
        return total

    def put_bytes(self, key: str, data: bytes, *, ttl: float | None = None) -> int:
        if len(data) > self.max_bytes:
            raise BlobTooLargeError(f"blob {key!r} is larger than {self.max_bytes} bytes")
        self.r.set(self._key(key), data, px=int(ttl * 1000) if ttl else None)
        return len(data)

    def size(self, key: str) -> int | None:
        k = self._key(key)
        pipe = self.r.pipeline(transaction=False)
        pipe.exists(k)
        pipe.strlen(k)
        exists, length = pipe.execute()
        return int(length) if exists else None

    def iter(self, key: str) -> Iterator[bytes] | None:
        size = self.size(key)
        if size is None:
            return None
        return self._chunks(self._key(key), size)

    def _chunks(self, k: str, size: int) -> Iterator[bytes]:
        for start in range(0, size, CHUNK):
            chunk = self.r.getrange(k, start, min(start + CHUNK, size) - 1)
            if not chunk:  # deleted or expired while reading
                raise FileNotFoundError(k)
            yield chunk

    def get(self, key: str, out: IO[bytes]) -> bool:
        return _copy(self.iter(key), out)

    def get_bytes(self, key: str) -> bytes | None:
        return self.r.get(self._key(key))

    def delete(self, key: str) -> None:
        self.r.delete(self._key(key))


class S3Blobs:
    """Blobs in an S3-compatible bucket (expiry is the bucket's lifecycle rule, not ours)."""

    def __init__(self, url: str, max_bytes: int = 5 << 30) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"FEATHERBEAT_BLOB_URL must look like s3://bucket/prefix, got {url!r}")
        try:
            import boto3  # optional: only this mode needs it
        except ModuleNotFoundError as exc:
            raise RuntimeError(
                "FEATHERBEAT_BLOB_URL=s3://... needs boto3: pip install boto3"
            ) from exc
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/") + "/" if parsed.path.strip("/") else ""
        self.max_bytes = max_bytes
        self.s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, fp: IO[bytes], *, ttl: float | None = None) -> int:
        counter = _CountingReader(fp, self.max_bytes, key)
        self.s3.upload_fileobj(counter, self.bucket, self._key(key))
        return counter.total

    def size(self, key: str) -> int | None:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.s3.exceptions.ClientError:
            return None
        return int(head["ContentLength"])

    def iter(self, key: str) -> Iterator[bytes] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.s3.exceptions.NoSuchKey:
            return None
        return iter(lambda: body.read(CHUNK), b"")

    def get(self, key: str, out: IO[bytes]) -> bool:
        return _copy(self.iter(key), out)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(key))


def _copy(chunks: Iterator[bytes] | None, out: IO[bytes]) -> bool:
    """Write ``chunks`` to ``out``; False when the blob does not exist."""
    if chunks is None:
        return False
    for chunk in chunks:
        out.write(chunk)
    return True


class _CountingReader:
    """File wrapper that enforces the size cap while boto3 streams it."""

    def __init__(self, fp: IO[bytes], limit: int, key: str) -> None:
        self.fp, self.limit, self.key, self.total = fp, limit, key, 0

    def read(self, n: int = -1) -> bytes:
        data = self.fp.read(n)
        self.total += len(data)
        if self.total > self.limit:
            raise BlobTooLargeError(f"blob {self.key!r} is larger than {self.limit} bytes")
        return data
