"""The three parts every process of the service shares: job records, blobs and the queue.

``Services.from_settings(settings)`` builds the embedded default (SQLite records in
``<data dir>/jobs.db``, blobs under ``<data dir>/blobs``, SqliteHuey in ``<data dir>/queue.db``).
With ``FEATHERBEAT_BROKER=redis://...`` it asks ``featherbeat.jobs.scaleout.build(settings)``
(the scale-out backend) for Redis-backed parts implementing the same interfaces.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from featherbeat.config import ConfigError, Settings
from featherbeat.jobs.blobs import BlobStore, LocalBlobStore
from featherbeat.jobs.queue import JobQueue
from featherbeat.jobs.store import JobStore, SqliteJobStore


def make_private(folder: Path) -> None:
    """The data dir holds every upload and result, and a job id is the key to its analysis:
    only the service's own user may list or read it (0700; files in it are created 0600 by
    the service processes, which run with ``PRIVATE_UMASK``)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):  # not ours (a mounted volume): leave it as it is
        os.chmod(folder, 0o700)


@dataclass
class Services:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    queue: JobQueue

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        make_private(settings.data_dir)
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
        return cls(
            settings=settings,
            store=SqliteJobStore(data / "jobs.db"),
            blobs=LocalBlobStore(data / "blobs"),
            queue=JobQueue(settings),
        )
