"""``featherbeat analyze --via URL FILES...``: batch analysis through a running service.

Each file is uploaded as a raw body (``POST /api/v1/analyses?filename=...``, streamed from disk,
never read whole), its job is followed by polling ``GET /api/v1/analyses/{id}`` and the result
is fetched with ``?format=`` and written like the local ``analyze`` writes it: stdout, ``-o FILE``
(one input) or ``-o FOLDER`` (``<stem>.json|.beats|.jams``). Stdlib only (urllib), so the client
side needs nothing the core does not.

Polling rather than SSE: a batch follows many jobs at once from one thread, and a poll survives a
web process being restarted in the middle (an SSE stream would have to be re-opened per job).

At most ``WINDOW`` jobs are in flight so a huge batch never fills the service's bounded queue on
its own; after a ``503`` the next upload waits for its ``Retry-After`` or for one of our own
jobs to end, whichever comes first (that frees a place in the queue). Exit code: 0 when every file succeeded,
1 when any failed (one line per failure on stderr), 2 when the service cannot be reached at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from featherbeat.cli.output import ProgressBar, atomic_file, targets, warning_line
from featherbeat.config import Settings

WINDOW = 16  # jobs in flight at once
POLL_SECONDS = 0.3  # the loop's tick
POLL_RUNNING = 0.5  # how often one running job's status is read ...
POLL_QUEUED = 2.0  # ... and one waiting in the queue (a small host must not drown in polls)
MAX_RETRIES = 5  # server errors (5xx) tolerated per file before giving it up
UNREACHABLE_SECONDS = 60.0  # how long a service may be down (restart, deploy) before we give up
HTTP_TIMEOUT = 30.0
USER_AGENT = "featherbeat-via"


class ServiceError(Exception):
    """An HTTP error answer of the service, with its JSON error code and message."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class UnreachableError(Exception):
    """The service did not answer (connection refused, reset, timeout)."""


@dataclass
class Item:
    """One input file on its way through the service."""

    path: Path
    target: Path | None  # None: stdout
    job: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    written: bool = False
    next_poll: float = 0.0
    retries: int = 0

    @property
    def progress(self) -> float:
        if self.error is not None or self.written:
            return 1.0
        return float(self.job.get("progress") or 0.0)


