"""Receiving an upload: streamed to disk in chunks, hashed and size-checked on the way.

Never whole in memory: a raw body is copied from the socket in 64 KiB reads, a multipart
body goes through werkzeug's streaming parser whose file part lands in our ``UploadSink``
(``UploadRequest._get_file_stream``). The size limit is enforced while bytes arrive (and up
front from ``Content-Length``), so a 10 GB upload costs 100 MB of disk at most before 413.

A client that stalls mid-upload would hold a server thread for ever: under gunicorn the
socket gets a read timeout (``FEATHERBEAT_UPLOAD_IDLE_TIMEOUT``) while the body is read, and a
stall ends in 408.

Disk: the whole request body (every multipart part together, chunked or not) is capped at the
upload limit plus a little room for the multipart framing, only one file part is accepted, and
every error path deletes every temp file the request wrote. Files a killed web process left in
``incoming/`` are swept by a thread of each web process (``start_sweeper``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import re
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flask import Request, current_app
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from featherbeat.jobs.blobs import StorageFullError
from featherbeat.web.errors import ApiError
from featherbeat.web.guard import BodyTooSlowError

CHUNK = 64 * 1024
# Room for the multipart framing (boundaries, part headers, small form fields) on top of the
# file itself: the whole request may be this much larger than the upload limit, no more.
FRAMING_ALLOWANCE = 64 * 1024

try:  # gunicorn's body reader raises these for a malformed chunked body: the client's fault
    from gunicorn.http.errors import ParseException as _BodyParseError
except ImportError:  # pragma: no cover (the app runs without gunicorn in some tools)

    class _BodyParseError(Exception):  # type: ignore[no-redef]
        pass


class UploadTooLargeError(Exception):  # not a ValueError: werkzeug's parser would swallow that
    pass


class TooManyFilesError(Exception):
    pass


class UploadSink:
    """A write-only temp file that hashes and counts what is written, and stops at a limit."""

    def __init__(self, folder: Path, limit: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.file: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept open on purpose)
            dir=folder, prefix="upload-", delete=False
        )
        self.path = Path(self.file.name)
        self.limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise UploadTooLargeError
        self.sha256.update(data)
        try:
            return self.file.write(data)
        except OSError as exc:
            # Our disk is full or read-only: the server's problem, not the client's, so it must
            # not look like a broken upload (the blob stores' own "no room", answered with 507).
            raise StorageFullError(exc.errno or errno.ENOSPC, str(exc)) from exc

    def seek(self, *args: Any) -> int:
        return self.file.seek(*args)

    def read(self, *args: Any) -> bytes:
        return self.file.read(*args)

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class CappedInput:
    """The request body as read from the socket, stopped once it exceeds ``cap`` bytes in
    total (the per-file limit alone let nine 60 MB parts through one request)."""

    def __init__(self, raw: IO[bytes], cap: int) -> None:
        self.raw = raw
        self.cap = cap
        self.read_bytes = 0

    def _count(self, data: bytes) -> bytes:
        self.read_bytes += len(data)
        if self.read_bytes > self.cap:
            raise UploadTooLargeError
        return data

    def read(self, size: int = -1) -> bytes:
        return self._count(self.raw.read(size))

    def readline(self, size: int = -1) -> bytes:
        return self._count(self.raw.readline(size))

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class UploadRequest(Request):
    """Flask request whose multipart file parts stream into ``UploadSink``s."""

    max_form_parts = 8
    sinks: list[UploadSink]

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        services = current_app.extensions["featherbeat"]
        sinks = self.__dict__.setdefault("sinks", [])
        if sinks:  # one file per upload: a second part would only cost disk
            raise TooManyFilesError
        sink = UploadSink(
            services.settings.data_dir / "incoming", services.settings.max_upload_bytes
        )
        sinks.append(sink)
        return sink  # type: ignore[return-value]


@dataclass
class Received:
    path: Path
    filename: str
    size: int
    sha256: str


def clean_filename(name: str | None) -> str:
    """A display name only (never used as a path): last path component, printable, short."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".")
    return name[:200] or "upload"


def storage_full() -> ApiError:
    """Our disk (or Redis, at maxmemory) has no room for an upload: the server's problem."""
    return ApiError(
        507,
        "storage_full",
        "The server has no room to store this upload right now; try again later.",
        {"Retry-After": "60"},
    )


def _too_large(limit: int) -> ApiError:
    # Connection: close, so gunicorn drops the rest of the body instead of waiting for it.
    return ApiError(
        413,
        "too_large",
        f"The upload is larger than the limit of {limit / 1048576:g} MB; "
        "send a smaller or more compressed file.",
        {"Connection": "close"},
    )


def _set_read_timeout(request: Request, seconds: float | None) -> None:
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(seconds)


