"""Job records, leases and the progress stream in Redis: the coordination of the scale-out mode.

The huey queue (RedisHuey) only *delivers* job ids; whether a job runs, and who may finish it,
is decided here, atomically, by small Lua scripts run inside Redis:

- ``accept``: the record (a hash), its place in the queue order and the huey message are written
  in one script, so an accepted job always has a message and a message always has a record.
- ``start``: a worker claims a job with a fresh lease token; a second delivery of the same job
  (duplicate message, recovery racing a slow worker) finds it running with a live heartbeat, or
  finished, and is dropped. Exactly once when all goes well.
- ``beat``/``finish``: only the holder of the current lease may report progress or finish. A
  worker that was presumed dead (heartbeat stale) and recovered elsewhere learns it lost the lease
  on its next heartbeat and stops; it can never finish the job a second time.
- ``recover``: whichever worker sweeps first moves each stale running job (heartbeat older than
  the limit) back to queued with a new huey message, in one script, so two sweepers never both
  re-queue it. At least once when a worker dies (SIGKILL, OOM, machine lost).
- ``requeue_orphans``: a job whose message was popped by a worker that died before ``start``
  has no heartbeat and no message; the sweep finds queued jobs missing from the huey list and
  gives them a new message (a duplicate is harmless: ``start`` drops it).

Every state change bumps the record's ``version`` and appends it to a per-job Redis stream,
which the SSE endpoint blocks on (``XREAD BLOCK``) from any web process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

# KEYS: job, order(zset), queue(list), events(stream), sha(string or "")
# ARGV: id, seq-score, message, stream_maxlen, [field, value]...
_ACCEPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('HSET', KEYS[1], 'version', 1)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('LPUSH', KEYS[3], ARGV[3]) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'v', 1)
if KEYS[5] ~= '' then redis.call('SET', KEYS[5], ARGV[1]) end
return 1
"""

# KEYS: job, order(zset), running(zset), events
# ARGV: id, token, now, stale_seconds, maxlen, started_at_iso, max_attempts
# -> {1, attempts} claimed | {0, status} not for us | {-1, ''} unknown
#    | {2, attempts} claimed but out of attempts: the caller must finish it as failed
_START = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {-1, ''} end
if st == 'done' or st == 'failed' then return {0, st} end
local now = tonumber(ARGV[3])
if st == 'running' then
  local hb = tonumber(redis.call('HGET', KEYS[1], 'heartbeat') or '0')
  if now - hb < tonumber(ARGV[4]) then return {0, st} end
end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
local code = 1
if attempts >= tonumber(ARGV[7]) then code = 2 else
  attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
end
local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'lease', ARGV[2], 'heartbeat', ARGV[3],
  'started_at', ARGV[6], 'stage', 'decoding', 'progress', 0)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'v', v)
return {code, attempts}
"""

# KEYS: job, running, events ; ARGV: id, token, now, maxlen, [field, value]...
_BEAT = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'heartbeat', ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
if #ARGV > 4 then
  local fields = {}
  for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
  local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'v', v)
end
return 1
"""

