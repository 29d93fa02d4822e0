"""Job records: the one source of truth about every accepted upload. The ``JobStore`` contract.

The queue (huey) only carries job ids and is at-most-once; this record is what makes the
service at-least-once. Every state change that two processes could race on is *conditional*
(SQLite: ``UPDATE ... WHERE status=? AND owner=?`` in one transaction; Redis: one Lua script)
and reports whether it won, so a recovered job can never be finished twice.

Backends, one module each: ``sqlite_store.SqliteJobStore`` (the embedded default) and
``redis_store.RedisJobStore`` (the scale-out). Both pass the one contract test module,
tests/redis/test_store_contract.py, which runs every row of ``TRANSITIONS`` below against each.

Statuses: ``queued`` -> ``running`` -> ``done`` | ``failed``, and ``running`` -> ``queued``
when a worker dies or stops. A job is *owned* by the worker that claimed it (``owner``); the
owner stays recorded after ``finish``, so a repeated finish is recognised.

Ids: every upload has its own id. The first upload of some bytes creates the job; an upload of
the same bytes while that job is not failed is recorded by ``create_unless_duplicate`` as a
``Link`` (its own id, file name and time) to that job, which does the one analysis for all.
``release(id)`` removes one id (a link, or the job's own id: the job then stays ``withdrawn``
while links still point at it) and returns the job to purge with its blobs once no id names
it; ``delete(id)`` removes a job and all its links at once (retention).

Clients: ``Job.client`` is a pseudonymous key of the uploader's address (never the address);
``pending_for(client)`` counts its queued and running jobs (its share of the queue), and
``recent_failure(sha256, since)`` remembers bytes that failed as bad input, so a re-upload is
refused at once.

Transitions (``TRANSITIONS``; "owner" is the job's recorded owner, "other" anyone else,
"stale"/"fresh" a ``stale_before`` after/before the job's heartbeat, or for a queued job its
``enqueued_at``). An operation that does not apply answers False/None and changes nothing:

| operation | status before | caller | answer | status after |
|---|---|---|---|---|
| ``claim`` | queued | other | the job | running, owner = caller, claims + 1 |
| ``claim`` | running | owner | the job, unchanged | running (a repeat: claims not counted) |
| ``claim`` | running | other, fresh | None | running |
| ``claim`` | running | other, stale | the job | running, owner = caller, claims + 1 (take-over) |
| ``claim`` | done, failed | anyone | None | unchanged |
| ``update`` | running | owner | True | running (fields written) |
| ``update`` | running | other | False | running |
| ``update`` | queued, done, failed | anyone | False | unchanged |
| ``finish(done)`` | running | owner | True | done |
| ``finish(done)`` | running | other | False | running |
| ``finish(done)`` | done | owner | True, unchanged | done (a repeat) |
| ``finish(done)`` | failed | owner | False | failed (another end: no repeat) |
| ``finish(done)`` | queued | anyone | False | queued |
| ``requeue(owner=)`` | running | owner | True | queued, owner cleared |
| ``requeue(owner=)`` | running | other | False | running |
| ``requeue(stale_before=)`` | running | stale | True | queued, owner cleared |
| ``requeue(stale_before=)`` | running | fresh | False | running |
| ``requeue(stale_before=)`` | queued | stale | True | queued, ``enqueued_at`` renewed |
| ``requeue(stale_before=)`` | queued | fresh | False | queued |
| ``requeue`` | done, failed | anyone | False | unchanged |

The idempotency rule: a repeat of an operation that already won, by the same caller, answers
as the first call did and changes nothing (``claim`` and ``finish``); ``update`` is naturally
repeatable; ``requeue`` and ``create`` are not repeats of themselves (a second ``requeue``
finds the job queued and fresh; ``create`` of an existing id raises ``KeyError``). Why: the
Redis client retries a command whose reply was lost (a connection reset, Redis restarting), so
the second call must not turn a won claim or finish into a loss; the SQLite store follows the
same rule so that callers and tests see one contract. Owners are unique per run of a job
(``Runner.new_owner``), so only a retry can repeat a caller.

Clocks: times are Unix seconds. ``heartbeat_at`` and ``started_at`` (claim, update with a
heartbeat), ``finished_at`` (finish, unless given) and ``enqueued_at`` (requeue) are stamped by
the store: SQLite with this machine's clock, Redis with Redis' own (``TIME``), because workers
on many machines compare heartbeats. ``create`` keeps a given ``enqueued_at`` on SQLite and
stamps Redis' clock on Redis. The Redis store moves ``stale_before`` onto Redis' clock when the
call is made (never later: a request delayed by load or a Redis pause must not find a heartbeat
stale that was fresh when the caller asked).
``seq`` grows on every change of a job (it is the SSE event id) and is 1 after ``create``.
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

# The table of the module docstring: (operation, status before, caller) -> (wins, status after).
# Callers: "owner" (the recorded owner), "other", "stale"/"fresh" (requeue or claim by another
# owner with a stale_before after/before the heartbeat or enqueue time), "anyone".
TRANSITIONS: dict[tuple[str, str, str], tuple[bool, str]] = {
    ("claim", "queued", "other"): (True, "running"),
    ("claim", "running", "owner"): (True, "running"),
    ("claim", "running", "fresh"): (False, "running"),
    ("claim", "running", "stale"): (True, "running"),
    ("claim", "done", "anyone"): (False, "done"),
    ("claim", "failed", "anyone"): (False, "failed"),
    ("update", "running", "owner"): (True, "running"),
    ("update", "running", "other"): (False, "running"),
    ("update", "queued", "anyone"): (False, "queued"),
    ("update", "done", "anyone"): (False, "done"),
    ("update", "failed", "anyone"): (False, "failed"),
    ("finish", "running", "owner"): (True, "done"),
    ("finish", "running", "other"): (False, "running"),
    ("finish", "done", "owner"): (True, "done"),
    ("finish", "failed", "owner"): (False, "failed"),
    ("finish", "queued", "anyone"): (False, "queued"),
    ("requeue_owner", "running", "owner"): (True, "queued"),
    ("requeue_owner", "running", "other"): (False, "running"),
    ("requeue_stale", "running", "stale"): (True, "queued"),
    ("requeue_stale", "running", "fresh"): (False, "running"),
    ("requeue_stale", "queued", "stale"): (True, "queued"),
    ("requeue_stale", "queued", "fresh"): (False, "queued"),
    ("requeue_stale", "done", "anyone"): (False, "done"),
    ("requeue_stale", "failed", "anyone"): (False, "failed"),
    ("requeue_owner", "queued", "anyone"): (False, "queued"),
    ("requeue_owner", "done", "anyone"): (False, "done"),
}


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
    """Where job records live. The module docstring states the contract every backend meets."""

    @abstractmethod
    def create(self, job: Job) -> None:
        """Store a new record (``job.seq`` becomes 1); ``KeyError`` if the id exists."""

    @abstractmethod
    def get(self, job_id: str) -> Job | None:
        """The record, or None (also for a link's id: see ``get_link``)."""

    @abstractmethod
    def delete(self, job_id: str) -> bool:
        """Remove the record in any status and every link to it; False if there was none.
        A running job's owner learns it at its next ``update``."""

    @abstractmethod
    def find_by_sha256(self, sha256: str) -> Job | None:
        """The job of these bytes that is not failed (dedupe): a done one first, then the
        newest; None if there is none."""

    @abstractmethod
    def create_unless_duplicate(self, job: Job) -> Job:
        """Atomically: the job ``find_by_sha256(job.sha256)`` would return, with ``job``
        recorded as a ``Link`` to it; else ``job`` just created. Of two uploads of the same
        bytes racing each other only one creates a job (a failed job never blocks a new one).
        A repeat of a call that created ``job`` answers ``job``."""

    @abstractmethod
    def get_link(self, link_id: str) -> Link | None:
        """The link of an upload that joined another's analysis, or None."""

    @abstractmethod
    def pending_for(self, client: str) -> int:
        """Queued and running jobs created by one client (the pseudonymous ``Job.client``
        key of its address): its share of the queue."""

    @abstractmethod
    def recent_failure(self, sha256: str, since: float) -> Job | None:
        """The newest job of these bytes that failed as bad input (``BAD_INPUT_CODES``)
        after ``since``: a re-upload is refused at once."""

    @abstractmethod
    def release(self, job_id: str) -> Job | None:
        """Remove one id (a link, or a job's own id; see the module docstring); the job whose
        analysis must now be purged with its blobs, once no id names it, else None."""

    @abstractmethod
    def claim(self, job_id: str, owner: str, stale_before: float) -> Job | None:
        """queued -> running for ``owner``, or take over a running job whose heartbeat is
        older than ``stale_before``; the claimed Job, or None. See ``TRANSITIONS``."""

    @abstractmethod
    def update(self, job_id: str, owner: str, **values: Any) -> bool:
        """Write fields (progress, stage, attempts...) of a running job ``owner`` holds; a
        ``heartbeat_at`` value stamps the store's clock. ``KeyError`` for an unknown field."""

    @abstractmethod
    def finish(self, job_id: str, owner: str, status: str, **values: Any) -> bool:
        """running -> ``status`` (done or failed, else ``ValueError``) with ``values``, only
        while ``owner`` holds the job; a repeat by the owner answers True. See ``TRANSITIONS``."""

    @abstractmethod
    def requeue(
        self, job_id: str, owner: str | None = None, stale_before: float | None = None
    ) -> bool:
        """Back to queued: the running job ``owner`` holds (a stopping worker), or by
        staleness a running job with an old heartbeat or a queued one enqueued before
        ``stale_before`` (its ``enqueued_at`` renewed). ``ValueError`` without either."""

    @abstractmethod
    def stale(self, stale_before: float) -> list[Job]:
        """Running jobs with a heartbeat older than ``stale_before`` and queued jobs enqueued
        before it (the reaper's candidates), oldest created first."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Jobs per status, every status present."""

    @abstractmethod
    def queue_position(self, job: Job) -> int | None:
        """1 for the oldest queued job (FIFO by ``created_at``); None unless queued."""

    @abstractmethod
    def recent_finished(self, limit: int) -> list[Job]:
        """Up to ``limit`` done or failed jobs, the latest finished first."""

    @abstractmethod
    def expired(self, before: float) -> list[Job]:
        """Done or failed jobs finished before ``before`` (the retention sweep's)."""

    @abstractmethod
    def incr(self, name: str, amount: int = 1) -> None:
        """Add to a service-wide counter (e.g. uploads rejected by reason)."""

    @abstractmethod
    def counters(self) -> dict[str, int]:
        """Every counter ``incr`` has touched."""

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
