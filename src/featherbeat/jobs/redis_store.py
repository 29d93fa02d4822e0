"""Job records in Redis: the ``JobStore`` of the scale-out mode (``FEATHERBEAT_BROKER=redis://``).

Any number of web processes and workers on any machines share these records. Every change that
two processes could race on runs as one small Lua script inside Redis, so it is atomic the same
way the SQLite store's conditional ``UPDATE ... WHERE status=? AND owner=?`` is:

- ``claim``: queued -> running for one owner, or take over a running job whose heartbeat is
  stale. Of many workers claiming the same job (duplicate message, two reapers) one wins.
- ``update``/``finish``: only while the caller still owns the running job. A worker presumed dead
  and recovered elsewhere loses ownership, so it can never finish the job a second time.
- ``requeue``: back to queued, conditional on the owner or on staleness, so of two reapers that
  see the same stale job only one re-queues it.
- ``create_unless_duplicate``: the dedupe lookup (``sha:<sha256>``) and the create (of the job,
  or of a link to the job found) in one script, so of two web processes accepting the same
  bytes at once only one creates a job and every other upload gets its own link id.
- ``release``/``delete``: a link or a job id goes, and the job with it once nothing points at
  it, in one script (a link created at that moment either keeps the job or finds none).

Layout (``P`` is the key prefix, default ``featherbeat:``):

- ``P job:<id>`` hash, one field per ``Job`` field, each value JSON (so None, numbers, dicts
  and booleans come back typed, and Lua can compare ``'"running"'`` and ``tonumber`` times);
- ``P status:<status>`` sorted sets: queued by ``created_at`` (FIFO rank = queue position),
  running by heartbeat (the stale ones are a range query), done/failed by ``finished_at``;
- ``P sha:<sha256>`` sorted set of the job ids of those bytes (dedupe);
- ``P link:<id>`` hash (``source``, ``filename``, ``created_at``, JSON values) of an upload that
  joined another's job, and ``P links:<job id>`` the set of link ids pointing at a job;
- ``P events:<id>`` stream: one entry per change (``seq``), which ``wait_change()`` blocks on, so an
  SSE response in any web process wakes at once instead of polling;
- ``P client:<key>`` set of the job ids one client created (its share of the queue; ids of
  finished jobs are dropped when counted);
- ``P counters`` hash.

Keys are computed inside the scripts, which single-instance Redis (and Sentinel) allows and
Redis Cluster does not: featherbeat's scale-out needs one Redis, not a cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from featherbeat.jobs.store import (
    BAD_INPUT_CODES,
    FIELDS,
    FINISHED,
    STATUSES,
    Job,
    JobStore,
    Link,
)

STREAM_MAXLEN = 32  # SSE only needs "something changed since seq N"

# Shared by every script: ARGV[1] = prefix, ARGV[2] = job id.
_PRELUDE = """
local P, id = ARGV[1], ARGV[2]
local job = P .. 'job:' .. id
local function field(name) return redis.call('HGET', job, name) end
local function num(name) return tonumber(field(name) or 'x') end
local function apply(from)
  for i = from, #ARGV, 2 do redis.call('HSET', job, ARGV[i], ARGV[i + 1]) end
end
local function move(new, score)
  for _, s in ipairs({'queued', 'running', 'done', 'failed'}) do
    redis.call('ZREM', P .. 'status:' .. s, id)
  end
  redis.call('ZADD', P .. 'status:' .. new, score, id)
end
-- Redis' own clock for heartbeats and staleness: workers on many machines compare times, and
-- a machine whose clock is behind must not have its live jobs taken away as "stale".
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(t) return string.format('%.6f', t) end
local function bump()
  local seq = redis.call('HINCRBY', job, 'seq', 1)
  redis.call('XADD', P .. 'events:' .. id, 'MAXLEN', '~', STREAM_MAXLEN, '*', 'seq', seq)
  return seq
