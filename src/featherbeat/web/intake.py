"""The upload intake as a use case: ``accept(services, upload)`` turns a received file into a
queued job (or a link to the job that analyses the same bytes), or raises a typed
``IntakeError``.

No Flask here: the HTTP view (``web/api.py``) receives the body (``web/uploads.py``), calls
``accept`` and maps each error class to its status code; bench/scale.py submits its tracks
through the very same function. The policy, in order: the file must be audio by its headers
(``NotAudioError``) and no longer than the server analyses (``TooLongError``); bytes that
already have an analysis that is not failed join it with their own id (no stored copy, no
queue slot); else bytes that failed as bad input lately are refused at once the same way,
the client must be within its share of the queue (``ClientQueueFullError``), the queue must
have room (``QueueFullError``), the blob store must take the file (``NoRoomError``) and the
record must be written (``StoreUnavailableError``; the stored file is then removed). The refusals a client caused are counted (``rejected:<code>``).

It lives in web/ because it sniffs with ``web/sniff.py``; it imports nothing of Flask, so a
bench or a CLI can call it (tests/inprocess/test_layers.py checks that).
"""

from __future__ import annotations

import errno
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from featherbeat.jobs.blobs import upload_key
from featherbeat.jobs.log import log_event
from featherbeat.jobs.services import Services
from featherbeat.jobs.store import Job, Link
from featherbeat.web import sniff

RETRY_AFTER_FULL = 30  # seconds a client should wait when the queue is full
FAILED_MEMORY_SECONDS = 24 * 3600  # bytes that failed as bad input are refused this long


@dataclass(frozen=True)
class Upload:
    """A received file on local disk; ``accept`` takes it over (moved or deleted)."""

    path: Path
    filename: str  # the display name, already cleaned
    size: int
    sha256: str
    client: str = ""  # the pseudonymous key of the uploader's address (web/clients.py)


@dataclass(frozen=True)
class Accepted:
    """The job that analyses the upload; ``link`` is set when the upload joined another
    upload's analysis (then ``id`` is the link's own id)."""

    job: Job
    link: Link | None = None

    @property
    def id(self) -> str:
        return self.link.id if self.link else self.job.id


class IntakeError(Exception):
    """An upload the service does not take; ``message`` is for the person who sent it."""

    code: ClassVar[str] = "rejected"
    counted: ClassVar[bool] = True  # a rejection the client caused: counted by reason
    retry_after: ClassVar[int | None] = None  # seconds, when trying again later can work

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAudioError(IntakeError):
    code = "not_audio"


class TooLongError(IntakeError):
    code = "too_long"


class ClientQueueFullError(IntakeError):
    """This client already has its share of the queue waiting or running."""

    code = "client_queue_full"
    retry_after = RETRY_AFTER_FULL


class QueueFullError(IntakeError):
    code = "queue_full"
    retry_after = RETRY_AFTER_FULL


class NoRoomError(IntakeError):
    """The blob store has no room: the server's problem (not counted: counting needs the
    store that may be full too)."""

    code = "storage_full"
    counted = False
    retry_after = 60


class StoreUnavailableError(IntakeError):
    """The job record could not be written (the store locked or down)."""

    code = "store_unavailable"
    counted = False
    retry_after = 5


def accept(svc: Services, upload: Upload) -> Accepted:
    """Queue ``upload`` for analysis (or join the analysis of the same bytes); see the module
    docstring. Raises an ``IntakeError``; ``upload.path`` is the caller's to delete if it is
    still there afterwards."""
    try:
        return _accept(svc, upload)
    except IntakeError as exc:
        if exc.counted:
            svc.store.incr(f"rejected:{exc.code}")
        raise


