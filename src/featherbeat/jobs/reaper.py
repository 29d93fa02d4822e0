"""Closing huey's at-most-once gap: no accepted job is ever lost.

A job can lose its way in three places, and the reaper finds each from the job record alone:

- its worker died while running it (SIGKILL, OOM, deploy): status ``running`` with a heartbeat
  older than ``FEATHERBEAT_STALE_SECONDS``;
- its message was taken by a worker that died before claiming it, or the web process died
  between writing the record and enqueueing: status ``queued``, enqueued long ago, and no
  message for it in the queue;
- the consumer was stopped while running it: it hands its jobs back itself (``hand_back``).

Each is moved back to ``queued`` by a conditional update (only one reaper wins) and given a
new message with a high priority (they are older than anything else waiting). Runs at
consumer start-up and then every ``stale_seconds / 2`` in a thread of the consumer.
Also purges finished jobs past the retention (records, results and uploads).
"""

from __future__ import annotations

import os
import socket
import threading
import time

from featherbeat.jobs.log import log_event
from featherbeat.jobs.queue import RECOVERED_PRIORITY
from featherbeat.jobs.services import Services

PURGE_EVERY = 3600.0


def reap(services: Services) -> list[str]:
    """Re-enqueue every lost job; return their ids."""
    stale_before = time.time() - services.settings.stale_seconds
    candidates = services.store.stale(stale_before)
    if not candidates:
        return []
    waiting = services.queue.pending_ids()
    recovered = []
    for job in candidates:
        if job.status == "queued" and job.id in waiting:
            continue  # simply waiting its turn behind a long analysis
        if services.store.requeue(job.id, stale_before=stale_before):
            services.queue.enqueue(job.id, priority=RECOVERED_PRIORITY)
            recovered.append(job.id)
            log_event(
                "job.recovered",
                job=job.id,
                was=job.status,
                owner=job.owner,
                heartbeat_age=None
                if job.heartbeat_at is None
                else round(time.time() - job.heartbeat_at, 1),
            )
    return recovered


def _dead_here(owner: str | None) -> bool:
    """The owner ran on this machine and its process is gone (or is us: a previous life)."""
    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def reap_at_startup(services: Services) -> list[str]:
    """At consumer start-up: jobs of a consumer on this machine that is no longer alive are
    recovered at once instead of after the stale timeout (a restart resumes them immediately);
    then the usual sweep."""
    now = time.time()
    recovered = []
    for job in services.store.stale(now):
        dead = job.status == "running" and _dead_here(job.owner)
        if dead and services.store.requeue(job.id, owner=job.owner):
            services.queue.enqueue(job.id, priority=RECOVERED_PRIORITY)
            recovered.append(job.id)
            log_event(
                "job.recovered",
                job=job.id,
                was="running",
                owner=job.owner,
                reason="owner process gone",
            )
    return recovered + reap(services)


def hand_back(services: Services, owned: list[tuple[str, str]]) -> None:
    """Hand jobs of a stopping consumer back to the queue at once (no stale wait)."""
    for owner, job_id in owned:
        if services.store.requeue(job_id, owner=owner):
            services.queue.enqueue(job_id, priority=RECOVERED_PRIORITY)
            log_event("job.released", job=job_id, owner=owner)


def purge_expired(services: Services) -> int:
    days = services.settings.retention_days
    if days <= 0:
        return 0
    count = 0
    for job in services.store.expired(time.time() - days * 86400):
        for key in (job.result_keys or {}).values():
            services.blobs.delete(key)
        if job.upload_key:
            services.blobs.delete(job.upload_key)
        if services.store.delete(job.id):
            count += 1
            log_event("job.purged", job=job.id)
    return count


class Reaper(threading.Thread):
    """Background sweeper inside the consumer process."""

    def __init__(self, services: Services) -> None:
        super().__init__(name="featherbeat-reaper", daemon=True)
        self.services = services
        self.stop_event = threading.Event()

    def run(self) -> None:
        interval = max(0.25, self.services.settings.stale_seconds / 2)
        next_purge = 0.0
        while not self.stop_event.wait(interval):
            try:
                reap(self.services)
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + PURGE_EVERY
                    purge_expired(self.services)
            except Exception as exc:  # a locked database for a moment must not end the sweeps
                log_event("reaper.error", error=f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self.stop_event.set()
