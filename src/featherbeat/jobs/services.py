"""The three parts every process of the service shares: job records, blobs and the queue.

``build_services(settings)`` (also ``Services.from_settings``) is the one place that picks the
backends:

- embedded default: ``SqliteJobStore`` in ``<data dir>/jobs.db``, ``LocalBlobStore`` under
  ``<data dir>/blobs``, SqliteHuey in ``<data dir>/queue.db``;
- ``FEATHERBEAT_BROKER=redis://host:port/db`` (the scale-out, docs/scaling.md): on one Redis
  connection pool per process, ``RedisJobStore`` (hashes, per-status sorted sets, a change
  stream per job), huey's ``PriorityRedisHuey`` with the very same task, and ``RedisBlobs``
  (size cap + expiry) or, with ``FEATHERBEAT_BLOB_URL=s3://...``, ``S3Blobs``.

Importing a backend module costs nothing: redis-py and boto3 are imported only when a client
is built, so the embedded mode never loads them.

The scale-out's own settings (FEATHERBEAT_BLOB_URL, _REDIS_BLOB_MAX_MB, _UPLOAD_TTL_HOURS,
_REDIS_PREFIX) are ``Settings`` fields like every other; config.py's table documents them.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featherbeat.config import ConfigError, Settings
from featherbeat.jobs.blobs import BlobStore
from featherbeat.jobs.local_blobs import LocalBlobStore
from featherbeat.jobs.queue import JobQueue, redis_huey, sqlite_huey
from featherbeat.jobs.redis_blobs import RedisBlobs
from featherbeat.jobs.redis_store import RedisJobStore
from featherbeat.jobs.s3_blobs import S3Blobs
from featherbeat.jobs.sqlite_store import SqliteJobStore
from featherbeat.jobs.store import JobStore

# While Redis restarts (AOF replay takes a moment) a command is retried for ~5 s before the
# request fails; the store's scripts and the blob writes are safe to repeat.
_RETRIES = 8
_BACKOFF_CAP = 1.0


def make_private(folder: Path) -> None:
    """The data dir holds every upload and result, and a job id is the key to its analysis:
    only the service's own user may list or read it (0700; files in it are created 0600 by
    the service processes, which run with ``PRIVATE_UMASK``)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):  # not ours (a mounted volume): leave it as it is
        os.chmod(folder, 0o700)


@dataclass
class Services:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    queue: JobQueue

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return build_services(settings)


def build_services(settings: Settings) -> Services:
    """The services ``settings`` ask for."""
    make_private(settings.data_dir)
    if settings.broker:
        return _scale_out(settings, settings.broker)
    data = settings.data_dir
    return Services(
        settings=settings,
        store=SqliteJobStore(data / "jobs.db"),
        blobs=LocalBlobStore(data / "blobs"),
        queue=JobQueue(settings, huey=sqlite_huey(settings)),
    )


def _scale_out(settings: Settings, broker: str) -> Services:
    prefix = settings.redis_prefix
    client = redis_client(broker)
    try:
        client.ping()  # fail at start with one clear line, not at the first job
    except Exception as exc:  # redis' ConnectionError, TimeoutError, AuthenticationError ...
        raise ConfigError(
            f"cannot reach Redis at {redact_url(broker)} ({exc}); "
            "is FEATHERBEAT_BROKER right and is Redis running?"
        ) from None
    huey = redis_huey(prefix, client.connection_pool)
    return Services(
        settings=settings,
        store=RedisJobStore(client, prefix, queue_key=huey.storage.queue_key),
        blobs=make_blob_store(settings, client, prefix),
        queue=JobQueue(settings, huey=huey),
    )


def redis_client(url: str) -> Any:
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=_BACKOFF_CAP, base=0.05), _RETRIES),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
    )


def redact_url(url: str) -> str:
    """The broker URL without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def make_blob_store(settings: Settings, client: Any, prefix: str) -> BlobStore:
    """Uploads and results where every machine reaches them: S3 if configured, else Redis."""
    if settings.blob_url:
        s3 = S3Blobs(settings.blob_url)
        s3.check()  # like the Redis ping: a wrong bucket is one line at start
        return s3
    upload_mb = settings.max_upload_bytes / (1 << 20)
    max_mb = settings.redis_blob_max_mb or max(upload_mb, 64.0)
    upload_ttl = settings.upload_ttl_hours * 3600
    return RedisBlobs(
        client,
        prefix,
        max_bytes=int(max_mb * (1 << 20)),
        ttls={"uploads/": upload_ttl, "results/": settings.retention_days * 86400 or None},
    )
