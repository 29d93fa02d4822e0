"""Job records in one SQLite file: the ``JobStore`` of the embedded default.

Every state change that two processes could race on is one conditional ``UPDATE ... WHERE
status=? AND owner=?`` inside a ``BEGIN IMMEDIATE`` transaction that reports whether it won;
the contract is in ``featherbeat.jobs.store``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from featherbeat.jobs.store import BAD_INPUT_CODES, FIELDS, FINISHED, STATUSES, Job, JobStore, Link

_JSON_COLUMNS = {"result_keys"}
_BOOL_COLUMNS = {"reduced", "withdrawn"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT,
    progress REAL NOT NULL DEFAULT 0,
    duration REAL,
    created_at REAL NOT NULL,
    enqueued_at REAL,
    started_at REAL,
    finished_at REAL,
    heartbeat_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claims INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    reduced INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    upload_key TEXT,
    media_type TEXT,
    result_keys TEXT,
    analysis_seconds REAL,
    peak_rss_mb REAL,
    withdrawn INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0,
    warning TEXT,
    client TEXT
);
CREATE INDEX IF NOT EXISTS jobs_sha256 ON jobs (sha256, status);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS links (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    filename TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS links_source ON links (source);
"""

# Columns added after the first release: an existing jobs.db gets them on open.
_ADDED_COLUMNS = {
    "withdrawn": "INTEGER NOT NULL DEFAULT 0",
    "warning": "TEXT",
    "client": "TEXT",
}

# The job dedupe joins: not failed, a done one first, then the newest.
_FIND_BY_SHA256 = (
    "SELECT * FROM jobs WHERE sha256 = ? AND status != 'failed' "
    "ORDER BY (status = 'done') DESC, created_at DESC LIMIT 1"
)


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    row = {}
    for key, value in values.items():
        if key not in FIELDS:
            raise KeyError(f"unknown job field {key!r}")
        if key in _JSON_COLUMNS and value is not None:
            value = json.dumps(value)
        elif key in _BOOL_COLUMNS:
            value = int(bool(value))
        row[key] = value
    return row


def _from_row(row: sqlite3.Row) -> Job:
    values = dict(row)
    for key in _JSON_COLUMNS:
        if values.get(key) is not None:
            values[key] = json.loads(values[key])
    for key in _BOOL_COLUMNS:
        values[key] = bool(values[key])
    return Job(**values)


