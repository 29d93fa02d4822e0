"""A REAL featherbeat service for tests: gunicorn + the job consumer on a free 127.0.0.1 port.

Reusable by any test (the page tests too)::

    from featherbeat.testing.service import running_service

    def test_something(tmp_path):
        with running_service(tmp_path, env={"FEATHERBEAT_MAX_UPLOAD_MB": "5"}) as svc:
            status, job = svc.upload(path_to_audio)     # multipart POST /api/v1/analyses
            job = svc.wait_done(job["id"])
            status, headers, body = svc.request("GET", job["links"]["analysis"])

or the pytest fixture ``service`` (function scope, defaults), which tests/conftest.py registers
for every test.

``Service`` starts the two processes exactly as ``featherbeat serve`` does (gunicorn with
``featherbeat.web.gunicorn_conf`` and ``python -m featherbeat.cli worker``) but separately, so a
test can SIGKILL or restart one of them. Its data dir is a temp folder; logs go to
``<tmp>/logs/{web,worker}.log`` (``svc.logs()`` returns them for assertion messages). Short
heartbeat / stale times are set so recovery tests run in seconds. Every JSON answer read through
``svc.json()`` is validated against the OpenAPI document (``validate_response``), so a test
that talks to the API checks the schema for free. Network: 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import mimetypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "web" / "openapi.json"

FAST_ENV = {
    "FEATHERBEAT_HEARTBEAT_SECONDS": "0.3",
    "FEATHERBEAT_STALE_SECONDS": "2",
    "FEATHERBEAT_SSE_KEEPALIVE": "1",
    "FEATHERBEAT_THREADS": "24",
    "FEATHERBEAT_LOG_LEVEL": "warning",
    # Every test client is 127.0.0.1: the per-client limits would count them all as one
    # (tests/service/test_security.py sets its own to test them).
    "FEATHERBEAT_CLIENT_UPLOADS_PER_MINUTE": "0",
    "FEATHERBEAT_CLIENT_QUEUE_SHARE": "100000",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- OpenAPI validation of JSON answers --------------------------------------------------------

_SPEC: dict[str, Any] | None = None


def openapi() -> dict[str, Any]:
    global _SPEC
    if _SPEC is None:
        _SPEC = json.loads(OPENAPI_PATH.read_text())
    return _SPEC


def _match_path(path: str) -> str | None:
    path = path.split("?", 1)[0]
    for template in openapi()["paths"]:
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    return None


def validate_response(method: str, path: str, status: int, body: Any) -> None:
    """Check a JSON answer against the OpenAPI document: the operation must document this
    status, and the body must match its application/json schema."""
    import jsonschema

    template = _match_path(path)
    assert template is not None, f"{path} is not in the OpenAPI document"
    operation = openapi()["paths"][template].get(method.lower())
    assert operation is not None, f"{method} {template} is not in the OpenAPI document"
    response = operation["responses"].get(str(status))
    assert response is not None, f"{method} {template} does not document status {status}"
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    assert schema is not None, f"{method} {template} {status} documents no JSON body"
    root = {**schema, "components": openapi()["components"]}
    jsonschema.Draft202012Validator(root).validate(body)


# --- the service -------------------------------------------------------------------------------


def is_waiting_spare(pid: int) -> bool:
    """A warm-start spare (``featherbeat.jobs.child --wait``) that has not been handed its job
    yet: its stdin is still the consumer's pipe (a child at work has /dev/null there)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stdin = os.readlink(f"/proc/{pid}/fd/0")
    except OSError:  # gone
        return False
    return b"--wait" in cmd and stdin.startswith("pipe:")