# KEYS: job, running, events ; ARGV: id, token, maxlen, status, [field, value]...
_FINISH = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
local fields = {'status', ARGV[4]}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('HDEL', KEYS[1], 'lease')
redis.call('ZREM', KEYS[2], ARGV[1])
local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'v', v)
return 1
"""

# Moves stale running jobs back to queued, each with its pre-built huey message (RPUSH: the
# consumer pops from the right, so a recovered job goes to the front, it was accepted earlier).
# KEYS: running, order, queue ; ARGV: now, stale_seconds, maxlen, prefix, [id, message]...
_RECOVER = """
local out = {}
local now = tonumber(ARGV[1])
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local job = ARGV[4] .. 'job:' .. id
  local hb = redis.call('ZSCORE', KEYS[1], id)
  if hb and now - tonumber(hb) >= tonumber(ARGV[2])
     and redis.call('HGET', job, 'status') == 'running' then
    local v = redis.call('HINCRBY', job, 'version', 1)
    redis.call('HSET', job, 'status', 'queued', 'stage', 'queued', 'progress', 0)
    redis.call('HDEL', job, 'lease')
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], redis.call('HGET', job, 'seq') or 0, id)
    redis.call('RPUSH', KEYS[3], ARGV[i + 1])
    redis.call('XADD', ARGV[4] .. 'events:' .. id, 'MAXLEN', '~', ARGV[3], '*', 'v', v)
    out[#out + 1] = id
  elseif not hb and redis.call('HGET', job, 'status') == 'running' then
    -- lost from the running set (cannot happen with AOF, cheap to heal)
    redis.call('ZADD', KEYS[1], 0, id)
  end
end
return out
"""

# Queued jobs whose message vanished (popped by a worker that died before start).
# KEYS: order, queue ; ARGV: prefix, [id, message]...
_REQUEUE = """
local out = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', ARGV[1] .. 'job:' .. id, 'status') == 'queued'
     and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    out[#out + 1] = id
  end
end
return out
"""


def _flat(fields: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = []
    for key, value in fields.items():
        out.append(key)
        out.append("" if value is None else value)
    return out


class RedisJobState:
    """The Redis side of job records; ``queue_key`` is the huey list the messages go to."""

    def __init__(
        self,
        client: Any,
        queue_key: str,
        prefix: str = "featherbeat:",
        stale_seconds: float = 30.0,
        stream_maxlen: int = 64,
    ) -> None:
        self.r = client
        self.prefix = prefix
        self.queue_key = queue_key
        self.stale_seconds = float(stale_seconds)
        self.maxlen = int(stream_maxlen)
        self.order_key = prefix + "queued"  # zset id -> acceptance sequence (FIFO rank)
        self.running_key = prefix + "running"  # zset id -> last heartbeat (epoch seconds)
        self.seq_key = prefix + "seq"
        self._accept = client.register_script(_ACCEPT)
        self._start = client.register_script(_START)
        self._beat = client.register_script(_BEAT)
        self._finish = client.register_script(_FINISH)
        self._recover = client.register_script(_RECOVER)
        self._requeue = client.register_script(_REQUEUE)

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def events_key(self, job_id: str) -> str:
        return f"{self.prefix}events:{job_id}"

    def sha_key(self, sha256: str) -> str:
        return f"{self.prefix}sha:{sha256}"

    # -- web side ---------------------------------------------------------------------------

    def accept(
        self, job_id: str, fields: Mapping[str, Any], message: bytes, sha256: str | None = None
    ) -> bool:
        """Record a new queued job and enqueue its message, atomically. False if the id exists."""
        seq = int(self.r.incr(self.seq_key))
        record = {**fields, "id": job_id, "status": "queued", "stage": "queued", "seq": seq}
        record.setdefault("attempts", 0)
        record.setdefault("accepted_at_epoch", time.time())
        record.setdefault("progress", 0)
        keys = [
            self.job_key(job_id),
            self.order_key,
            self.queue_key,
            self.events_key(job_id),
            self.sha_key(sha256) if sha256 else "",
        ]
        args = [job_id, seq, message, self.maxlen, *_flat(record)]
        return bool(self._accept(keys=keys, args=args))

    def get(self, job_id: str) -> dict[str, str] | None:
        raw = self.r.hgetall(self.job_key(job_id))
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}

    def queue_position(self, job_id: str) -> int | None:
        rank = self.r.zrank(self.order_key, job_id)
        return None if rank is None else int(rank)

    def queue_depth(self) -> int:
        return int(self.r.zcard(self.order_key))

    def running_count(self) -> int:
        return int(self.r.zcard(self.running_key))

    def by_sha(self, sha256: str) -> str | None:
        value = self.r.get(self.sha_key(sha256))
        return value.decode() if value else None

    def version(self, job_id: str) -> int:
        value = self.r.hget(self.job_key(job_id), "version")
        return int(value) if value else 0

    def wait_change(self, job_id: str, version: int, timeout: float) -> int:
        """Block until the record's version passes ``version`` or ``timeout``; the new version.

        Reads the per-job stream with XREAD BLOCK from its start, so a change that happened
        between the caller's read and this call is not missed.
        """
        current = self.version(job_id)
        if current > version:
            return current
        deadline = time.monotonic() + timeout
        last = "0-0"
        while (left := deadline - time.monotonic()) > 0:
            got = self.r.xread({self.events_key(job_id): last}, block=max(1, int(left * 1000)))
            if not got:
                break
            for _stream, entries in got:
                for entry_id, data in entries:
                    last = entry_id
                    if int(data.get(b"v", 0)) > version:
                        return self.version(job_id)
        return self.version(job_id)

    def delete(self, job_id: str) -> bool:
        job = self.get(job_id)
        if job is None:
            return False
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self.job_key(job_id), self.events_key(job_id))
        pipe.zrem(self.order_key, job_id)
        pipe.zrem(self.running_key, job_id)
        if job.get("sha256"):
            # Only drop the cache pointer when it still points at this job.
            pipe.eval(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
                1,
                self.sha_key(job["sha256"]),
                job_id,
            )
        pipe.execute()
        return True

    # -- worker side ------------------------------------------------------------------------

    def start(self, job_id: str, token: str, started_at: str, max_attempts: int) -> tuple[int, str]:
        """Claim ``job_id`` for the holder of ``token``.

        Returns (1, attempts) when claimed, (0, status) when someone else has it or it ended,
        (-1, "") when the job no longer exists, (2, attempts) when claimed but out of attempts
        (the caller then ends it with ``finish(..., "failed", ...)``).
        """
        keys = [self.job_key(job_id), self.order_key, self.running_key, self.events_key(job_id)]
        args = [
            job_id,
            token,
            time.time(),
            self.stale_seconds,
            self.maxlen,
            started_at,
            max_attempts,
        ]
        code, value = self._start(keys=keys, args=args)
        return int(code), value.decode() if isinstance(value, bytes) else str(value)

    def beat(self, job_id: str, token: str, fields: Mapping[str, Any] | None = None) -> bool:
        """Heartbeat (and optional progress fields); False means the lease is lost: stop."""
        keys = [self.job_key(job_id), self.running_key, self.events_key(job_id)]
        args = [job_id, token, time.time(), self.maxlen, *_flat(fields or {})]
        return bool(self._beat(keys=keys, args=args))

    def finish(self, job_id: str, token: str, status: str, fields: Mapping[str, Any]) -> bool:
        """End the job as ``status`` if ``token`` still holds it; False if someone else does."""
        keys = [self.job_key(job_id), self.running_key, self.events_key(job_id)]
        args = [job_id, token, self.maxlen, status, *_flat(fields)]
        return bool(self._finish(keys=keys, args=args))

    def stale_ids(self, limit: int = 100) -> list[str]:
        cutoff = time.time() - self.stale_seconds
        ids = self.r.zrangebyscore(self.running_key, "-inf", cutoff, start=0, num=limit)
        return [i.decode() for i in ids]

    def recover(self, messages: Mapping[str, bytes]) -> list[str]:
        """Re-queue those of ``messages``' jobs that are still stale; returns the ids moved."""
        if not messages:
            return []
        args: list[Any] = [time.time(), self.stale_seconds, self.maxlen, self.prefix]
        for job_id, message in messages.items():
            args += [job_id, message]
        keys = [self.running_key, self.order_key, self.queue_key]
        return [i.decode() for i in self._recover(keys=keys, args=args)]

    def queued_ids(self, older_than: float, limit: int = 1000) -> list[str]:
        """Queued jobs accepted before ``older_than`` seconds ago (candidates for orphans)."""
        ids = [i.decode() for i in self.r.zrange(self.order_key, 0, limit - 1)]
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self.job_key(job_id), "accepted_at_epoch")
        cutoff = time.time() - older_than
        return [i for i, t in zip(ids, pipe.execute(), strict=True) if t and float(t) < cutoff]

    def requeue(self, messages: Mapping[str, bytes]) -> list[str]:
        if not messages:
            return []
        args: list[Any] = [self.prefix]
        for job_id, message in messages.items():
            args += [job_id, message]
        return [i.decode() for i in self._requeue(keys=[self.order_key, self.queue_key], args=args)]

    def queued_messages(self) -> Iterable[bytes]:
        return self.r.lrange(self.queue_key, 0, -1)
