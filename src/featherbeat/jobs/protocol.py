"""The protocol between an analysis child and its supervisor, defined once for both sides.

The child (``featherbeat.jobs.child``) writes one JSON object per line on a private pipe; the
supervisor (``featherbeat.jobs.supervise``) reads them. Three messages:

    {"event": "progress", "stage": "rhythm", "progress": 0.42}
    {"event": "done", "duration": 181.2, "analysis_seconds": 3.1, "peak_rss_mb": 61.0,
     "missing": {}, "reduced": false, "warning": null}
    {"event": "error", "code": "not_audio", "message": "..."}

and its exit code: ``EXIT_DONE``, ``EXIT_BAD_INPUT`` (no retry can help), anything else a crash.
Both sides build and read messages only through the dataclasses here, so a key renamed on one
side cannot go unnoticed on the other (mypy sees both).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

EXIT_DONE = 0
EXIT_BAD_INPUT = 3


class Event(StrEnum):
    PROGRESS = "progress"
    DONE = "done"
    ERROR = "error"


@dataclass(frozen=True)
class Progress:
    stage: str
    progress: float


@dataclass(frozen=True)
class Done:
    duration: float
    analysis_seconds: float
    peak_rss_mb: float
    missing: dict[str, str] = field(default_factory=dict)
    reduced: bool = False
    warning: str | None = None  # a usable but incomplete result, said in one sentence


@dataclass(frozen=True)
class Error:
    code: str
    message: str


Message = Progress | Done | Error
_EVENTS: dict[type[Message], Event] = {
    Progress: Event.PROGRESS,
    Done: Event.DONE,
    Error: Event.ERROR,
}


def encode(message: Message) -> str:
    """One protocol line (with its newline)."""
    return json.dumps({"event": str(_EVENTS[type(message)]), **asdict(message)}) + "\n"


def decode(line: bytes | str) -> Message | None:
    """The message of one line; None for anything that is not one (a stray print, a torn
    line of a killed child): the supervisor judges by the exit code, never by a missing line."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    try:
        return _parse(raw)
    except (KeyError, TypeError, ValueError):
        return None


def _parse(raw: dict[str, Any]) -> Message | None:
    event = raw.get("event")
    if event == Event.PROGRESS:
        return Progress(str(raw["stage"]), float(raw["progress"]))
    if event == Event.DONE:
        return Done(
            duration=float(raw["duration"]),
            analysis_seconds=float(raw["analysis_seconds"]),
            peak_rss_mb=float(raw["peak_rss_mb"]),
            missing={str(k): str(v) for k, v in (raw.get("missing") or {}).items()},
            reduced=bool(raw.get("reduced")),
            warning=str(raw["warning"]) if raw.get("warning") else None,
        )
    if event == Event.ERROR:
        return Error(str(raw["code"]), str(raw["message"]))
    return None