class Service:
    """gunicorn + consumer with their own data dir, port and logs (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        env: dict[str, str] | None = None,
        web_file_limit: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        # RLIMIT_FSIZE of the web processes (a full disk, as far as they can tell).
        self.web_file_limit = web_file_limit
        self.data_dir = self.directory / "data"
        self.log_dir = self.directory / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.env = {
            **os.environ,
            **FAST_ENV,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "FEATHERBEAT_DATA_DIR": str(self.data_dir),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        if "FEATHERBEAT_BROKER" not in (env or {}):
            self.env.pop("FEATHERBEAT_BROKER", None)  # the embedded default unless asked
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # processes

    def _spawn(
        self, name: str, cmd: list[str], limit: int | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")

        def preexec() -> None:
            import resource

            size = resource.RLIM_INFINITY if limit is None else limit
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

        try:
            return subprocess.Popen(
                cmd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory,
                preexec_fn=preexec if limit else None,  # noqa: PLW1509 (one setrlimit call)
            )
        finally:
            log.close()

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", [sys.executable, "-m", "featherbeat.cli", "worker"])

    def start_web(self, timeout: float = 30.0) -> None:
        self.web = self._spawn(
            "web",
            [sys.executable, "-m", "gunicorn", "-c", "python:featherbeat.web.gunicorn_conf"],
            self.web_file_limit,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.web.returncode}):\n{self.logs()}")
            with contextlib.suppress(OSError):
                if self.request("GET", "/healthz", timeout=2)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"/healthz did not answer within {timeout} s:\n{self.logs()}")

    def start(self) -> Service:
        self.start_worker()
        self.start_web()
        return self

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 20.0) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_worker(self, sig: int = signal.SIGTERM) -> None:
        self._stop(self.worker, sig)

    def stop_web(self, sig: int = signal.SIGTERM) -> None:
        if sig == signal.SIGKILL and self.web is not None:
            # A crash of the whole web side (as a host or container dies): the master's
            # workers would otherwise linger, orphaned, on the shared listening socket.
            # Master first: killed the other way round, it would fork a fresh worker.
            workers = self.children(self.web.pid)
            self._stop(self.web, sig)
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            # Wait until they are really gone: a dying worker still holding the listening
            # socket would take (and reset) connections meant for the next gunicorn.
            deadline = time.monotonic() + 10
            while any(Path(f"/proc/{pid}").exists() for pid in workers):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            return
        self._stop(self.web, sig)

    def stop(self) -> None:
        self.stop_web()
        self.stop_worker()

    def pids(self) -> list[int]:
        """Every process of the service: gunicorn master + workers, consumer, analysis children."""
        roots = [p.pid for p in (self.web, self.worker) if p is not None and p.poll() is None]
        found = list(roots)
        for pid in roots:
            found += self.children(pid)
        return found

    @staticmethod
    def children(pid: int) -> list[int]:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            return []
        kids: list[int] = []
        for tid in tasks:
            with contextlib.suppress(FileNotFoundError):
                kids += [
                    int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
                ]
        return kids

    def consumer_children(self) -> list[int]:
        return self.children(self.worker.pid) if self.worker and self.worker.poll() is None else []

    def analysis_children(self) -> list[int]:
        """The consumer's children at work on a job (not a spare still waiting for one)."""
        return [pid for pid in self.consumer_children() if not is_waiting_spare(pid)]

    def spares(self) -> list[int]:
        """The consumer's spare analysis children still waiting for a job (warm start)."""
        return [pid for pid in self.consumer_children() if is_waiting_spare(pid)]

    def logs(self) -> str:
        out = []
        for path in sorted(self.log_dir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()
            if path.name == "web.log":  # access lines of polling loops say little
                lines = [line for line in lines if '" 200 ' not in line]
            out.append(f"--- {path.name} ---\n" + "\n".join(lines[-60:]))
        return "\n".join(out)

    # HTTP

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            # The server may answer early (e.g. 413) and close: then read that answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """A JSON request whose answer is validated against the OpenAPI document."""
        status, headers, body = self.request(method, path, **kwargs)
        assert headers.get("content-type", "").startswith("application/json"), (status, body[:200])
        data = json.loads(body)
        validate_response(method, path, status, data)
        return status, data

    def upload(
        self,
        source: Path | bytes,
        filename: str | None = None,
        *,
        raw: bool = False,
        field: str = "file",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        name = filename or (Path(source).name if not isinstance(source, bytes) else "upload.bin")
        if raw:
            from urllib.parse import quote

            return self.json(
                "POST",
                f"/api/v1/analyses?filename={quote(name)}",
                body=data,
                headers={"Content-Type": "application/octet-stream", **(headers or {})},
            )
        body, content_type = multipart(field, name, data)
        return self.json(
            "POST",
            "/api/v1/analyses",
            body=body,
            headers={"Content-Type": content_type, **(headers or {})},
        )

    def job(self, job_id: str) -> dict[str, Any]:
        status, job = self.json("GET", f"/api/v1/analyses/{job_id}")
        assert status == 200, job
        return job

    def wait_for(self, job_id: str, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job = self.job(job_id)
        while not predicate(job):
            if self.worker is not None and self.worker.poll() is not None:
                raise AssertionError(
                    f"the consumer exited ({self.worker.returncode})\n{self.logs()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} stuck at {job}\n{self.logs()}")
            time.sleep(0.05)
            job = self.job(job_id)
        return job

    def wait_done(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait_for(job_id, lambda j: j["status"] in ("done", "failed"), timeout)

    def events(
        self, job_id: str, last_event_id: str | None = None, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Read the job's SSE stream to its end: [{"id", "event", "data"(parsed)}, ...] plus
        {"comment": ...} entries for keep-alive lines."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        try:
            conn.request("GET", f"/api/v1/analyses/{job_id}/events", headers=headers)
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            assert resp.getheader("Content-Type", "").startswith("text/event-stream")
            assert resp.getheader("Cache-Control") == "no-cache"
            assert resp.getheader("X-Accel-Buffering") == "no"
            messages: list[dict[str, str]] = []
            current: dict[str, str] = {}
            for raw in resp:
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if current:
                        messages.append(current)
                    current = {}
                elif line.startswith(":"):
                    messages.append({"comment": line[1:].strip()})
                else:
                    key, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    current[key] = json.loads(value) if key == "data" else value
            return messages
        finally:
            conn.close()


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


@contextlib.contextmanager
def running_service(
    directory: Path, env: dict[str, str] | None = None, **options: Any
) -> Iterator[Service]:
    svc = Service(directory, env, **options)
    try:
        yield svc.start()
    finally:
        svc.stop()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with running_service(tmp_path) as svc:
        yield svc