end
""".replace("STREAM_MAXLEN", str(STREAM_MAXLEN))

# ARGV: P, id, status, created_at, sha256, [field, json]...
_CREATE = """
if redis.call('EXISTS', job) == 1 then return 0 end
apply(6)
redis.call('HSET', job, 'seq', 0)
if ARGV[3] == 'queued' then redis.call('HSET', job, 'enqueued_at', fmt(clock())) end
move(ARGV[3], tonumber(ARGV[4]))
redis.call('ZADD', P .. 'sha:' .. ARGV[5], tonumber(ARGV[4]), id)
local client = redis.call('HGET', job, 'client')
if client and client ~= 'null' then redis.call('SADD', P .. 'client:' .. cjson.decode(client), id) end
bump()
return 1
"""

# The same ARGV as _CREATE, plus the link's filename and created_at (JSON) at ARGV[6], ARGV[7]
# ahead of the fields (so apply() starts at 8). A job of the same bytes that is not failed (a
# done one first, then the newest): ours becomes a link to it and its whole hash is returned;
# else _CREATE's 1 (or 0).
_CREATE_UNLESS_DUPLICATE = """
local pick = nil
for _, other in ipairs(redis.call('ZREVRANGE', P .. 'sha:' .. ARGV[5], 0, -1)) do
  local st = redis.call('HGET', P .. 'job:' .. other, 'status')
  if st == '"done"' then pick = other break end
  if st and st ~= '"failed"' and not pick then pick = other end
end
if pick == id then return redis.call('HGETALL', job) end  -- a retry of our own create
if pick then
  redis.call('HSET', P .. 'link:' .. id, 'source', cjson.encode(pick), 'filename', ARGV[6],
    'created_at', ARGV[7])
  redis.call('SADD', P .. 'links:' .. pick, id)
  return redis.call('HGETALL', P .. 'job:' .. pick)
end
""" + _CREATE.replace("apply(6)", "apply(8)")

# Deleting a job with everything that names it; returns its hash (empty if it was gone).
_DROP = """
local function drop(jid, with_links)
  local jk = P .. 'job:' .. jid
  local all = redis.call('HGETALL', jk)
  if #all == 0 then return all end
  local sha = redis.call('HGET', jk, 'sha256')
  if sha then redis.call('ZREM', P .. 'sha:' .. cjson.decode(sha), jid) end
  for _, s in ipairs({'queued', 'running', 'done', 'failed'}) do
    redis.call('ZREM', P .. 'status:' .. s, jid)
  end
  if with_links then
    for _, l in ipairs(redis.call('SMEMBERS', P .. 'links:' .. jid)) do
      redis.call('DEL', P .. 'link:' .. l)
    end
  end
  redis.call('DEL', jk, P .. 'events:' .. jid, P .. 'links:' .. jid)
  return all
end
"""

# ARGV: P, id. The hash of the job to purge now, or an empty list.
_RELEASE = (
    _DROP
    + """
local lk = P .. 'link:' .. id
local src = redis.call('HGET', lk, 'source')
if src then
  src = cjson.decode(src)
  redis.call('DEL', lk)
  redis.call('SREM', P .. 'links:' .. src, id)
  if redis.call('SCARD', P .. 'links:' .. src) > 0 then return {} end
  if redis.call('HGET', P .. 'job:' .. src, 'withdrawn') ~= 'true' then return {} end
  return drop(src, false)
end
if redis.call('EXISTS', job) == 0 then return {} end
if redis.call('SCARD', P .. 'links:' .. id) > 0 then
  redis.call('HSET', job, 'withdrawn', 'true')
  bump()
  return {}
end
return drop(id, false)
"""
)

# ARGV: P, id. 1 if the job existed.
_DELETE = (
    _DROP
    + """
return #drop(id, true) > 0 and 1 or 0
"""
)

# ARGV: P, id, owner(json), cutoff (Redis' clock: a heartbeat older than this is stale)
_CLAIM = """
local now = clock()
local st = field('status')
-- The same owner again: a retry after a lost reply (connection reset), it already won.
if st == '"running"' and field('owner') == ARGV[3] then return 1 end
if st == '"running"' then
  local hb = num('heartbeat_at')
  if hb and hb >= tonumber(ARGV[4]) then return 0 end
elseif st ~= '"queued"' then
  return 0