class Client:
    """Minimal HTTP client for the featherbeat API (JSON errors turned into ServiceError)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = HTTP_TIMEOUT):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(
                f"--via needs an http(s) URL such as http://127.0.0.1:8000, got {base_url!r}"
            )
        # A trailing slash makes relative joins keep a path prefix (service behind a proxy).
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token
        self.timeout = timeout

    def url(self, link: str) -> str:
        if link.startswith(("http://", "https://")):
            return link
        # Links are joined under the base URL's path, so a proxy prefix such as /fb/ is kept.
        return urllib.parse.urljoin(self.base, link.lstrip("/"))

    def request(
        self,
        method: str,
        link: str,
        body: IO[bytes] | None = None,
        length: int | None = None,
    ) -> tuple[int, Any]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
            headers["Content-Length"] = str(length)
        req = urllib.request.Request(self.url(link), data=body, method=method, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 (http(s) only, checked above)
        except urllib.error.HTTPError as exc:
            raise _service_error(exc) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            raise UnreachableError(str(getattr(exc, "reason", exc))) from None
        return resp.status, resp

    def json(self, method: str, link: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        status, resp = self.request(method, link, **kwargs)
        with resp:
            try:
                return status, json.loads(resp.read())
            except (ValueError, OSError) as exc:
                raise UnreachableError(f"bad answer from {link}: {exc}") from None

    def submit(self, path: Path) -> dict[str, Any]:
        query = urllib.parse.urlencode({"filename": path.name})
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            return self.json("POST", f"api/v1/analyses?{query}", body=fh, length=size)[1]

    def fetch(self, job: dict[str, Any], fmt: str, out: IO[bytes]) -> None:
        link = job.get("links", {}).get("analysis") or f"api/v1/analyses/{job['id']}/analysis"
        sep = "&" if "?" in link else "?"
        _status, resp = self.request("GET", f"{link}{sep}format={fmt}")
        with resp:
            while True:
                try:
                    chunk = resp.read(1 << 16)
                except OSError as exc:  # connection lost mid-body: the caller retries later
                    raise UnreachableError(str(exc)) from None
                if not chunk:
                    return
                out.write(chunk)


def _service_error(exc: urllib.error.HTTPError) -> ServiceError:
    code, message = "http_error", f"HTTP {exc.code} {exc.reason}"
    try:
        err = json.loads(exc.read() or b"{}").get("error") or {}
        code, message = str(err.get("code", code)), str(err.get("message", message))
    except (ValueError, OSError, AttributeError):
        pass
    retry = exc.headers.get("Retry-After") if exc.headers else None
    try:
        retry_after = float(retry) if retry is not None else None
    except ValueError:
        retry_after = None
    return ServiceError(exc.code, code, message, retry_after)


class Batch:
    """Submits, follows and collects a list of files, writing each result to its target."""

    def __init__(
        self,
        client: Client,
        items: Sequence[Item],
        fmt: str,
        window: int = WINDOW,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.items = list(items)
        self.fmt = fmt
        self.window = window
        self.log = log or (lambda line: print(line, file=sys.stderr))
        self.pending: deque[Item] = deque(self.items)
        self.active: list[Item] = []
        self.retry_at = 0.0
        self.down_since: float | None = None
        self.started = time.monotonic()

    def fail(self, item: Item, message: str) -> None:
        item.error = message
        self.log(f"featherbeat: {item.path}: {_without_name(message, item.path.name)}")

    def transient(self, item: Item, exc: ServiceError) -> bool:
        """A 5xx (restarting, overloaded, a proxy between deploys): try this file again later,
        up to MAX_RETRIES times with a growing pause; False once it is given up (failed)."""
        if exc.status < 500 or item.retries >= MAX_RETRIES:
            self.fail(item, f"{exc.message} ({exc.code})")
            return False
        item.retries += 1
        item.next_poll = time.monotonic() + 0.5 * 2**item.retries
        return True

    def submit_some(self) -> None:
        while self.pending and len(self.active) < self.window and time.monotonic() >= self.retry_at:
            item = self.pending[0]
            if time.monotonic() < item.next_poll:
                return  # backing off after a server error
            try:
                item.job = self.client.submit(item.path)
            except ServiceError as exc:
                # The server's queue, or this client's share of it or of its upload rate, is
                # full: wait as told, keep the file.
                if exc.code in (
                    "queue_full",
                    "uploads_busy",
                    "client_queue_full",
                    "too_many_uploads",
                ):
                    self.retry_at = time.monotonic() + (exc.retry_after or 2.0)
                    return
                if self.transient(item, exc):
                    return
                self.pending.popleft()
                continue
            except OSError as exc:  # unreadable local file
                self.pending.popleft()
                self.fail(item, f"cannot read: {exc.strerror or exc}")
                continue
            self.pending.popleft()
            self.active.append(item)

    def follow(self) -> None:
        for item in list(self.active):
            status = item.job.get("status")
            now = time.monotonic()
            if now < item.next_poll:
                continue
            if status not in ("done", "failed"):
                link = item.job.get("links", {}).get("self") or f"api/v1/analyses/{item.job['id']}"
                try:
                    item.job = self.client.json("GET", link)[1]
                except ServiceError as exc:
                    if not self.transient(item, exc):
                        self.active.remove(item)
                    continue
                status = item.job.get("status")
                item.next_poll = now + (POLL_RUNNING if status == "running" else POLL_QUEUED)
            if status in ("done", "failed"):
                self.retry_at = 0.0  # a slot of ours freed: a full queue may take one now
            if status == "failed":
                self.active.remove(item)
                err = item.job.get("error") or {}
                self.fail(
                    item, f"{err.get('message', 'analysis failed')} ({err.get('code', 'failed')})"
                )
            elif status == "done" and self.collect(item):
                self.active.remove(item)

    def collect(self, item: Item) -> bool:
        """Fetch and write the result; False when it should be tried again later."""
        try:
            if item.target is None:
                # Spooled first: a download cut half-way and retried must not print twice.
                with tempfile.SpooledTemporaryFile(max_size=1 << 20) as spool:
                    self.client.fetch(item.job, self.fmt, spool)
                    spool.seek(0)
                    shutil.copyfileobj(spool, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                with atomic_file(item.target) as out:
                    self.client.fetch(item.job, self.fmt, out)
        except ServiceError as exc:
            return not self.transient(item, exc)
        except OSError as exc:  # not UnreachableError (raised above): the output is unwritable
            self.fail(item, f"cannot write output ({exc.strerror or exc})")
            return True
        item.written = True
        warning = item.job.get("warning")
        if warning:  # usable but incomplete: said even with --quiet, as a local run says it
            self.log(warning_line(item.path, str(warning)))
        return True

    def draw(self, bar: ProgressBar) -> None:
        """The overall line: mean progress over the files, done and failed counts, seconds."""
        n = len(self.items)
        if not n:
            return
        done = sum(1 for i in self.items if i.written)
        failed = sum(1 for i in self.items if i.error is not None)
        elapsed = time.monotonic() - self.started
        bar.draw(
            sum(i.progress for i in self.items) / n,
            f"{done}/{n} done" + (f", {failed} failed" if failed else "") + f"  {elapsed:5.0f}s",
        )

    def run(self, bar: ProgressBar) -> int:
        while self.pending or self.active:
            try:
                self.submit_some()
                self.follow()
                self.down_since = None
            except UnreachableError as exc:
                now = time.monotonic()
                self.down_since = self.down_since or now
                if now - self.down_since > UNREACHABLE_SECONDS:
                    bar.close()
                    self.log(f"featherbeat: service at {self.client.base} unreachable: {exc}")
                    return 2
            self.draw(bar)
            if self.pending or self.active:
                time.sleep(POLL_SECONDS)
        self.draw(bar)
        bar.close()
        return 1 if any(i.error is not None for i in self.items) else 0


def _without_name(message: str, name: str) -> str:
    """The service's message without its leading "name: ": our line names the path already."""
    prefix = f"{name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def run(args: argparse.Namespace) -> int:
    """``featherbeat analyze --via URL``: the same arguments and outputs as the local analyze."""
    where = targets(args)  # the same output rules as a local run
    if where is None:
        return 2
    try:
        client = Client(args.via, Settings.from_env().api_token)
    except ValueError as exc:  # a bad URL, or a ConfigError of the environment
        print(f"featherbeat: {exc}", file=sys.stderr)
        return 2
    items = [Item(Path(f), t) for f, t in zip(args.files, where, strict=True)]
    batch = Batch(client, items, args.format)
    bar = ProgressBar(enabled=False if args.quiet else None)
    try:
        return batch.run(bar)
    except KeyboardInterrupt:
        bar.close()
        print(
            "featherbeat: interrupted; submitted jobs keep running on the service", file=sys.stderr
        )
        return 130
