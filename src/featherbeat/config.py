"""Service settings, read once from the environment (12-factor), each with a working default.

``Settings.from_env()`` is the only place that reads ``FEATHERBEAT_*`` (and HOST / PORT); the
web app, gunicorn's config, the consumer, the scale-out backends and ``analyze --via`` all
receive a ``Settings`` (the child gets its few values on the command line). ``_number`` is the
one parser of numbers from the environment. Stdlib only: the web process must stay light.

| variable | default | meaning |
|---|---|---|
| FEATHERBEAT_DATA_DIR | ./var | job records, queue, uploads, results |
| FEATHERBEAT_MAX_UPLOAD_MB | 400 | uploads above this get 413 (6 h of 128 kbit/s MP3 is 346 MB) |
| FEATHERBEAT_MAX_DURATION | 21600 | seconds (6 hours); longer audio gets 422 |
| FEATHERBEAT_API_TOKEN | (unset) | when set, POST/DELETE need ``Authorization: Bearer <token>`` |
| FEATHERBEAT_CORS_ORIGINS | (unset) | comma-separated origins allowed by CORS, or ``*`` |
| FEATHERBEAT_CONCURRENCY | 1 | analyses at once per consumer |
| FEATHERBEAT_QUEUE_LIMIT | 50 | queued jobs before uploads get 503 |
| FEATHERBEAT_CHILD_MAX_RSS_MB | 200 | watchdog memory ceiling of one analysis child (a 6-hour Opus file peaks at ~87 MB, docs/deployment.md) |
| FEATHERBEAT_CHILD_TIMEOUT | 3600 | seconds one analysis attempt may take (6 h of audio: ~1500 s at 0.1 CPU) |
| FEATHERBEAT_KEEP_UPLOADS | 0 | keep the uploaded audio after analysis |
| FEATHERBEAT_WARM_CHILD | 1 | keep one spare analysis child, imports done, while a worker is idle (0: cold starts only) |
| FEATHERBEAT_RETENTION_DAYS | 30 | finished jobs and results older than this are purged (0 = never) |
| FEATHERBEAT_BROKER | (unset) | unset: embedded SQLite; ``redis://...``: scale-out |
| FEATHERBEAT_HEARTBEAT_SECONDS | 2 | how often a running job proves it is alive |
| FEATHERBEAT_STALE_SECONDS | 20 | a job silent this long is recovered by the reaper |
| FEATHERBEAT_UPLOAD_IDLE_TIMEOUT | 30 | seconds an upload may stall before it is cut (408) |
| FEATHERBEAT_HEADER_TIMEOUT | 10 | seconds a request head may take to arrive (408 after) |
| FEATHERBEAT_UPLOAD_MIN_RATE_KB | 8 | KiB/s a request body must average after the header timeout (0 = off) |
| FEATHERBEAT_MAX_CONNECTIONS_PER_CLIENT | 32 | open connections per peer address and web worker (0 = no cap) |
| FEATHERBEAT_MAX_UPLOADS | threads / 2 | uploads receiving bodies at once per web worker (503 beyond) |
| FEATHERBEAT_CLIENT_UPLOADS_PER_MINUTE | 30 | uploads one client may start per minute and web worker (burst of 10); 0 = no limit |
| FEATHERBEAT_CLIENT_QUEUE_SHARE | queue limit / 5 | queued + running analyses one client may have (429 beyond) |
| FEATHERBEAT_CLIENT_ADDRESS_HEADER | (unset) | a header a proxy you run sets to the client's address (last entry counts) |
| FEATHERBEAT_INCOMING_MAX_AGE | 600 | seconds after which an unwritten temp upload (a killed web process's) is swept |
| FEATHERBEAT_THREADS | 16 | gunicorn threads per web worker (an SSE stream holds one) |
| FEATHERBEAT_LOG_LEVEL | info | gunicorn's log level |
| FEATHERBEAT_SSE_KEEPALIVE | 15 | seconds between keep-alive comments on an event stream |
| FEATHERBEAT_SSE_MAX_SECONDS | 600 | the longest an event stream stays open (the client reconnects) |
| FEATHERBEAT_BLOB_URL | (unset) | scale-out: ``s3://bucket/prefix`` keeps uploads and results in S3 |
| FEATHERBEAT_REDIS_BLOB_MAX_MB | max(upload limit, 64) | scale-out: cap of one blob kept in Redis (at most 512) |
| FEATHERBEAT_UPLOAD_TTL_HOURS | 24 | scale-out: an upload not analysed by then expires from Redis |
| FEATHERBEAT_REDIS_PREFIX | featherbeat: | scale-out: key prefix (several deployments on one Redis) |
| FEATHERBEAT_RHYTHM | (unset) | beat tracker when not given: ``learned``, ``fused``, ``committee`` or ``dsp`` (unset: the better on dev, docs/rhythm.md) |
| FEATHERBEAT_RHYTHM_WEIGHTS | (unset) | another weights file for the learned tracker (unset: the packaged one) |
| HOST / PORT | 127.0.0.1 / 8000 | where gunicorn listens |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Files the service processes create are theirs alone: uploads, results, jobs.db.
PRIVATE_UMASK = 0o077

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting in the environment has a value we cannot use."""


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/0/true/false/yes/no, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to know about its environment."""

    data_dir: Path = Path("var")
    max_upload_bytes: int = 400 * 1024 * 1024
    max_duration: float = 21600.0  # memory is flat in the length (issue 13)
    api_token: str | None = None
    cors_origins: tuple[str, ...] = ()
    concurrency: int = 1
    queue_limit: int = 50
    child_max_rss_mb: float = 200.0
    child_timeout: float = 3600.0
    keep_uploads: bool = False
    warm_child: bool = True  # a spare analysis child imports ahead of the next job
    retention_days: float = 30.0
    broker: str | None = None
    heartbeat_seconds: float = 2.0
    stale_seconds: float = 20.0
    upload_idle_timeout: float = 30.0
    incoming_max_age: float = 600.0
    header_timeout: float = 10.0
    upload_min_rate: float = 8 * 1024.0  # bytes per second
    max_connections_per_client: int = 32
    max_uploads: int = 8
    client_uploads_per_minute: float = 30.0
    client_queue_share: int = 10
    client_address_header: str | None = None
    threads: int = 16
    log_level: str = "info"
    sse_keepalive: float = 15.0
    sse_max_seconds: float = 600.0
    blob_url: str | None = None
    redis_blob_max_mb: float | None = None  # None: max(upload limit, 64)
    upload_ttl_hours: float = 24.0
    redis_prefix: str = "featherbeat:"
    host: str = "127.0.0.1"
    port: int = 8000
    rhythm: str | None = None  # checked where it is used (rhythm.learned.resolve_mode)
    rhythm_weights: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        cors = _get(env, "FEATHERBEAT_CORS_ORIGINS")
        broker = _get(env, "FEATHERBEAT_BROKER")
        threads = int(_number(env, "FEATHERBEAT_THREADS", 16, 1))
        queue_limit = int(_number(env, "FEATHERBEAT_QUEUE_LIMIT", 50, 1))
        blob_max = _get(env, "FEATHERBEAT_REDIS_BLOB_MAX_MB")
        if broker is not None and not broker.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"FEATHERBEAT_BROKER must be a redis:// URL or unset, got {broker!r}")
        settings = cls(
            data_dir=Path(_get(env, "FEATHERBEAT_DATA_DIR") or "var").resolve(),
            rhythm=_get(env, "FEATHERBEAT_RHYTHM"),
            rhythm_weights=_get(env, "FEATHERBEAT_RHYTHM_WEIGHTS"),
            max_upload_bytes=int(
                _number(env, "FEATHERBEAT_MAX_UPLOAD_MB", 400, 0.001) * 1024 * 1024
            ),
            max_duration=_number(env, "FEATHERBEAT_MAX_DURATION", 21600, 1),
            api_token=_get(env, "FEATHERBEAT_API_TOKEN"),
            cors_origins=tuple(o.strip() for o in cors.split(",") if o.strip()) if cors else (),
            concurrency=int(_number(env, "FEATHERBEAT_CONCURRENCY", 1, 1)),
            queue_limit=queue_limit,
            child_max_rss_mb=_number(env, "FEATHERBEAT_CHILD_MAX_RSS_MB", 200, 16),
            child_timeout=_number(env, "FEATHERBEAT_CHILD_TIMEOUT", 3600, 0.1),
            keep_uploads=_flag(env, "FEATHERBEAT_KEEP_UPLOADS", False),
            warm_child=_flag(env, "FEATHERBEAT_WARM_CHILD", True),
            retention_days=_number(env, "FEATHERBEAT_RETENTION_DAYS", 30, 0),
            broker=broker,
            heartbeat_seconds=_number(env, "FEATHERBEAT_HEARTBEAT_SECONDS", 2, 0.1),
            stale_seconds=_number(env, "FEATHERBEAT_STALE_SECONDS", 20, 0.5),
            upload_idle_timeout=_number(env, "FEATHERBEAT_UPLOAD_IDLE_TIMEOUT", 30, 0.1),
            incoming_max_age=_number(env, "FEATHERBEAT_INCOMING_MAX_AGE", 600, 1),
            header_timeout=_number(env, "FEATHERBEAT_HEADER_TIMEOUT", 10, 0.1),
            upload_min_rate=_number(env, "FEATHERBEAT_UPLOAD_MIN_RATE_KB", 8, 0) * 1024,
            max_connections_per_client=int(
                _number(env, "FEATHERBEAT_MAX_CONNECTIONS_PER_CLIENT", 32, 0)
            ),
            max_uploads=int(_number(env, "FEATHERBEAT_MAX_UPLOADS", max(1, threads // 2), 1)),
            client_uploads_per_minute=_number(env, "FEATHERBEAT_CLIENT_UPLOADS_PER_MINUTE", 30, 0),
            client_queue_share=int(
                _number(env, "FEATHERBEAT_CLIENT_QUEUE_SHARE", max(1, queue_limit // 5), 1)
            ),
            client_address_header=_get(env, "FEATHERBEAT_CLIENT_ADDRESS_HEADER"),
            threads=threads,
            log_level=_get(env, "FEATHERBEAT_LOG_LEVEL") or "info",
            sse_keepalive=_number(env, "FEATHERBEAT_SSE_KEEPALIVE", 15, 0.1),
            sse_max_seconds=_number(env, "FEATHERBEAT_SSE_MAX_SECONDS", 600, 1),
            blob_url=_get(env, "FEATHERBEAT_BLOB_URL"),
            redis_blob_max_mb=(
                None
                if blob_max is None
                else _number(env, "FEATHERBEAT_REDIS_BLOB_MAX_MB", 0, 0.001)
            ),
            upload_ttl_hours=_number(env, "FEATHERBEAT_UPLOAD_TTL_HOURS", 24, 0.001),
            redis_prefix=_get(env, "FEATHERBEAT_REDIS_PREFIX") or "featherbeat:",
            host=_get(env, "HOST") or "127.0.0.1",
            port=int(_number(env, "PORT", 8000, 0)),
        )
        if settings.stale_seconds <= settings.heartbeat_seconds:
            raise ConfigError(
                "FEATHERBEAT_STALE_SECONDS must be larger than FEATHERBEAT_HEARTBEAT_SECONDS "
                "or every running job would look dead"
            )
        return settings

    def with_(self, **changes: Any) -> Settings:
        """A copy with some values changed (tests and the CLI use it)."""
        return replace(self, **changes)
