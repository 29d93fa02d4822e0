"""Job records: the one source of truth about every accepted upload.

The queue (huey) only carries job ids and is at-most-once; this record is what makes the
service at-least-once. Every state change that two processes could race on is a
*conditional* update (``UPDATE ... WHERE status=? AND owner=?``) that reports whether it won,
so a recovered job can never be finished twice.

The ``JobStore`` interface (implement it for another database, e.g. Redis hashes):

- ``create(job)``; ``get(id)``; ``delete(id)``
- ``find_by_sha256(sha256)``: the newest job of these bytes that is not failed (dedupe);
  a done one first
- ``create_unless_duplicate(job) -> Job``: atomically, the job ``find_by_sha256`` would return
  if there is one, else ``job`` just created; so of two uploads of the same bytes racing each
  other only one creates a job (a failed job never blocks a new one). When an existing job is
  returned, ``job`` was recorded in the same step as a *link* to it (``Link``: its own id,
  file name and time, pointing at the shared analysis), so every upload has its own id
- ``get_link(id) -> Link | None``: the link of an upload that joined another's analysis
- ``release(id) -> Job | None``: the caller's id goes (a link, or a job's own id); returns the
  job whose analysis must now be deleted with its blobs, once no id points at it any more.
  A job whose own id goes while links still point at it stays, ``withdrawn`` (not readable
  by its id), until its last link goes
- ``delete(id)``: the job and every link to it, at once (retention)
- ``pending_for(client) -> int``: queued and running jobs created by one client (the
  pseudonymous ``Job.client`` key of its address): its share of the queue
- ``recent_failure(sha256, since) -> Job | None``: the newest job of these bytes that failed as
  bad input (``not_audio``, ``too_long``) after ``since``: a re-upload is refused at once
- ``claim(id, owner, stale_before)``: queued -> running (or take over a running job whose
  heartbeat is older than ``stale_before``); returns the claimed Job or None
- ``update(id, owner, **fields)``: progress/stage/heartbeat/attempts of a job we own
- ``finish(id, owner, status, **fields)``: running -> done|failed, only if we still own it
- ``requeue(id, owner=None, stale_before=None)``: running -> queued (a dead or stopping
  worker's job) or refresh ``enqueued_at`` of a queued job; conditional like ``finish``
- ``stale(stale_before)``: running jobs with an old heartbeat and queued jobs enqueued
  before ``stale_before`` (candidates for the reaper)
- ``counts()``, ``queue_position(job)``, ``recent_finished(limit)``, ``expired(before)``
- ``incr(name)`` / ``counters()``: service-wide counters (e.g. uploads rejected by reason)
- ``wait_change(id, seq, timeout) -> int``: block until the job's ``seq`` passes ``seq`` (or
  the timeout), return the current one; the default polls ``get``, Redis can block on a stream

Times are Unix seconds (wall clock) because heartbeats are compared across processes.
``seq`` grows on every change of a job: it is the SSE event id.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Any

STATUSES = ("queued", "running", "done", "failed")
FINISHED = ("done", "failed")
# Failures no retry can change: the bytes themselves are the problem.
BAD_INPUT_CODES = ("not_audio", "too_long")


@dataclass
class Job:
    """One job record. ``result_keys`` maps format name -> blob key."""

    id: str
    filename: str
    size_bytes: int
    sha256: str
    status: str = "queued"
    stage: str | None = "queued"
    progress: float = 0.0
    duration: float | None = None
    created_at: float = 0.0
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    attempts: int = 0
    claims: int = 0
    owner: str | None = None
    reduced: bool = False
    error_code: str | None = None
    error_message: str | None = None
    upload_key: str | None = None
    media_type: str | None = None
    result_keys: dict[str, str] | None = None
    analysis_seconds: float | None = None
    peak_rss_mb: float | None = None
    withdrawn: bool = False  # its own id was deleted; kept for the links that share it
    seq: int = 0
    # A done job whose analysis is usable but incomplete (meta.detailed_status when its
    # status_code is 1: an input cut short, a stage that failed). Last, so older records and
    # SQLite files without the column still load.
    warning: str | None = None
    client: str | None = None  # pseudonymous key of the uploader's address (per-client quota)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Link:
    """An upload of bytes another upload's job is analysing (or has analysed): the uploader's
    own id, name and time; everything else is read from the job ``source``."""

    id: str
    source: str
    filename: str
    created_at: float


# The record's field names, in order: the columns of the SQLite table, the fields of the
# Redis hash; a field name outside this list is a KeyError in every backend.
FIELDS = tuple(f.name for f in fields(Job))


class JobStore(ABC):
    """Where job records live (SQLite here; Redis in the scale-out). See the module docstring."""

    @abstractmethod
    def create(self, job: Job) -> None: ...

    @abstractmethod
    def get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def delete(self, job_id: str) -> bool: ...

    @abstractmethod
    def find_by_sha256(self, sha256: str) -> Job | None: ...

    @abstractmethod
    def create_unless_duplicate(self, job: Job) -> Job: ...

    @abstractmethod
    def get_link(self, link_id: str) -> Link | None: ...

    @abstractmethod
    def pending_for(self, client: str) -> int: ...

    @abstractmethod
    def recent_failure(self, sha256: str, since: float) -> Job | None: ...

    @abstractmethod
    def release(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def claim(self, job_id: str, owner: str, stale_before: float) -> Job | None: ...

    @abstractmethod
    def update(self, job_id: str, owner: str, **values: Any) -> bool: ...

    @abstractmethod
    def finish(self, job_id: str, owner: str, status: str, **values: Any) -> bool: ...

    @abstractmethod
    def requeue(
        self, job_id: str, owner: str | None = None, stale_before: float | None = None
    ) -> bool: ...

    @abstractmethod
    def stale(self, stale_before: float) -> list[Job]: ...

    @abstractmethod
    def counts(self) -> dict[str, int]: ...

    @abstractmethod
    def queue_position(self, job: Job) -> int | None: ...

    @abstractmethod
    def recent_finished(self, limit: int) -> list[Job]: ...

    @abstractmethod
    def expired(self, before: float) -> list[Job]: ...

    @abstractmethod
    def incr(self, name: str, amount: int = 1) -> None: ...

    @abstractmethod
    def counters(self) -> dict[str, int]: ...

    def wait_change(self, job_id: str, seq: int, timeout: float, poll: float = 0.25) -> int:
        """Block until the record changes past ``seq`` or ``timeout`` passes; the current seq
        (0 once the job is gone). Polling is cheap on SQLite (an indexed read)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            current = job.seq if job else 0
            if current != seq or time.monotonic() >= deadline:
                return current
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections (optional)."""
