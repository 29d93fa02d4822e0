"""The HTTP API (``/api/v1``), documented in ``openapi.json`` (served at /api/v1/openapi.json).

Uploads become jobs; jobs are read from the job store on every request (no per-process
state), so any number of web processes can serve them. See docs/api.md.
"""

from __future__ import annotations

import errno
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from flask import Blueprint, Response, current_app, request, send_file

from featherbeat.jobs.blobs import LocalBlobStore, upload_key
from featherbeat.jobs.log import iso, log_event
from featherbeat.jobs.services import Services
from featherbeat.jobs.store import Job
from featherbeat.web import uploads
from featherbeat.web.errors import ApiError
from featherbeat.web.sniff import NotAudioError, sniff

bp = Blueprint("api", __name__)

FORMATS = ("spotify", "beats", "jams")
MEDIA_TYPES = {
    "spotify": "application/json",
    "beats": "text/plain; charset=utf-8",
    "jams": "application/json",
}
OPENAPI = Path(__file__).with_name("openapi.json")
RETRY_AFTER_FULL = 30  # seconds a client should wait when the queue is full


def services() -> Services:
    return current_app.extensions["featherbeat"]


def job_json(job: Job, svc: Services, root: str = "") -> dict[str, Any]:
    """The public JOB object (docs/api.md); ``root`` is the app's URL prefix."""
    base = f"{root}/api/v1/analyses/{job.id}"
    error = None
    if job.status == "failed":
        error = {"code": job.error_code or "failed", "message": job.error_message or "failed"}
    return {
        "id": job.id,
        "status": job.status,
        "stage": job.stage,
        "progress": round(float(job.progress), 4),
        "queue_position": svc.store.queue_position(job),
        "filename": job.filename,
        "size_bytes": job.size_bytes,
        "duration": None if job.duration is None else round(float(job.duration), 3),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "attempts": job.attempts,
        "error": error,
        "links": {
            "self": base,
            "events": f"{base}/events",
            "analysis": f"{base}/analysis",
            "audio": f"{base}/audio",
        },
    }


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


def get_job(job_id: str) -> Job:
    job = services().store.get(job_id) if len(job_id) <= 128 else None
    if job is None:
        raise ApiError(
            404,
            "not_found",
            f"There is no analysis with id {job_id!r}; it may have been deleted or expired.",
        )
    return job


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
    try:
        # create_app sets request_class = UploadRequest, so the proxy stands for one
        upload_request = cast(uploads.UploadRequest, request)
        received = uploads.receive(upload_request, s.max_upload_bytes, s.upload_idle_timeout)
    except ApiError as exc:
        svc.store.incr(f"rejected:{exc.code}")
        raise
    try:
        return _accept(svc, received)
    finally:
        uploads.discard(received.path)


def _accept(svc: Services, received: uploads.Received) -> Response:
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
    # A cheap first look (no blob written for a repeat); the atomic check is the create below.
    existing = svc.store.find_by_sha256(received.sha256)
    if existing is not None:
        return _deduplicated(svc, existing)
    if svc.store.counts()["queued"] >= s.queue_limit:
        raise _reject(
            503,
            "queue_full",
            f"The queue is full ({s.queue_limit} uploads waiting); try again in "
            f"{RETRY_AFTER_FULL} seconds.",
            {"Retry-After": str(RETRY_AFTER_FULL)},
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
    )
    job.upload_key = upload_key(job.id)
    try:
        svc.blobs.put_file(job.upload_key, received.path)
    except OSError as exc:  # the blob store is full (a local disk, or Redis at maxmemory)
        if exc.errno != errno.ENOSPC:
            raise
        log_event("upload.storage_full", error=str(exc))  # the operator's detail
        raise uploads.storage_full() from None  # not _reject(): counting needs the full store
    # The same bytes may be arriving in another request (thread or web process) right now:
    # the lookup and the insert are one step in the store, so only one of them creates a job.
    winner = svc.store.create_unless_duplicate(job)
    if winner.id != job.id:
        svc.blobs.delete(job.upload_key)  # ours is not needed: the winner has its own copy
        return _deduplicated(svc, winner)
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
    return _json(job_json(job, svc, request.script_root), 202, job)