def _accept(svc: Services, upload: Upload) -> Accepted:
    s = svc.settings
    try:
        sniffed = sniff.sniff(upload.path)
    except sniff.NotAudioError as exc:
        raise NotAudioError(f"{upload.filename}: {exc}.") from None
    if sniffed.duration is not None and sniffed.duration > s.max_duration:
        raise TooLongError(
            f"{upload.filename} lasts {sniffed.duration / 60:.1f} minutes; this server "
            f"analyses up to {s.max_duration / 60:g} minutes. Cut the file and upload it again."
        )
    now = time.time()
    job = Job(
        id=secrets.token_urlsafe(16),
        filename=upload.filename,
        size_bytes=upload.size,
        sha256=upload.sha256,
        duration=sniffed.duration,
        created_at=now,
        enqueued_at=now,
        media_type=sniffed.media_type,
        client=upload.client,
    )
    key = job.upload_key = upload_key(job.id)
    # A cheap first look: bytes that already have an analysis need no stored copy.
    stored = svc.store.find_by_sha256(upload.sha256) is None
    if stored:  # a new analysis: what it would cost is checked first
        _check_failed_before(svc, upload)
        _check_queue(svc, upload.client)
        _store_upload(svc, key, upload.path)
    # The same bytes may be arriving in another request (thread or web process) right now:
    # the lookup and the insert are one step in the store, so only one of them creates a job;
    # every other upload is recorded as a link to it, with its own id.
    try:
        shared = svc.store.create_unless_duplicate(job)
    except Exception as exc:
        if stored:  # no record will ever name this blob: it must not stay behind
            svc.blobs.delete(key)
        log_event("upload.record_failed", filename=job.filename, error=repr(exc)[:300])
        raise StoreUnavailableError(
            "The server could not record this upload right now; try again in a few seconds."
        ) from None
    if shared.id != job.id:
        if stored:
            svc.blobs.delete(key)  # ours is not needed: the analysis has its copy
        link = Link(job.id, shared.id, job.filename, job.created_at)
        svc.store.incr("uploads:cached" if shared.status == "done" else "uploads:joined")
        log_event("job.linked", job=shared.id, link=link.id, status=shared.status)
        return Accepted(shared, link)
    if not stored:
        # The analysis we meant to join went away meanwhile: this upload is a new one.
        try:
            _store_upload(svc, key, upload.path)
        except BaseException:
            svc.store.release(job.id)
            raise
    # If this process dies right here the record is queued without a message: the reaper
    # finds it (queued, old, not in the queue) and enqueues it.
    svc.queue.enqueue(job.id)
    svc.store.incr("uploads:accepted")
    log_event(
        "job.accepted",
        job=job.id,
        filename=job.filename,
        size_bytes=job.size_bytes,
        format=sniffed.format,
        duration=sniffed.duration,
    )
    return Accepted(job)


def _check_failed_before(svc: Services, upload: Upload) -> None:
    """Bytes whose analysis failed as bad input lately fail the same way again: refuse them
    at once instead of analysing them again (the memory is the failed job record)."""
    failed = svc.store.recent_failure(upload.sha256, time.time() - FAILED_MEMORY_SECONDS)
    if failed is None:
        return
    if failed.error_code == "too_long":
        raise TooLongError(
            f"{upload.filename} is longer than this server analyses "
            f"({svc.settings.max_duration / 60:g} minutes); cut the file and upload it again."
        )
    raise NotAudioError(
        f"{upload.filename}: these bytes were analysed lately and are not audio this server "
        "can read; check the file."
    )


def _check_queue(svc: Services, client: str) -> None:
    share = svc.settings.client_queue_share
    if svc.store.pending_for(client) >= share:
        raise ClientQueueFullError(
            f"This address already has {share} analyses waiting or running; wait for them "
            "to finish, then upload again."
        )
    limit = svc.settings.queue_limit
    if svc.store.counts()["queued"] >= limit:
        raise QueueFullError(
            f"The queue is full ({limit} uploads waiting); try again in {RETRY_AFTER_FULL} seconds."
        )


def _store_upload(svc: Services, key: str, path: Path) -> None:
    try:
        svc.blobs.put_file(key, path)
    except OSError as exc:  # the blob store is full (a local disk, or Redis at maxmemory)
        if exc.errno != errno.ENOSPC:
            raise
        log_event("upload.storage_full", error=str(exc))  # the operator's detail
        raise NoRoomError(
            "The server has no room to store this upload right now; try again later."
        ) from None