class SqliteJobStore(JobStore):
    """Job records in one SQLite file (WAL, so readers never wait for the writer).

    One connection per thread: gunicorn's gthread worker and huey's worker threads share
    the store object.
    """

    def __init__(self, path: str | Path, timeout: float = 10.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._local = threading.local()
        conn = self._conn()
        conn.executescript(_SCHEMA)  # idempotent; executescript manages its own commit
        have = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        for name, decl in _ADDED_COLUMNS.items():
            if name not in have:
                with contextlib.suppress(sqlite3.OperationalError):  # another process won
                    conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
        conn.execute("CREATE INDEX IF NOT EXISTS jobs_client ON jobs (client, status)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash (only power loss may drop the
            # last commits), which is the failure this store must survive.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @staticmethod
    def _insert(db: sqlite3.Connection, job: Job) -> None:
        row = _to_row(job.to_dict())
        row["seq"] = 1
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        try:
            db.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks})", row)
        except sqlite3.IntegrityError:  # the primary key: ids are never reused
            raise KeyError(f"job {job.id} already exists") from None

    def create(self, job: Job) -> None:
        with self._tx() as db:
            self._insert(db, job)
        job.seq = 1

    def create_unless_duplicate(self, job: Job) -> Job:
        # BEGIN IMMEDIATE takes the write lock before the lookup: a second writer (thread or
        # process) waits for our COMMIT, then sees our row.
        with self._tx() as db:
            row = db.execute(_FIND_BY_SHA256, (job.sha256,)).fetchone()
            if row is not None and row["id"] == job.id:  # a retry of our own create
                return _from_row(row)
            if row is not None:
                db.execute(
                    "INSERT INTO links (id, source, filename, created_at) VALUES (?, ?, ?, ?)",
                    (job.id, row["id"], job.filename, job.created_at),
                )
                return _from_row(row)
            self._insert(db, job)
        job.seq = 1
        return job

    def get(self, job_id: str) -> Job | None:
        row = self._conn().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _from_row(row) if row else None

    def get_link(self, link_id: str) -> Link | None:
        row = self._conn().execute("SELECT * FROM links WHERE id = ?", (link_id,)).fetchone()
        return Link(**dict(row)) if row else None

    def release(self, job_id: str) -> Job | None:
        with self._tx() as db:
            link = db.execute("SELECT source FROM links WHERE id = ?", (job_id,)).fetchone()
            if link is not None:
                db.execute("DELETE FROM links WHERE id = ?", (job_id,))
                source = db.execute(
                    "SELECT * FROM jobs WHERE id = ? AND withdrawn = 1", (link["source"],)
                ).fetchone()
                if source is None or self._linked(db, source["id"]):
                    return None
                db.execute("DELETE FROM jobs WHERE id = ?", (source["id"],))
                return _from_row(source)
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if self._linked(db, job_id):
                self._set(db, job_id, "1 = 1", {}, {"withdrawn": True})
                return None
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return _from_row(row)

    def pending_for(self, client: str) -> int:
        (n,) = (
            self._conn()
            .execute(
                "SELECT COUNT(*) FROM jobs WHERE client = ? AND status IN ('queued', 'running')",
                (client,),
            )
            .fetchone()
        )
        return int(n)

    def recent_failure(self, sha256: str, since: float) -> Job | None:
        marks = ", ".join("?" for _ in BAD_INPUT_CODES)
        row = (
            self._conn()
            .execute(
                f"SELECT * FROM jobs WHERE sha256 = ? AND status = 'failed' AND finished_at >= ? "
                f"AND error_code IN ({marks}) ORDER BY finished_at DESC LIMIT 1",
                (sha256, since, *BAD_INPUT_CODES),
            )
            .fetchone()
        )
        return _from_row(row) if row else None

    @staticmethod
    def _linked(db: sqlite3.Connection, job_id: str) -> bool:
        return (
            db.execute("SELECT 1 FROM links WHERE source = ? LIMIT 1", (job_id,)).fetchone()
            is not None
        )

    def delete(self, job_id: str) -> bool:
        with self._tx() as db:
            db.execute("DELETE FROM links WHERE source = ?", (job_id,))
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1

    def find_by_sha256(self, sha256: str) -> Job | None:
        row = self._conn().execute(_FIND_BY_SHA256, (sha256,)).fetchone()
        return _from_row(row) if row else None

    def _set(
        self, db: sqlite3.Connection, job_id: str, where: str, params: dict, values: dict
    ) -> bool:
        row = _to_row(values)
        assign = ", ".join(f"{c} = :v_{c}" for c in row)
        args = {f"v_{c}": v for c, v in row.items()} | params | {"id": job_id}
        sql = f"UPDATE jobs SET {assign}{', ' if assign else ''}seq = seq + 1 WHERE id = :id AND {where}"
        return db.execute(sql, args).rowcount == 1

    def claim(self, job_id: str, owner: str, stale_before: float) -> Job | None:
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is not None and row["status"] == "running" and row["owner"] == owner:
                return _from_row(row)  # a repeat of a claim that won: unchanged (TRANSITIONS)
            won = db.execute(
                "UPDATE jobs SET status = 'running', owner = :owner, heartbeat_at = :now, "
                "started_at = COALESCE(started_at, :now), claims = claims + 1, seq = seq + 1 "
                "WHERE id = :id AND (status = 'queued' OR "
                "(status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < :stale)))",
                {"owner": owner, "now": now, "stale": stale_before, "id": job_id},
            ).rowcount
            if not won:
                return None
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _from_row(row)

    def update(self, job_id: str, owner: str, **values: Any) -> bool:
        with self._tx() as db:
            return self._set(
                db, job_id, "status = 'running' AND owner = :owner", {"owner": owner}, values
            )

    def finish(self, job_id: str, owner: str, status: str, **values: Any) -> bool:
        if status not in FINISHED:
            raise ValueError(f"finish() needs done or failed, got {status!r}")
        values = {"finished_at": time.time(), **values, "status": status}
        with self._tx() as db:
            if self._set(
                db, job_id, "status = 'running' AND owner = :owner", {"owner": owner}, values
            ):
                return True
            # A repeat of a finish that won (the owner stays recorded): True, unchanged.
            row = db.execute(
                "SELECT 1 FROM jobs WHERE id = ? AND status = ? AND owner = ?",
                (job_id, status, owner),
            ).fetchone()
            return row is not None

    def requeue(
        self, job_id: str, owner: str | None = None, stale_before: float | None = None
    ) -> bool:
        values = {"status": "queued", "stage": "queued", "owner": None, "enqueued_at": time.time()}
        if owner is not None:
            params: dict[str, Any]
            where, params = "status = 'running' AND owner = :owner", {"owner": owner}
        elif stale_before is not None:
            where = (
                "((status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < :stale)) OR "
                "(status = 'queued' AND (enqueued_at IS NULL OR enqueued_at < :stale)))"
            )
            params = {"stale": stale_before}
        else:
            raise ValueError("requeue() needs an owner or a stale_before time")
        with self._tx() as db:
            return self._set(db, job_id, where, params, values)

    def stale(self, stale_before: float) -> list[Job]:
        rows = (
            self._conn()
            .execute(
                "SELECT * FROM jobs WHERE "
                "(status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < :s)) OR "
                "(status = 'queued' AND (enqueued_at IS NULL OR enqueued_at < :s)) "
                "ORDER BY created_at",
                {"s": stale_before},
            )
            .fetchall()
        )
        return [_from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({status: n for status, n in rows})
        return counts

    def queue_position(self, job: Job) -> int | None:
        if job.status != "queued":
            return None
        (ahead,) = (
            self._conn()
            .execute(
                "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND "
                "(created_at < :c OR (created_at = :c AND id < :id))",
                {"c": job.created_at, "id": job.id},
            )
            .fetchone()
        )
        return int(ahead) + 1

    def recent_finished(self, limit: int) -> list[Job]:
        rows = (
            self._conn()
            .execute(
                "SELECT * FROM jobs WHERE status IN ('done', 'failed') "
                "ORDER BY finished_at DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [_from_row(r) for r in rows]

    def expired(self, before: float) -> list[Job]:
        rows = (
            self._conn()
            .execute(
                "SELECT * FROM jobs WHERE status IN ('done', 'failed') AND finished_at < ?",
                (before,),
            )
            .fetchall()
        )
        return [_from_row(r) for r in rows]

    def incr(self, name: str, amount: int = 1) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, amount),
            )

    def counters(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT name, value FROM counters").fetchall()
        return {name: int(value) for name, value in rows}
