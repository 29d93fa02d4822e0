"""Who is uploading: a pseudonymous key per client address, and a per-client upload rate.

The key is a hash of the peer address (or of the last entry of
``FEATHERBEAT_CLIENT_ADDRESS_HEADER`` when a proxy we run sets one), so job records carry no
address in the clear. The rate is a token bucket per key in this web worker: a burst of
``BURST`` uploads (fewer if the per-minute rate is lower), refilled at ``FEATHERBEAT_CLIENT_UPLOADS_PER_MINUTE``. The queue share is
counted in the job store (``JobStore.pending_for``), so it holds across web processes.
"""

from __future__ import annotations

import hashlib
import threading
import time

from flask import Request

BURST = 10
MAX_TRACKED = 10_000  # buckets kept; the oldest go first (an address flood cannot grow memory)


def client_key(request: Request, header: str | None) -> str:
    address = request.remote_addr or ""
    if header:
        forwarded = request.headers.get(header, "")
        last = forwarded.split(",")[-1].strip()
        address = last or address
    return hashlib.sha256(f"featherbeat-client:{address}".encode()).hexdigest()[:16]


class UploadRate:
    """Token buckets, one per client key; ``take(key)`` -> seconds to wait (0: go ahead)."""

    def __init__(self, per_minute: float, burst: int = BURST) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(min(burst, max(1, int(per_minute))))
        self.lock = threading.Lock()
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self.buckets[key] = (tokens, now)  # re-inserted: the dict stays oldest-first
            while len(self.buckets) > MAX_TRACKED:
                del self.buckets[next(iter(self.buckets))]
        return wait
