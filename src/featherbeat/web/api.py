"""The HTTP API (``/api/v1``), documented in ``openapi.json`` (served at /api/v1/openapi.json).

Uploads become jobs; jobs are read from the job store on every request (no per-process
state), so any number of web processes can serve them. See docs/api.md.
"""

from __future__ import annotations

import errno
import hmac
import json
import math
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from flask import Blueprint, Response, current_app, request, send_file

from featherbeat.analysis.formats import FORMATS, MEDIA_TYPES
from featherbeat.analysis.progress import Stage
from featherbeat.jobs.blobs import upload_key
from featherbeat.jobs.log import iso, log_event
from featherbeat.jobs.services import Services
from featherbeat.jobs.store import Job, Link
from featherbeat.web import uploads
from featherbeat.web.clients import client_key
from featherbeat.web.errors import ApiError
from featherbeat.web.sniff import NotAudioError, sniff

bp = Blueprint("api", __name__)

OPENAPI = Path(__file__).with_name("openapi.json")
RETRY_AFTER_FULL = 30  # seconds a client should wait when the queue is full
FAILED_MEMORY_SECONDS = 24 * 3600  # bytes that failed as bad input are refused this long


def services() -> Services:
    return current_app.extensions["featherbeat"]


@dataclass
class Target:
    """What an id in a URL names: a job, or a link (an upload that joined ``job``'s analysis).
    ``id`` is the caller's own id either way."""

    job: Job
    link: Link | None = None

    @property
    def id(self) -> str:
        return self.link.id if self.link else self.job.id


def job_json(job: Job, svc: Services, root: str = "", link: Link | None = None) -> dict[str, Any]:
    """The public JOB object (docs/api.md); ``root`` is the app's URL prefix. Seen through a
    ``link``, it carries the link's id, name and time, never the first uploader's: times of
    the shared analysis show no earlier than the link's own creation."""
    own_id = link.id if link else job.id
    created = link.created_at if link else job.created_at

    def since(t: float | None) -> float | None:
        return None if t is None else max(t, created)

    base = f"{root}/api/v1/analyses/{own_id}"
    error = None
    if job.status == "failed":
        error = {"code": job.error_code or "failed", "message": job.error_message or "failed"}
    return {
        "id": own_id,
        "status": job.status,
        "stage": job.stage,
        "progress": round(float(job.progress), 4),
        "queue_position": svc.store.queue_position(job),
        "filename": link.filename if link else job.filename,
        "size_bytes": job.size_bytes,
        "duration": None if job.duration is None else round(float(job.duration), 3),
        "created_at": iso(created),
        "started_at": iso(since(job.started_at)),
        "finished_at": iso(since(job.finished_at)),
        "attempts": job.attempts,
        "error": error,
        "warning": job.warning if job.status == "done" else None,
        "links": {
            "self": base,
            "events": f"{base}/events",
            "analysis": f"{base}/analysis",
            # null once the upload is deleted (after analysis, unless kept): the page learns
            # it here instead of asking /audio for a 410.
            "audio": f"{base}/audio" if _audio_kept(job, svc) else None,
        },
    }


def _audio_kept(job: Job, svc: Services) -> bool:
    """Whether the upload is still stored: until the analysis ends, or for good when kept.
    From the settings, not a blob lookup per job answer (GET /audio still checks the blob)."""
    return bool(job.upload_key) and (not job.finished or svc.settings.keep_uploads)