end
redis.call('HSET', job, 'status', '"running"', 'owner', ARGV[3], 'heartbeat_at', fmt(now))
if field('started_at') == 'null' then redis.call('HSET', job, 'started_at', fmt(now)) end
redis.call('HINCRBY', job, 'claims', 1)
move('running', now)
bump()
return 1
"""

# ARGV: P, id, owner(json), heartbeat ('1': stamp heartbeat_at with Redis' clock), [field, json]...
_UPDATE = """
if field('status') ~= '"running"' or field('owner') ~= ARGV[3] then return 0 end
apply(5)
if ARGV[4] == '1' then
  local now = clock()
  redis.call('HSET', job, 'heartbeat_at', fmt(now))
  redis.call('ZADD', P .. 'status:running', now, id)
end
bump()
return 1
"""

# ARGV: P, id, owner(json), status, finished_at or '' (Redis' clock), [field, json]...
# The owner stays recorded after the finish, so a retry of the same finish (reply lost to a
# connection reset) is recognised and answered 1 without changing anything.
_FINISH = """
if field('owner') ~= ARGV[3] then return 0 end
if field('status') == cjson.encode(ARGV[4]) then return 1 end
if field('status') ~= '"running"' then return 0 end
apply(6)
local finished = tonumber(ARGV[5]) or clock()
redis.call('HSET', job, 'status', cjson.encode(ARGV[4]), 'finished_at', fmt(finished))
move(ARGV[4], finished)
bump()
return 1
"""

# ARGV: P, id, owner(json) or '', cutoff (Redis' clock) or '', huey queue key or ''
_REQUEUE = """
local now = clock()
local st = field('status')
local ok = false
if ARGV[3] ~= '' then
  ok = st == '"running"' and field('owner') == ARGV[3]
