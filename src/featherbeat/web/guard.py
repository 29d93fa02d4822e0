"""A gthread worker that slow or greedy clients cannot starve (``worker_class`` in gunicorn_conf).

gunicorn's gthread worker hands every accepted connection to a pool thread, which then reads
the request head with blocking reads and no deadline: sixteen sockets that send a request line
and one header, then nothing, hold all sixteen threads, and ``/healthz`` stops answering. The
documented deployments (``docker run -p 8000:8000``, ``featherbeat serve --host 0.0.0.0``) have no
proxy in front to absorb such clients, so the process defends itself:

- **Request heads are read by the event loop, not by a thread.** A connection's bytes are
  collected without blocking until the head is complete (``\\r\\n\\r\\n``); only then does a pool
  thread see it, with the head already buffered in gunicorn's parser. A head that is not complete
  within ``FEATHERBEAT_HEADER_TIMEOUT`` seconds (10) is answered 408 and closed; one larger than
  64 KiB is answered 431. Kept-alive connections go through the same gate for every request.
- **Bodies have a minimum rate.** Every read of a request body waits at most
  ``FEATHERBEAT_UPLOAD_IDLE_TIMEOUT`` seconds (30), and after an allowance of
  ``FEATHERBEAT_HEADER_TIMEOUT`` seconds the body must have arrived at
  ``FEATHERBEAT_UPLOAD_MIN_RATE_KB`` KiB/s (8) on average: a client sending a byte every 20 s
  is cut with ``BodyTooSlowError`` (the upload answers 408 ``upload_too_slow``).
- **A per-client connection cap.** One peer address may hold at most
  ``FEATHERBEAT_MAX_CONNECTIONS_PER_CLIENT`` (32; 0 = no cap) open connections in this worker;
  one more is answered 429 at once and closed, without costing a thread.
- gunicorn's own refusals (400 bad request line, 414, 431, a malformed chunk) are written in our
  JSON error shape instead of its HTML page.

How many uploads may read bodies at once (the threads a slow-but-legal uploader can hold) is
bounded in the app (``FEATHERBEAT_MAX_UPLOADS``, see ``featherbeat.web.api``).

Written against gunicorn 27's ``ThreadWorker`` (``accept``, ``enqueue_req``,
``on_client_socket_readable``, ``murder_keepalived``, ``TConn``); ``tests/service/test_security.py``
drives it with real slow clients. TLS terminated by gunicorn itself (``certfile``) and HTTP/2
prior knowledge skip the head gate (their bytes are not plain HTTP/1 heads): terminate TLS in
front of the process, as every documented deployment does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import selectors
import socket
import threading
import time
from collections import Counter
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

from featherbeat.config import PRIVATE_UMASK, Settings

HEAD_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024
LINGER_SECONDS = 2.0  # how long a closing connection may take to read our last answer
LINGER_BYTES = 64 * 1024
DRAIN_SECONDS = 0.02  # an unread request body: what has arrived is drained, then we close


class BodyTooSlowError(TimeoutError):
    """The request body arrives slower than the minimum rate (or not at all)."""


def error_bytes(
    status: int, reason: str, code: str, message: str, headers: dict[str, str] | None = None
) -> bytes:
    """A complete HTTP/1.1 error answer in the service's JSON shape, connection closing."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _json_write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error`` (an HTML page) in our JSON shape."""
    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "bad_request"
    message = (mesg or reason).strip() or reason
    _send(sock, error_bytes(status_int, reason, code, message[:500]))


def _send(sock: Any, data: bytes) -> None:
    """Best effort, never blocking: a refused client that does not read gets nothing."""
    with contextlib.suppress(OSError):
        util.write_nonblock(sock, data)