def _reject(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> ApiError:
    services().store.incr(f"rejected:{code}")
    return ApiError(status, code, message, headers)


def require_token() -> None:
    token = services().settings.api_token
    if not token:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return
    if request.method == "POST":  # the metric counts rejected uploads, not refused deletes
        services().store.incr("rejected:unauthorized")
    message = (
        "The API token is wrong; check it and try again."
        if header
        else "This server needs an API token: send 'Authorization: Bearer <token>'."
    )
    raise ApiError(401, "unauthorized", message, {"WWW-Authenticate": 'Bearer realm="featherbeat"'})


def get_job(job_id: str) -> Target:
    store = services().store
    if len(job_id) <= 128:
        job = store.get(job_id)
        if job is not None and not job.withdrawn:
            return Target(job)
        link = store.get_link(job_id) if job is None else None
        source = store.get(link.source) if link else None
        if link and source:
            return Target(source, link)
    raise ApiError(
        404,
        "not_found",
        f"There is no analysis with id {job_id[:128]!r}; it may have been deleted or expired.",
    )


@bp.get("/api/v1/config")
def config() -> Response:
    s = services().settings
    return _json(
        {
            "auth_required": bool(s.api_token),
            "max_upload_bytes": s.max_upload_bytes,
            "max_duration_seconds": s.max_duration,
            "formats": list(FORMATS),
        }
    )


@bp.get("/api/v1/openapi.json")
def openapi() -> Response:
    return send_file(OPENAPI, mimetype="application/json", max_age=300)


@bp.post("/api/v1/analyses")
def create_analysis() -> Response:
    svc = services()
    s = svc.settings
    require_token()
    client = client_key(request, s.client_address_header)
    wait = current_app.extensions["featherbeat.upload_rate"].take(client)
    if wait > 0:
        raise _reject(
            429,
            "too_many_uploads",
            f"This address has started more than {s.client_uploads_per_minute:g} uploads a "
            f"minute; try again in {math.ceil(wait)} seconds.",
            {"Retry-After": str(math.ceil(wait)), "Connection": "close"},
        )
    # Each upload holds a thread while its body arrives: a bounded share of the threads, so
    # slow (but not too slow) uploaders can never take the ones status requests need.
    slots = current_app.extensions["featherbeat.upload_slots"]
    if not slots.acquire(blocking=False):
        raise _reject(
            503,
            "uploads_busy",
            f"This server is receiving as many uploads as it can ({s.max_uploads}); "
            "try again in 5 seconds.",
            {"Retry-After": "5", "Connection": "close"},
        )
    try:
        try:
            # create_app sets request_class = UploadRequest, so the proxy stands for one
            upload_request = cast(uploads.UploadRequest, request)
            received = uploads.receive(upload_request, s.max_upload_bytes, s.upload_idle_timeout)
        except ApiError as exc:
            svc.store.incr(f"rejected:{exc.code}")
            raise
    finally:
        slots.release()
    try:
        return _accept(svc, received, client)
    finally:
        uploads.discard(received.path)


def _accept(svc: Services, received: uploads.Received, client: str) -> Response:
    s = svc.settings
    try:
        sniffed = sniff(received.path)
    except NotAudioError as exc:
        raise _reject(415, "not_audio", f"{received.filename}: {exc}.") from None
    if sniffed.duration is not None and sniffed.duration > s.max_duration:
        raise _reject(
            422,
            "too_long",
            f"{received.filename} lasts {sniffed.duration / 60:.1f} minutes; this server "
            f"analyses up to {s.max_duration / 60:g} minutes. Cut the file and upload it again.",
        )
    now = time.time()
    job = Job(
        id=secrets.token_urlsafe(16),
        filename=received.filename,
        size_bytes=received.size,
        sha256=received.sha256,
        duration=sniffed.duration,
        created_at=now,
        enqueued_at=now,
        media_type=sniffed.media_type,
        client=client,
    )
    job.upload_key = upload_key(job.id)
    # A cheap first look: bytes that already have an analysis need no stored copy.
    stored = svc.store.find_by_sha256(received.sha256) is None
    if stored:  # a new analysis: what it would cost is checked first
        _check_failed_before(svc, received)
        _check_queue(svc, client)
        _store_upload(svc, job, received.path)
    # The same bytes may be arriving in another request (thread or web process) right now:
    # the lookup and the insert are one step in the store, so only one of them creates a job;
    # every other upload is recorded as a link to it, with its own id.
    try:
        shared = svc.store.create_unless_duplicate(job)
    except Exception as exc:
        if stored:  # no record will ever name this blob: it must not stay behind
            svc.blobs.delete(job.upload_key)
        log_event("upload.record_failed", filename=job.filename, error=repr(exc)[:300])
        raise ApiError(  # not _reject(): counting needs the store that just failed
            503,
            "store_unavailable",
            "The server could not record this upload right now; try again in a few seconds.",
            {"Retry-After": "5"},
        ) from None
    if shared.id != job.id:
        if stored:
            svc.blobs.delete(job.upload_key)  # ours is not needed: the analysis has its copy
        return _linked(svc, shared, Link(job.id, shared.id, job.filename, job.created_at))
    if not stored:
        # The analysis we meant to join went away meanwhile: this upload is a new one.
        try:
            _store_upload(svc, job, received.path)
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
    return _json(job_json(job, svc, request.script_root), 202, job.id)


def _check_failed_before(svc: Services, received: uploads.Received) -> None:
    """Bytes whose analysis failed as bad input lately fail the same way again: refuse them
    at once instead of analysing them again (the memory is the failed job record)."""
    failed = svc.store.recent_failure(received.sha256, time.time() - FAILED_MEMORY_SECONDS)
    if failed is None:
        return
    if failed.error_code == "too_long":
        raise _reject(
            422,
            "too_long",
            f"{received.filename} is longer than this server analyses "
            f"({svc.settings.max_duration / 60:g} minutes); cut the file and upload it again.",
        )
    raise _reject(
        415,
        "not_audio",
        f"{received.filename}: these bytes were analysed lately and are not audio this server "
        "can read; check the file.",
    )


def _check_queue(svc: Services, client: str) -> None:
    share = svc.settings.client_queue_share
    if svc.store.pending_for(client) >= share:
        raise _reject(
            429,
            "client_queue_full",
            f"This address already has {share} analyses waiting or running; wait for them "
            f"to finish, then upload again.",
            {"Retry-After": str(RETRY_AFTER_FULL)},
        )
    limit = svc.settings.queue_limit
    if svc.store.counts()["queued"] >= limit:
        raise _reject(
            503,
            "queue_full",
            f"The queue is full ({limit} uploads waiting); try again in "
            f"{RETRY_AFTER_FULL} seconds.",
            {"Retry-After": str(RETRY_AFTER_FULL)},
        )


def _store_upload(svc: Services, job: Job, path: Path) -> None:
    assert job.upload_key is not None
    try:
        svc.blobs.put_file(job.upload_key, path)
    except OSError as exc:  # the blob store is full (a local disk, or Redis at maxmemory)
        if exc.errno != errno.ENOSPC:
            raise
        log_event("upload.storage_full", error=str(exc))  # the operator's detail
        raise uploads.storage_full() from None  # not _reject(): counting needs the full store


def _linked(svc: Services, shared: Job, link: Link) -> Response:
    """The answer to an upload of bytes that already have a job that is not failed: the
    uploader's own id (a link to that job), always 202 like a new upload."""
    svc.store.incr("uploads:cached" if shared.status == "done" else "uploads:joined")
    log_event("job.linked", job=shared.id, link=link.id, status=shared.status)
    return _json(job_json(shared, svc, request.script_root, link), 202, link.id)


def _json(body: Any, status: int = 200, location: str | None = None) -> Response:
    response = current_app.response_class(
        json.dumps(body), status=status, mimetype="application/json"
    )
    if location is not None:
        response.headers["Location"] = f"{request.script_root}/api/v1/analyses/{location}"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/v1/analyses/<job_id>")
def get_analysis(job_id: str) -> Response:
    target = get_job(job_id)
    return _json(job_json(target.job, services(), request.script_root, target.link))


@bp.delete("/api/v1/analyses/<job_id>")
def delete_analysis(job_id: str) -> Response:
    """Only the caller's id goes; the shared analysis goes with the last id naming it."""
    require_token()
    svc = services()
    target = get_job(job_id)
    # Record first: a running analysis then loses its lease at the next heartbeat and stops.
    gone = svc.store.release(target.id)
    if gone is not None:
        for key in [*(gone.result_keys or {}).values(), gone.upload_key]:
            if key:
                svc.blobs.delete(key)
    log_event("job.deleted", job=target.id, analysis=target.job.id, purged=gone is not None)
    return Response(status=204)


def _passed_stages(last: str | None, job: Job) -> list[str]:
    """The running stages between the last one sent and the job's current one, in order.

    Nothing on a (re)connect (``last`` None: the client is told where the job is now) nor for
    a failed job (it stopped where it stopped).
    """
    # Every job passes through the stages in Stage's order (a reduced analysis too: its
    # structure stage only computes fades and loudness).
    order = list(Stage)
    if last not in order or job.stage not in order or job.status == "failed":
        return []
    a, b = order.index(Stage(last)), order.index(Stage(job.stage))
    return [str(s) for s in order[a + 1 : b] if s not in (Stage.QUEUED, Stage.DONE)]


@bp.get("/api/v1/analyses/<job_id>/events")
def events(job_id: str) -> Response:
    svc = services()
    target = get_job(job_id)
    job, link = target.job, target.link
    try:
        last = int(request.headers.get("Last-Event-ID", "0"))
    except ValueError:
        last = 0
    root = request.script_root
    keepalive = float(current_app.config["SSE_KEEPALIVE"])
    max_seconds = float(current_app.config["SSE_MAX_SECONDS"])

    def stream() -> Iterator[str]:
        yield "retry: 2000\n\n"
        seen = last
        current: Job | None = job
        progress = 0.0
        deadline = time.monotonic() + max_seconds
        stage = None  # the last stage sent
        while current is not None:
            # The final status is always sent (even on a reconnect that already saw it), so
            # a client always learns the end and the stream always closes.
            if current.seq != seen or current.finished:
                seen = current.seq
                body = job_json(current, svc, root, link)
                for passed in _passed_stages(stage, current):
                    # Stages shorter than our wait between reads (rhythm and structure take
                    # tens of ms) are still reported, in order, at the progress the client
                    # last saw: every stream tells the same story.
                    # No id: a reconnect resumes after the real record these lead up to.
                    shown = {**body, "status": "running", "stage": passed, "progress": progress}
                    yield f"event: status\ndata: {json.dumps(shown)}\n\n"
                stage, progress = current.stage, body["progress"]
                yield f"id: {seen}\nevent: status\ndata: {json.dumps(body)}\n\n"
                if current.finished:
                    return
            if time.monotonic() >= deadline:
                return  # the client reconnects with Last-Event-ID
            if svc.store.wait_change(current.id, seen, timeout=keepalive) == seen:
                yield ": keep-alive\n\n"
            current = _still_named(svc, current.id, link)
        yield 'event: gone\ndata: {"error": {"code": "not_found", "message": "deleted"}}\n\n'

    slots = current_app.extensions["featherbeat.sse_slots"]
    if not slots.acquire(blocking=False):
        raise _reject(
            503,
            "too_many_streams",
            "This server follows as many live streams as it can right now; poll "
            f"{request.script_root}/api/v1/analyses/{target.id} instead, or retry in 5 seconds.",
            {"Retry-After": "5"},
        )
    response = Response(
        stream(),
        mimetype="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        },
    )
    # Runs when the stream ends, whichever way: final status, lifetime, client gone.
    response.call_on_close(slots.release)
    return response


def _still_named(svc: Services, job_id: str, link: Link | None) -> Job | None:
    """The job again, or None once the caller's id (its own, or the link) is gone."""
    job = svc.store.get(job_id)
    if job is None:
        return None
    if link is not None:
        return job if svc.store.get_link(link.id) is not None else None
    return None if job.withdrawn else job


def _result(job_id: str, fmt: str) -> Response:
    if fmt not in FORMATS:
        raise ApiError(
            400, "bad_format", f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}."
        )
    svc = services()
    job = get_job(job_id).job
    if job.status == "failed":
        raise ApiError(
            409, "job_failed", f"This analysis failed, so there is no result: {job.error_message}"
        )
    if job.status != "done":
        raise ApiError(
            409,
            "not_ready",
            f"The analysis is {job.status} ({job.progress:.0%}); wait for status "
            "'done' (poll the job or follow its events) and ask again.",
        )
    key = (job.result_keys or {}).get(fmt)
    chunks = svc.blobs.iter(key) if key else None
    if chunks is None:
        raise ApiError(
            410,
            "result_gone",
            "The result of this analysis is no longer stored; upload the file again.",
        )
    # content_type, not mimetype: Flask would append a second "; charset=utf-8".
    response = Response(chunks, content_type=MEDIA_TYPES[fmt])
    response.headers["Cache-Control"] = "private, max-age=86400"  # a result never changes
    return response