else
  local before = tonumber(ARGV[4])
  if st == '"running"' then
    local hb = num('heartbeat_at')
    ok = (not hb) or hb < before
  elseif st == '"queued"' then
    local enq = num('enqueued_at')
    ok = (not enq) or enq < before
    -- Waiting its turn behind a long queue is not lost: look for its message, atomically
    -- with the re-queue (the job id appears verbatim in huey's pickled message).
    if ok and ARGV[5] ~= '' then
      for _, msg in ipairs(redis.call('ZRANGE', ARGV[5], 0, -1)) do
        if string.find(msg, id, 1, true) then return 0 end
      end
    end
  end
end
if not ok then return 0 end
redis.call('HSET', job, 'status', '"queued"', 'stage', '"queued"', 'owner', 'null',
  'enqueued_at', fmt(now))
move('queued', num('created_at') or 0)
bump()
return 1
"""


def _encode(values: dict[str, Any]) -> list[Any]:
    flat: list[Any] = []
    for key, value in values.items():
        if key not in FIELDS:
            raise KeyError(f"unknown job field {key!r}")
        flat += [key, json.dumps(value)]
    return flat


def _decode(raw: dict[bytes, bytes]) -> Job:
    values = {}
    for key, value in raw.items():
        name = key.decode()
        if name in FIELDS:
            values[name] = json.loads(value)
    return Job(**values)


class RedisJobStore(JobStore):
    """``JobStore`` on one Redis server (see the module docstring for the layout).

    ``queue_key``: the sorted set of huey's ``PriorityRedisStorage``. With it, ``requeue`` of a
    long-queued job by staleness checks in the same script that its message is really gone,
    so a reaper racing a long queue never sends a job a second message.
    """

    def __init__(self, client: Any, prefix: str = "featherbeat:", queue_key: str = "") -> None:
        self.r = client
        self.prefix = prefix
        self.queue_key = queue_key
        scripts = {
            "create": _CREATE,
            "create_unless_duplicate": _CREATE_UNLESS_DUPLICATE,
            "release": _RELEASE,
            "delete": _DELETE,
            "claim": _CLAIM,
            "update": _UPDATE,
            "finish": _FINISH,
            "requeue": _REQUEUE,
        }
        self._scripts = {n: client.register_script(_PRELUDE + s) for n, s in scripts.items()}

    def _run(self, name: str, job_id: str, *args: Any) -> int:
        return int(self._call(name, job_id, *args))

    def _call(self, name: str, job_id: str, *args: Any) -> Any:
        return self._scripts[name](keys=[], args=[self.prefix, job_id, *args])

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _jobs(self, ids: Iterable[bytes | str]) -> list[Job]:
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self._key("job", job_id.decode() if isinstance(job_id, bytes) else job_id))
        return [_decode(raw) for raw in pipe.execute() if raw]

    # -- records ----------------------------------------------------------------------------

    @staticmethod
    def _create_args(job: Job) -> list[Any]:
        values = job.to_dict()
        values.pop("seq")
        if values.get("enqueued_at") is None and job.status == "queued":
            values["enqueued_at"] = job.created_at or time.time()
        return [job.status, job.created_at, job.sha256, *_encode(values)]

    def create(self, job: Job) -> None:
        if not self._run("create", job.id, *self._create_args(job)):
            raise KeyError(f"job {job.id} already exists")
        job.seq = 1

    def create_unless_duplicate(self, job: Job) -> Job:
        status, created, sha, *fields = self._create_args(job)
        link = [json.dumps(job.filename), json.dumps(job.created_at)]
        got = self._call("create_unless_duplicate", job.id, status, created, sha, *link, *fields)
        if isinstance(got, list):  # HGETALL of the job of the same bytes
            return _decode(dict(zip(got[::2], got[1::2], strict=True)))
        if not got:
            raise KeyError(f"job {job.id} already exists")
        job.seq = 1
        return job

    def get(self, job_id: str) -> Job | None:
        raw = self.r.hgetall(self._key("job", job_id))
        return _decode(raw) if raw else None

    def get_link(self, link_id: str) -> Link | None:
        raw = self.r.hgetall(self._key("link", link_id))
        if not raw:
            return None
        values = {k.decode(): json.loads(v) for k, v in raw.items()}
        return Link(id=link_id, **values)

    def pending_for(self, client: str) -> int:
        key = self._key("client", client)
        ids = [i.decode() for i in self.r.smembers(key)]
        if not ids:
            return 0
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self._key("job", job_id), "status")
        statuses = pipe.execute()
        done = [
            i for i, st in zip(ids, statuses, strict=True) if st not in (b'"queued"', b'"running"')
        ]
        if done:
            self.r.srem(key, *done)
        return len(ids) - len(done)

    def recent_failure(self, sha256: str, since: float) -> Job | None:
        ids = self.r.zrevrange(self._key("sha", sha256), 0, 20)
        failed = [
            j
            for j in self._jobs(ids)
            if j.status == "failed"
            and j.error_code in BAD_INPUT_CODES
            and (j.finished_at or 0) >= since
        ]
        return max(failed, key=lambda j: j.finished_at or 0) if failed else None

    def release(self, job_id: str) -> Job | None:
        got = self._call("release", job_id)
        return _decode(dict(zip(got[::2], got[1::2], strict=True))) if got else None

    def delete(self, job_id: str) -> bool:
        return bool(self._run("delete", job_id))

    def find_by_sha256(self, sha256: str) -> Job | None:
        ids = self.r.zrevrange(self._key("sha", sha256), 0, 20)
        jobs = [j for j in self._jobs(ids) if j.status != "failed"]
        if not jobs:
            return None
        # Same order as the SQLite store: a done job first, then the newest.
        return max(jobs, key=lambda j: (j.status == "done", j.created_at))

    # -- ownership --------------------------------------------------------------------------

    # Heartbeats are stamped with Redis' clock; a caller's ``stale_before`` (its own clock) is
    # moved onto Redis' clock by ``_cutoff`` before the script is sent, so the cutoff is fixed
    # when the caller asks. (Sending an age instead let the cutoff slide later by however long
    # the request took to run: a reaper delayed by load or a Redis pause re-queued a job that
    # another reaper had just renewed, or took a live job whose heartbeat was fresh when asked.)

    def _cutoff(self, stale_before: float) -> float:
        """``stale_before`` on Redis' clock: Redis' TIME minus how long before *now* (read
        after the reply, so a slow reply only moves the cutoff earlier, never later) it was."""
        redis_now = self.redis_now()
        return redis_now - max(0.0, time.time() - stale_before)

    def claim(self, job_id: str, owner: str, stale_before: float) -> Job | None:
        cutoff = self._cutoff(stale_before)
        if not self._run("claim", job_id, json.dumps(owner), repr(cutoff)):
            return None
        return self.get(job_id)

    def update(self, job_id: str, owner: str, **values: Any) -> bool:
        beat = "1" if values.pop("heartbeat_at", None) is not None else "0"
        return bool(self._run("update", job_id, json.dumps(owner), beat, *_encode(values)))

    def finish(self, job_id: str, owner: str, status: str, **values: Any) -> bool:
        if status not in FINISHED:
            raise ValueError(f"finish() needs done or failed, got {status!r}")
        finished_at = values.pop("finished_at", None) or ""
        values.pop("status", None)
        args = [json.dumps(owner), status, finished_at, *_encode(values)]
        return bool(self._run("finish", job_id, *args))

    def requeue(
        self, job_id: str, owner: str | None = None, stale_before: float | None = None
    ) -> bool:
        if owner is None and stale_before is None:
            raise ValueError("requeue() needs an owner or a stale_before time")
        own = json.dumps(owner) if owner is not None else ""
        cutoff = ""
        if owner is None and stale_before is not None:
            cutoff = repr(self._cutoff(stale_before))
        return bool(self._run("requeue", job_id, own, cutoff, self.queue_key))

    def redis_now(self) -> float:
        seconds, micros = self.r.time()
        return seconds + micros / 1e6

    def stale(self, stale_before: float) -> list[Job]:
        stale_before = self._cutoff(stale_before)  # Redis' clock
        running = self.r.zrangebyscore(self._key("status", "running"), "-inf", f"({stale_before}")
        jobs = self._jobs(running)
        # Every worker's reaper runs this often: read one field of each queued job, and whole
        # records only of the few that waited too long.
        waiting = self.r.zrange(self._key("status", "queued"), 0, -1)
        pipe = self.r.pipeline(transaction=False)
        for job_id in waiting:
            pipe.hget(self._key("job", job_id.decode()), "enqueued_at")
        old = [
            job_id
            for job_id, enq in zip(waiting, pipe.execute(), strict=True)
            if enq is not None and (json.loads(enq) is None or json.loads(enq) < stale_before)
        ]
        return sorted(jobs + self._jobs(old), key=lambda j: j.created_at)

    # -- listings ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        pipe = self.r.pipeline(transaction=False)
        for status in STATUSES:
            pipe.zcard(self._key("status", status))
        return dict(zip(STATUSES, map(int, pipe.execute()), strict=True))

    def queue_position(self, job: Job) -> int | None:
        if job.status != "queued":
            return None
        rank = self.r.zrank(self._key("status", "queued"), job.id)
        return None if rank is None else int(rank) + 1

    def recent_finished(self, limit: int) -> list[Job]:
        pairs: list[tuple[float, bytes]] = []
        for status in FINISHED:
            got = self.r.zrevrange(self._key("status", status), 0, limit - 1, withscores=True)
            pairs += [(score, job_id) for job_id, score in got]
        pairs.sort(reverse=True)
        return self._jobs(job_id for _, job_id in pairs[:limit])

    def expired(self, before: float) -> list[Job]:
        ids: list[bytes] = []
        for status in FINISHED:
            ids += self.r.zrangebyscore(self._key("status", status), "-inf", f"({before}")
        return self._jobs(ids)

    def incr(self, name: str, amount: int = 1) -> None:
        self.r.hincrby(self._key("counters"), name, amount)

    def counters(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.r.hgetall(self._key("counters")).items()}

    # -- change notification (SSE) ----------------------------------------------------------

    def wait_change(self, job_id: str, seq: int, timeout: float, poll: float = 0.25) -> int:
        """Block until the job's ``seq`` differs from ``seq`` or ``timeout`` passes; the current
        seq (0 once the job is gone). ``poll`` is unused: this blocks on the job's stream.

        XREAD BLOCK reads the stream from its first entry, so a change made between the
        caller's last read and this call wakes it at once instead of being missed.
        """
        deadline = time.monotonic() + timeout
        last = "0-0"
        while True:
            raw = self.r.hget(self._key("job", job_id), "seq")
            current = int(raw) if raw else 0
            left = deadline - time.monotonic()
            if current != seq or left <= 0:
                return current
            got = self.r.xread({self._key("events", job_id): last}, block=max(1, int(left * 1000)))
            for _stream, entries in got or ():
                last = entries[-1][0]

    def close(self) -> None:
        self.r.close()
