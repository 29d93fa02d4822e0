"""The stages a track goes through, by name: the one list the API, the page and the logs use.

``analyze()`` reports DECODING, RHYTHM, STRUCTURE, then DONE to its progress callback; the
service adds QUEUED (waiting for a worker) before and WRITING (results being stored) after.
The names are the JSON values of a job's ``stage`` (web/openapi.json lists them, and the
page's words for them are keyed by them; tests/inprocess/test_layers.py holds both to this list).
Stdlib only: every layer imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class Stage(StrEnum):
    QUEUED = "queued"
    DECODING = "decoding"
    RHYTHM = "rhythm"
    STRUCTURE = "structure"
    WRITING = "writing"
    DONE = "done"


Progress = Callable[[float, str], None]
"""``progress(fraction, stage)``: ``fraction`` 0..1 over the whole analysis, ``stage`` a Stage."""