class GuardedSocket:
    """The client socket as the request parser sees it: every ``recv`` of a body waits at most
    the idle timeout, and no longer than the minimum rate allows (see the module docstring).
    Everything else is the socket's own."""

    def __init__(self, sock: socket.socket, idle: float, grace: float, min_rate: float) -> None:
        self._sock = sock
        self.idle = idle
        self.grace = grace
        self.min_rate = min_rate
        self.outer: float | None = None  # a timeout set by gunicorn (its body drain)
        self.reset()

    def reset(self) -> None:
        """A new request starts: its body gets a fresh allowance."""
        self.started = time.monotonic()
        self.received = 0

    def settimeout(self, value: float | None) -> None:
        self.outer = value

    def gettimeout(self) -> float | None:
        return self.outer

    def recv(self, size: int, *flags: int) -> bytes:
        wait = self.idle
        if self.outer is not None:
            wait = min(wait, self.outer)
        slow = False
        if self.min_rate > 0:
            # The moment the bytes so far stop being enough for the minimum rate.
            due = self.started + self.grace + self.received / self.min_rate
            left = due - time.monotonic()
            if left < wait:
                wait, slow = max(left, 0.001), True
        # The socket's own timeout is put back: responses are written on it too.
        before = self._sock.gettimeout()
        self._sock.settimeout(wait)
        try:
            data = self._sock.recv(size, *flags)
        except TimeoutError:
            if slow:
                raise BodyTooSlowError("the request body arrives too slowly") from None
            raise
        finally:
            self._sock.settimeout(before)
        self.received += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class GuardedConn(TConn):
    """A connection that knows its client and gives back its per-client slot on close."""

    def __init__(self, worker: GuardedThreadWorker, *args: Any) -> None:
        super().__init__(*args)
        self.worker = worker
        addr = self.client
        self.peer = str(addr[0]) if isinstance(addr, tuple) and addr else ""
        self.guarded: GuardedSocket | None = None
        self.head = bytearray()
        self.head_deadline = 0.0
        self.counted = False

    def close(self, graceful: bool = False) -> None:
        self.worker.forget(self)
        if graceful:
            # gunicorn lingers (up to 2 s, reading) on the calling thread, which is the event
            # loop: a client that never closes would freeze accepting for everyone.
            self.worker.linger(self.sock)
            return
        super().close(False)


class GuardedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker with the defences of the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = Settings.from_env()
        self.header_timeout = s.header_timeout
        self.idle_timeout = s.upload_idle_timeout
        self.min_rate = s.upload_min_rate
        self.per_client_cap = s.max_connections_per_client
        self.heading: dict[GuardedConn, None] = {}  # insertion order = deadline order
        self.lingering: dict[socket.socket, tuple[float, int]] = {}  # deadline, bytes read
        self.clients: Counter[str] = Counter()
        self.clients_lock = threading.Lock()

    def load_wsgi(self) -> None:
        """The app asks for the connection to close with a ``Connection: close`` header, which
        gunicorn drops as hop-by-hop and then answers "keep-alive" (and closes anyway after a
        refused upload): make gunicorn close, and say so."""
        super().load_wsgi()
        app: Any = getattr(self, "wsgi")  # noqa: B009 (gunicorn sets it untyped)

        def closing_app(environ: dict[str, Any], start_response: Any) -> Any:
            def respond(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
                if any(k.lower() == "connection" and v.lower() == "close" for k, v in headers):
                    response = getattr(start_response, "__self__", None)
                    if response is not None and hasattr(response, "force_close"):
                        response.force_close()
                return start_response(status, headers, *exc_info)

            return app(environ, respond)

        self.wsgi = closing_app

    def handle_quit(self, sig: int, frame: Any) -> None:
        """SIGQUIT (the master's quick stop) and SIGINT (Ctrl-C): leave at once.

        gthread's own handler first shuts its thread pool down, which takes the pool's lock. A
        Python signal handler runs in the main thread, between two bytecodes of whatever it
        was doing: when that was ``submit()`` (which holds the same lock while it waits for a
        new pool thread to start, long on a loaded machine), the worker deadlocked on itself
        and lived on until the master SIGKILLed it 25 s later (graceful_timeout). Nothing here
        takes a lock; ``worker_int`` (gunicorn_conf) is os._exit(0)."""
        self.alive = False
        self.cfg.worker_int(self)
        os._exit(0)

    def init_process(self) -> None:
        util.write_error = _json_write_error  # gunicorn's refusals in our JSON shape
        os.umask(PRIVATE_UMASK)  # uploads, results and jobs.db readable by our user only
        super().init_process()

    # -- accepting --------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                return
            raise
        conn = GuardedConn(self, self.cfg, sock, addr, listener.getsockname())
        if self.per_client_cap and self.clients[conn.peer] >= self.per_client_cap:
            _send(
                sock,
                error_bytes(
                    429,
                    "Too Many Requests",
                    "too_many_connections",
                    f"This address already holds {self.per_client_cap} connections to the "
                    "server; close some and retry.",
                    {"Retry-After": "5"},
                ),
            )
            self.linger(sock)
            return
        with self.clients_lock:
            self.clients[conn.peer] += 1
        conn.counted = True
        self.nr_conns += 1
        self.wait_head(conn)

    def forget(self, conn: GuardedConn) -> None:
        if conn.counted:
            conn.counted = False
            with self.clients_lock:
                self.clients[conn.peer] -= 1
                if self.clients[conn.peer] <= 0:
                    del self.clients[conn.peer]

    def _gated(self, conn: GuardedConn) -> bool:
        return not self.cfg.is_ssl and not negotiation.prior_knowledge_allowed(
            self.cfg, conn.client
        )

    # -- the head gate ----------------------------------------------------------------------

    def wait_head(self, conn: GuardedConn) -> None:
        if not self._gated(conn):
            conn.sock.setblocking(True)
            self.enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        conn.head = bytearray()
        conn.head_deadline = time.monotonic() + self.header_timeout
        self.heading[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_head_data, conn))

    def on_client_socket_readable(self, conn: GuardedConn, client: Any) -> None:
        """A kept-alive connection's next request starts: through the gate as well."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.wait_head(conn)

    def on_head_data(self, conn: GuardedConn, _sock: Any) -> None:
        try:
            data = conn.sock.recv(MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before its request was complete
            self._end_heading(conn)
            self.nr_conns -= 1
            conn.close()
            return
        searched_from = max(0, len(conn.head) - 3)
        conn.head += data
        if conn.head.find(HEAD_END, searched_from) < 0:
            if len(conn.head) > MAX_HEAD:
                self._refuse(
                    conn,
                    error_bytes(
                        431,
                        "Request Header Fields Too Large",
                        "headers_too_large",
                        f"The request head is larger than {MAX_HEAD // 1024} KiB.",
                    ),
                )
            return
        self._end_heading(conn)
        head, conn.head = bytes(conn.head), bytearray()
        if conn.parser is None:  # a new connection: its parser reads through the guard
            conn.guarded = GuardedSocket(
                conn.sock, self.idle_timeout, self.header_timeout, self.min_rate
            )
            conn.parser = http.get_parser(self.cfg, conn.guarded, conn.client)
        conn.parser.unreader.unread(head)
        conn.data_ready = True  # the head is in the parser: no waiting for the socket
        self.enqueue_req(conn)

    def _end_heading(self, conn: GuardedConn) -> None:
        self.heading.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _refuse(self, conn: GuardedConn, answer: bytes) -> None:
        self._end_heading(conn)
        _send(conn.sock, answer)
        self.nr_conns -= 1
        conn.close(graceful=True)

    # -- closing without blocking the event loop ---------------------------------------------

    def linger(self, sock: socket.socket) -> None:
        """Half-close, then read what the client still sends until it closes or
        ``LINGER_SECONDS`` pass, in the event loop (RFC 9112 9.6: closing with unread bytes
        would reset the connection and could cut off our last answer)."""
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            self.poller.register(sock, selectors.EVENT_READ, self.on_linger_data)
        except (OSError, ValueError, KeyError):
            util.close(sock)
            return
        self.lingering[sock] = (time.monotonic() + LINGER_SECONDS, 0)

    def on_linger_data(self, sock: socket.socket) -> None:
        deadline, read = self.lingering.get(sock, (0.0, 0))
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        read += len(data)
        if data and read < LINGER_BYTES:
            self.lingering[sock] = (deadline, read)
            return
        self._end_linger(sock)

    def _end_linger(self, sock: socket.socket) -> None:
        self.lingering.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(sock)
        util.close(sock)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        now = time.monotonic()
        for sock, (deadline, _read) in list(self.lingering.items()):
            if force or deadline <= now:
                self._end_linger(sock)
        for conn in list(self.heading):
            if not force and conn.head_deadline > now:
                break
            self._refuse(
                conn,
                error_bytes(
                    408,
                    "Request Timeout",
                    "request_timeout",
                    f"The request head did not arrive within {self.header_timeout:g} seconds.",
                ),
            )

    # -- per request ------------------------------------------------------------------------

    def handle(self, conn: GuardedConn) -> Any:
        if conn.guarded is not None:
            conn.guarded.reset()
        return super().handle(conn)

    def _keepalive_after(self, conn: GuardedConn, keepalive: bool) -> bool:
        """gunicorn drains a body the app did not read for up to 5 s on a pool thread before
        reusing the connection; a client announcing a body it never sends would hold the
        thread that long on every request. Drain what is there at once, else close."""
        if not keepalive:
            return False
        return bool(conn.parser.finish_body(deadline=time.monotonic() + DRAIN_SECONDS))