def receive(request: UploadRequest, limit: int, idle_timeout: float) -> Received:
    """Stream the request body to a temp file; the caller owns (and deletes) ``path``.

    Whatever goes wrong, no temp file of this request is left behind."""
    multipart = request.mimetype == "multipart/form-data"
    cap = limit + (FRAMING_ALLOWANCE if multipart else 0)
    length = request.content_length
    if length is not None and length > cap:
        raise _too_large(limit)
    # Before anything reads the body: request.stream wraps wsgi.input on first use.
    request.environ["wsgi.input"] = CappedInput(request.environ["wsgi.input"], cap)
    _set_read_timeout(request, idle_timeout)
    try:
        if multipart:
            return _receive_multipart(request, limit)
        return _receive_raw(request, limit)
    except BaseException as exc:
        for sink in request.__dict__.get("sinks", []):
            sink.discard()
        raise _as_api_error(exc, limit) from None
    finally:
        for sink in request.__dict__.get("sinks", []):
            sink.close()
        _set_read_timeout(request, None)


def _as_api_error(exc: BaseException, limit: int) -> BaseException:
    """The client-facing error for what stopped the intake (``exc`` itself if none fits)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UploadTooLargeError | RequestEntityTooLarge):
        return _too_large(limit)
    if isinstance(exc, TooManyFilesError):
        return ApiError(
            400,
            "too_many_files",
            "Send one audio file per upload, in the multipart field 'file'.",
            {"Connection": "close"},
        )
    if isinstance(exc, StorageFullError):
        return storage_full()
    if isinstance(exc, _BodyParseError):
        return ApiError(
            400,
            "malformed_body",
            "The request body is not valid HTTP (a broken chunked encoding); send it again.",
            {"Connection": "close"},
        )
    if isinstance(exc, BodyTooSlowError):
        return ApiError(
            408,
            "upload_too_slow",
            "The upload arrived too slowly for this server; send it over a faster connection.",
            {"Connection": "close"},
        )
    if isinstance(exc, TimeoutError | ClientDisconnected | OSError):
        return ApiError(
            408 if isinstance(exc, TimeoutError) else 400,
            "upload_stalled" if isinstance(exc, TimeoutError) else "upload_incomplete",
            "The upload stopped before its end; check the connection and send the file again.",
            {"Connection": "close"},
        )
    return exc


def _receive_multipart(request: UploadRequest, limit: int) -> Received:
    files = request.files
    sinks: list[UploadSink] = request.__dict__.get("sinks", [])
    storage = files.get("file")
    chosen = next((s for s in sinks if storage is not None and storage.stream is s), None)
    for sink in sinks:
        if sink is not chosen:
            sink.discard()
    if chosen is None or storage is None:
        fields = sorted(set(files) | set(request.form))
        raise ApiError(
            400,
            "missing_file",
            "Send the audio in a multipart field named 'file'"
            + (f" (got {', '.join(repr(f) for f in fields)})" if fields else "")
            + ", or as the raw request body with ?filename=.",
        )
    chosen.close()
    if chosen.size == 0:
        chosen.discard()
        raise ApiError(400, "empty_upload", "The uploaded file is empty; choose an audio file.")
    return Received(
        chosen.path, clean_filename(storage.filename), chosen.size, chosen.sha256.hexdigest()
    )


def _receive_raw(request: UploadRequest, limit: int) -> Received:
    services = current_app.extensions["featherbeat"]
    sink = UploadSink(services.settings.data_dir / "incoming", limit)
    try:
        stream = request.stream
        while chunk := stream.read(CHUNK):
            sink.write(chunk)
        if request.content_length is not None and sink.size < request.content_length:
            raise ClientDisconnected()
    except BaseException:
        sink.discard()
        raise
    sink.close()
    if sink.size == 0:
        sink.discard()
        raise ApiError(
            400,
            "empty_upload",
            "The request has no body; send the audio as a multipart field 'file' "
            "or as the raw body with ?filename=.",
        )
    name = request.args.get("filename")
    return Received(sink.path, clean_filename(name), sink.size, sink.sha256.hexdigest())


def discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def sweep_incoming(folder: Path, max_age: float) -> int:
    """Delete temp files nobody has written to for ``max_age`` seconds (an upload in
    progress writes at least every few seconds; these are left by a killed web process)."""
    if not folder.is_dir():
        return 0
    limit = time.time() - max_age
    removed = 0
    for entry in folder.iterdir():
        with contextlib.suppress(OSError):
            if entry.is_file() and entry.stat().st_mtime < limit:
                entry.unlink()
                removed += 1
    return removed


def start_sweeper(folder: Path, max_age: float) -> threading.Thread:
    """A daemon thread of the web process sweeping ``folder`` every quarter of ``max_age``
    (at most every minute): abandoned upload files live ``max_age`` plus a quarter at most."""
    interval = min(60.0, max(0.5, max_age / 4))

    def run() -> None:
        while True:
            with contextlib.suppress(Exception):  # a sweep must never end the thread
                sweep_incoming(folder, max_age)
            time.sleep(interval)

    thread = threading.Thread(target=run, name="featherbeat-incoming-sweeper", daemon=True)
    thread.start()
    return thread