@bp.get("/api/v1/analyses/<job_id>/analysis")
def analysis(job_id: str) -> Response:
    return _result(job_id, request.args.get("format", "spotify"))


@bp.get("/v1/audio-analysis/<job_id>")
def spotify_compatible(job_id: str) -> Response:
    return _result(job_id, "spotify")


@bp.get("/api/v1/analyses/<job_id>/audio")
def audio(job_id: str) -> Response:
    svc = services()
    job = get_job(job_id).job
    gone = ApiError(
        410,
        "audio_gone",
        "The uploaded audio is no longer kept on this server "
        "(it is deleted once analysed); the analysis itself is still available.",
    )
    if not job.upload_key or svc.blobs.size(job.upload_key) is None:
        raise gone
    media = job.media_type or "application/octet-stream"
    if not request.headers.get("Range", "bytes=").strip().lower().startswith("bytes="):
        # A unit we do not serve (items=0-10): ignored, the whole file (RFC 9110 14.2).
        request.environ.pop("HTTP_RANGE", None)
    path = svc.blobs.local_file(job.upload_key)
    if path is not None:
        # A real file: send_file answers Range requests, so the page's <audio> can seek.
        return send_file(path, mimetype=media, conditional=True, max_age=0)
    chunks = svc.blobs.iter(job.upload_key)
    if chunks is None:
        raise gone
    return Response(chunks, mimetype=media)
