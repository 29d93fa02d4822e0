"""The HTTP API (``/api/v1``), documented in ``openapi.json`` (served at /api/v1/openapi.json).

Uploads become jobs; jobs are read from the job store on every request (no per-process
state), so any number of web processes can serve them. See docs/api.md.
"""

from __future__ import annotations

import hmac
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from flask import Blueprint, Response, current_app, request, send_file

from featherbeat.analysis.formats import FORMATS, MEDIA_TYPES
from featherbeat.analysis.progress import Stage
from featherbeat.jobs.log import iso, log_event
from featherbeat.jobs.services import Services
from featherbeat.jobs.store import Job, Link
from featherbeat.web import intake, uploads
from featherbeat.web.clients import client_key
from featherbeat.web.errors import ApiError

bp = Blueprint("api", __name__)

OPENAPI = Path(__file__).with_name("openapi.json")


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


# What each refusal of the intake use case is in HTTP.
_INTAKE_STATUS: dict[type[intake.IntakeError], int] = {
    intake.NotAudioError: 415,
    intake.TooLongError: 422,
    intake.ClientQueueFullError: 429,
    intake.QueueFullError: 503,
    intake.NoRoomError: 507,
    intake.StoreUnavailableError: 503,
}


def _accept(svc: Services, received: uploads.Received, client: str) -> Response:
    """Hand the received file to the intake use case; its answer or refusal in HTTP."""
    upload = intake.Upload(received.path, received.filename, received.size, received.sha256, client)
    try:
        accepted = intake.accept(svc, upload)
    except intake.IntakeError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        raise ApiError(_INTAKE_STATUS[type(exc)], exc.code, exc.message, headers) from None
    # Always 202 with the uploader's own id, also when it joined an analysis (done or not).
    body = job_json(accepted.job, svc, request.script_root, accepted.link)
    return _json(body, 202, accepted.id)


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
