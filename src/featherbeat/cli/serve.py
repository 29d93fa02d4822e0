"""``featherbeat serve``: the whole service on one box: gunicorn (web) + the job consumer.

Two child processes under a tiny supervisor: the consumer starts first (its start-up
reaper re-enqueues whatever a previous run left), then gunicorn. A consumer that dies is
restarted (the web keeps answering meanwhile); if gunicorn dies the service stops with an
error so the platform restarts it. SIGINT/SIGTERM stop both (SIGTERM, then SIGKILL after
``STOP_GRACE`` seconds). The supervisor imports nothing heavy: it is one more process in
the 200 MB budget.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

STOP_GRACE = 25.0
RESTART_DELAY = 1.0  # doubled (up to MAX_RESTART_DELAY) while the consumer keeps dying young
MAX_RESTART_DELAY = 30.0
STABLE_AFTER = 60.0  # a consumer that lived this long resets the delay


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the web service and its job consumer (http://127.0.0.1:8000)",
        description="Run gunicorn (the HTTP API and the page) and the job consumer together; "
        "settings come from FEATHERBEAT_* environment variables (docs/deployment.md).",
    )
    parser.add_argument("--host", help="interface to listen on (default: HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: 1)")
    parser.add_argument("--threads", type=int, help="threads per gunicorn worker (default: 16)")
    parser.add_argument("--concurrency", type=int, help="analyses at once (default: 1)")
    parser.set_defaults(func=run)


def _env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    for flag, name in (
        ("host", "HOST"),
        ("port", "PORT"),
        ("workers", "WEB_CONCURRENCY"),
        ("threads", "FEATHERBEAT_THREADS"),
        ("concurrency", "FEATHERBEAT_CONCURRENCY"),
    ):
        value = getattr(args, flag)
        if value is not None:
            if flag != "host" and int(value) < (0 if flag == "port" else 1):
                raise ValueError(
                    f"--{flag} must be at least {0 if flag == 'port' else 1}, got {value}"
                )
            env[name] = str(value)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def web_command() -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", "python:featherbeat.web.gunicorn_conf"]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "featherbeat.cli", "worker"]


def run(args: argparse.Namespace) -> int:
    from featherbeat.config import Settings

    try:
        env = _env(args)
        # Validate the settings once here so a typo fails with one line, not two tracebacks.
        Settings.from_env(env)
    except ValueError as exc:  # ConfigError is a ValueError
        print(f"featherbeat serve: {exc}", file=sys.stderr)
        return 2
    # Become a bare interpreter running only this file (stdlib, no site-packages, no
    # featherbeat package): the supervisor lives as long as the service, so the ~5 MB that
    # argparse, the CLI and site cost are worth shedding. Its children get the full env.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-I", "-S", __file__, "--supervise"], env)


class Supervisor:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.stopping = False
        self.worker: subprocess.Popen[bytes] | None = None
        self.web: subprocess.Popen[bytes] | None = None

    def _stop(self, signum: int, _frame: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.worker = subprocess.Popen(worker_command(), env=self.env)  # noqa: S603
        self.web = subprocess.Popen(web_command(), env=self.env)  # noqa: S603
        code, delay, born = 0, RESTART_DELAY, time.monotonic()
        while not self.stopping:
            time.sleep(0.2)
            if self.stopping:
                # Ctrl-C reaches the whole process group: the children exit by themselves at
                # the same moment; that is a clean stop, not a crash to report or restart.
                break
            if self.web.poll() is not None:
                print(
                    f"featherbeat serve: gunicorn exited ({self.web.returncode}); stopping",
                    file=sys.stderr,
                )
                code = 1
                break
            if self.worker.poll() is not None:
                if time.monotonic() - born > STABLE_AFTER:
                    delay = RESTART_DELAY
                print(
                    f"featherbeat serve: consumer exited ({self.worker.returncode}); "
                    f"restarting it in {delay:g} s",
                    file=sys.stderr,
                )
                # Sleep in small steps so a SIGTERM meanwhile still stops the service at once.
                until = time.monotonic() + delay
                while time.monotonic() < until and not self.stopping:
                    time.sleep(0.1)
                if self.stopping:
                    break
                delay = min(delay * 2, MAX_RESTART_DELAY)
                born = time.monotonic()
                self.worker = subprocess.Popen(worker_command(), env=self.env)  # noqa: S603
        self.shutdown()
        return code

    def shutdown(self) -> None:
        procs = [p for p in (self.web, self.worker) if p is not None and p.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__" and sys.argv[1:] == ["--supervise"]:
    sys.exit(Supervisor(dict(os.environ)).run())
