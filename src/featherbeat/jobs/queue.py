"""The durable queue: huey carries job ids from the web process to the consumer.

SqliteHuey (``<data dir>/queue.db``, ``sqlite_huey``) by default; ``FEATHERBEAT_BROKER=redis://...``
gives PriorityRedisHuey (``redis_huey``) with the very same task; ``featherbeat.jobs.services``
picks one. huey alone is at-most-once (a message is deleted when a
worker takes it), so the queue never decides anything: the job record does (see
``featherbeat.jobs.store``) and the reaper (``featherbeat.jobs.reaper``) re-enqueues any job
whose message or worker was lost. A duplicate message is harmless: ``claim`` drops it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from featherbeat.config import Settings

TASK_NAME = "featherbeat.analyse"
RECOVERED_PRIORITY = 10  # recovered jobs are older than anything queued: let them go first


def import_huey(with_redis: bool) -> Any:
    # huey.storage imports redis-py when it is installed (~20 MB of RSS for nothing in the
    # embedded mode, where every web worker and the consumer import huey). Hide it while
    # huey loads; huey then simply has no RedisStorage, which SQLite mode never uses.
    if with_redis or "redis" in sys.modules or "huey.storage" in sys.modules:
        import huey

        return huey
    sys.modules["redis"] = None  # type: ignore[assignment]
    try:
        import huey
    finally:
        del sys.modules["redis"]
    return huey


def sqlite_huey(settings: Settings) -> Any:
    """The embedded queue: one SQLite file, strict FIFO within a priority."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return import_huey(with_redis=False).SqliteHuey(
        "featherbeat", filename=str(settings.data_dir / "queue.db"), results=False, strict_fifo=True
    )


def redis_huey(prefix: str, connection_pool: Any) -> Any:
    """The scale-out queue: a sorted set (FIFO within a priority, so the reaper's recovered
    jobs go first as in the SQLite mode) on the services' Redis connection pool."""
    return import_huey(with_redis=True).PriorityRedisHuey(
        prefix.rstrip(":") or "featherbeat", connection_pool=connection_pool, results=False
    )


class JobQueue:
    """Enqueue job ids; run them (consumer side) with the handler given to ``consumer()``."""

    def __init__(self, settings: Settings, huey: Any | None = None) -> None:
        self.settings = settings
        self.huey = huey if huey is not None else sqlite_huey(settings)
        self.handler: Callable[[str], None] | None = None
        self._task = self.huey.task(name=TASK_NAME)(self._execute)

    def _execute(self, job_id: str) -> None:
        if self.handler is None:
            raise RuntimeError("this JobQueue has no handler: only the consumer runs jobs")
        self.handler(job_id)

    def enqueue(self, job_id: str, priority: int = 0) -> None:
        # huey pops priority= from the call; the task itself only receives the id.
        self._task(job_id, priority=priority)

    def pending_ids(self) -> set[str]:
        """Job ids with a message waiting in the queue (bounded by the queue limit)."""
        ids = set()
        for task in self.huey.pending():
            if task.args:
                ids.add(str(task.args[0]))
        return ids

    def consumer(self, handler: Callable[[str], None], workers: int) -> Any:
        self.handler = handler
        # Poll every 50-200 ms: the bar is "analysis starts within 0.5 s of the upload",
        # and an indexed SQLite read per poll costs next to nothing.
        return self.huey.create_consumer(
            workers=workers,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=0.2,
            check_worker_health=True,
        )
