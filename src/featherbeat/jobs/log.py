"""Structured job logs: one JSON object per line on stdout (what Render and docker collect).

{"ts": "2026-11-26T23:40:01.123Z", "event": "job.finished", "job": "…", "seconds": 3.2, …}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

_lock = threading.Lock()


def iso(ts: float | None) -> str | None:
    """Unix seconds -> ISO 8601 UTC with milliseconds (None stays None)."""
    if ts is None:
        return None
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    return f"{whole}.{int(ts * 1000) % 1000:03d}Z"


def log_event(event: str, **fields: Any) -> None:
    line = json.dumps({"ts": iso(time.time()), "event": event, **fields}, default=str)
    with _lock:  # whole lines only, even from many threads
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