def _deduplicated(svc: Services, existing: Job) -> Response:
    """The answer to an upload of bytes that already have a job that is not failed."""
    svc.store.incr("uploads:cached" if existing.status == "done" else "uploads:joined")
    log_event("job.deduplicated", job=existing.id, status=existing.status)
    return _json(
        job_json(existing, svc, request.script_root),
        200 if existing.status == "done" else 202,
        existing,
    )


def _json(body: Any, status: int = 200, job: Job | None = None) -> Response:
    response = current_app.response_class(
        json.dumps(body), status=status, mimetype="application/json"
    )
    if job is not None and status in (200, 202) and request.method == "POST":
        response.headers["Location"] = f"{request.script_root}/api/v1/analyses/{job.id}"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/v1/analyses/<job_id>")
def get_analysis(job_id: str) -> Response:
    return _json(job_json(get_job(job_id), services(), request.script_root))


@bp.delete("/api/v1/analyses/<job_id>")
def delete_analysis(job_id: str) -> Response:
    require_token()
    svc = services()
    job = get_job(job_id)
    # Record first: a running analysis then loses its lease at the next heartbeat and stops.
    svc.store.delete(job.id)
    for key in [*(job.result_keys or {}).values(), job.upload_key]:
        if key:
            svc.blobs.delete(key)
    log_event("job.deleted", job=job.id, status=job.status)
    return Response(status=204)


@bp.get("/api/v1/analyses/<job_id>/events")
def events(job_id: str) -> Response:
    svc = services()
    job = get_job(job_id)
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
        deadline = time.monotonic() + max_seconds
        while current is not None:
            # The final status is always sent (even on a reconnect that already saw it), so
            # a client always learns the end and the stream always closes.
            if current.seq != seen or current.finished:
                seen = current.seq
                data = json.dumps(job_json(current, svc, root))
                yield f"id: {seen}\nevent: status\ndata: {data}\n\n"
                if current.finished:
                    return
            if time.monotonic() >= deadline:
                return  # the client reconnects with Last-Event-ID
            if svc.store.wait_change(current.id, seen, timeout=keepalive) == seen:
                yield ": keep-alive\n\n"
            current = svc.store.get(current.id)
        yield 'event: gone\ndata: {"error": {"code": "not_found", "message": "deleted"}}\n\n'

    slots = current_app.extensions["featherbeat.sse_slots"]
    if not slots.acquire(blocking=False):
        raise ApiError(
            503,
            "too_many_streams",
            "This server follows as many live streams as it can right now; poll "
            f"{request.script_root}/api/v1/analyses/{job.id} instead, or retry in 5 seconds.",
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


def _result(job_id: str, fmt: str) -> Response:
    if fmt not in FORMATS:
        raise ApiError(
            400, "bad_format", f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}."
        )
    svc = services()
    job = get_job(job_id)
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
    job = get_job(job_id)
    gone = ApiError(
        410,
        "audio_gone",
        "The uploaded audio is no longer kept on this server "
        "(it is deleted once analysed); the analysis itself is still available.",
    )
    if not job.upload_key or svc.blobs.size(job.upload_key) is None:
        raise gone
    media = job.media_type or "application/octet-stream"
    if isinstance(svc.blobs, LocalBlobStore):
        # A real file: send_file answers Range requests, so the page's <audio> can seek.
        with svc.blobs.local_path(job.upload_key) as path:
            return send_file(path, mimetype=media, conditional=True, max_age=0)
    chunks = svc.blobs.iter(job.upload_key)
    if chunks is None:
        raise gone
    return Response(chunks, mimetype=media)
