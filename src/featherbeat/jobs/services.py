"""The three parts every process of the service shares: job records, blobs and the queue.

``Services.from_settings(settings)`` builds the embedded default (SQLite records in
``<data dir>/jobs.db``, blobs under ``<data dir>/blobs``, SqliteHuey in ``<data dir>/queue.db``).
With ``FEATHERBEAT_BROKER=redis://...`` it asks ``featherbeat.jobs.scaleout.build(settings)``
(the scale-out backend) for Redis-backed parts implementing the same interfaces.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from featherbeat.config import ConfigError, Settings
from featherbeat.jobs.blobs import BlobStore, LocalBlobStore
from featherbeat.jobs.queue import JobQueue
from featherbeat.jobs.store import JobStore, SqliteJobStore


@dataclass
class Services:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    queue: JobQueue

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        if settings.broker:
            try:
                scaleout = importlib.import_module("featherbeat.jobs.scaleout")
            except ModuleNotFoundError as exc:
                if exc.name != "featherbeat.jobs.scaleout":
                    raise
                raise ConfigError(
                    "FEATHERBEAT_BROKER is set but this version has no Redis backend "
                    "(featherbeat.jobs.scaleout); unset it to use the embedded SQLite default"
                ) from None
            return scaleout.build(settings)
        data = settings.data_dir
        data.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            store=SqliteJobStore(data / "jobs.db"),
            blobs=LocalBlobStore(data / "blobs"),
            queue=JobQueue(settings),
        )
