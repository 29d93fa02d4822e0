"""Blobs in Redis: the default ``BlobStore`` of the scale-out mode (``FEATHERBEAT_BROKER=redis://``).

In the scale-out mode a web process on one machine accepts the upload and a worker on another
analyses it, so a local folder no longer works. Redis itself holds the blobs by default: one
string per blob, written in 1 MiB ``APPEND`` chunks under a temporary key and renamed into place,
so a reader never sees half a blob and neither side ever holds a whole upload in memory. Every
blob has a size cap and an expiry (uploads are short-lived; results follow the retention).

``FEATHERBEAT_BLOB_URL=s3://bucket/prefix`` moves blobs to S3 instead (``featherbeat.jobs.s3_blobs``).
"""

from __future__ import annotations

import errno
import secrets
from collections.abc import Iterator
from typing import IO, Any

from featherbeat.jobs.blobs import (
    CHUNK,
    BlobStore,
    BlobTooLargeError,
    StorageFullError,
    check_key,
    copy_chunks,
)


class RedisBlobs(BlobStore):
    """Blobs as Redis strings with a size cap and an expiry.

    ``ttls`` maps a key prefix to the expiry (seconds) used when ``put`` gets no ``ttl``:
    uploads are short-lived, results follow the retention; None or 0 keeps them for ever.
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "featherbeat:",
        max_bytes: int = 256 << 20,
        ttls: dict[str, float | None] | None = None,
    ) -> None:
        self.r = client
        self.prefix = prefix + "blob:"
        # Redis strings stop at 512 MB; the cap keeps one huge upload from eating the server.
        self.max_bytes = min(int(max_bytes), 512 << 20)
        self.ttls = dict(ttls or {})

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _ttl(self, key: str, ttl: float | None) -> float | None:
        if ttl is not None:
            return ttl
        for start, value in self.ttls.items():
            if key.startswith(start):
                return value
        return None

    def put(self, key: str, fp: IO[bytes], *, ttl: float | None = None) -> int:
        ttl = self._ttl(key, ttl)
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
                        "(FEATHERBEAT_REDIS_BLOB_MAX_MB, or use FEATHERBEAT_BLOB_URL=s3://...)"
                    )
                # SETRANGE at an explicit offset, not APPEND: a command retried after a lost
                # reply (Redis restarting) rewrites the same bytes instead of doubling them.
                self.r.setrange(partial, total - len(chunk), chunk)
            pipe = self.r.pipeline(transaction=True)
            pipe.rename(partial, self._key(key))
            if ttl:
                pipe.pexpire(self._key(key), int(ttl * 1000))
            else:
                pipe.persist(self._key(key))
            pipe.execute()
        except BaseException as exc:
            self.r.delete(partial)
            from redis.exceptions import OutOfMemoryError  # imported here: S3 needs no redis

            if isinstance(exc, OutOfMemoryError):  # "maxmemory reached" under noeviction
                raise StorageFullError(
                    errno.ENOSPC,
                    "Redis is full (maxmemory reached, noeviction): analyse or delete queued "
                    "uploads, raise maxmemory, or keep blobs in S3 (FEATHERBEAT_BLOB_URL)",
                ) from exc
            raise
        return total

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
        return copy_chunks(self.iter(key), out)

    def delete(self, key: str) -> None:
        self.r.delete(self._key(key))
