"""A real redis-server for the scale-out tests: free 127.0.0.1 port, temp dir, AOF on.

Tests drive the Debian ``redis-server`` binary for real (no fakeredis): the point of the
scale-out tests is what survives a ``kill -9`` and a restart, which only a real server with
its append-only file can show. ``restart()`` keeps the port and the directory so clients
reconnect to the same URL and the AOF is replayed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1 with its data in ``directory``."""

    def __init__(
        self, directory: Path, port: int | None = None, password: str | None = None
    ) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not on PATH; run `make system-deps`")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        # appendfsync always: a job accepted (HSET + enqueue acknowledged) must survive a
        # restart right after, which is exactly what the fault test checks.
        args = [
            str(REDIS_SERVER),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            "--maxclients", "1000",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self.wait_ready(timeout)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                if self.password:
                    sock.sendall(f"AUTH {self.password}\r\n".encode())
                    if not sock.recv(64).startswith(b"+OK"):
                        return False
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
            # While loading the AOF redis answers -LOADING, so only +PONG means ready.
            if self.ping():
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} not ready after {timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """SIGTERM lets redis flush the AOF; SIGKILL simulates a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def aof_files(self) -> list[Path]:
        return sorted(p for p in self.directory.rglob("*.aof*") if p.is_file())


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server per test (skips when redis-server is not installed)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make system-deps)")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One redis-server for a whole module (contract tests separate their keys by prefix)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make system-deps)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def redis_env(server: RedisServer) -> dict[str, str]:
    """Environment for a featherbeat process pointed at ``server``."""
    env = dict(os.environ)
    env["FEATHERBEAT_BROKER"] = server.url
    return env


# -- a whole scale-out deployment on one machine: web processes and workers on one Redis --------


def wav_bytes(seed: int, seconds: float, sr: int = 22050) -> bytes:
    """A short, distinct (per seed) WAV: clicks at a seed-dependent tempo over a tone and noise."""
    import io
    import wave

    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = 0.03 * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * (110 + seed % 200) * t)
    for beat in np.arange(0.05, seconds - 0.05, 60.0 / (80 + seed % 90)):
        i = int(beat * sr)
        y[i : i + 200] += 0.7 * np.hanning(400)[200:]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(sr)
        wf.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


class Deployment:
    """Gunicorn web processes and ``featherbeat worker`` processes sharing one redis-server.

    Every process logs to its own file under ``root`` (the workers' JSON job events are what
    the tests count). Each web process gets its own port and data dir, like separate machines.
    """

    def __init__(self, root: Path, server: RedisServer, **env: str) -> None:
        self.root = Path(root)
        self.server = server
        self.env = dict(os.environ)
        self.env.update(
            FEATHERBEAT_BROKER=server.url,
            OPENBLAS_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
            FEATHERBEAT_LOG_LEVEL="warning",
            # Every client here is 127.0.0.1: per-client limits would count them all as one.
            FEATHERBEAT_CLIENT_UPLOADS_PER_MINUTE="0",
            FEATHERBEAT_CLIENT_QUEUE_SHARE="100000",
        )
        self.env.update(env)
        self.webs: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}
        self.workers: dict[int, subprocess.Popen[bytes]] = {}

    def _spawn(self, name: str, args: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        return subprocess.Popen(
            args,
            cwd=self.root,
            env={**self.env, "FEATHERBEAT_DATA_DIR": str(self.root / name), **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_web(self, index: int, port: int | None = None, timeout: float = 30.0) -> int:
        port = port or free_port()
        # The service's own gunicorn settings (gthread), as `featherbeat serve` starts it.
        args = [sys.executable, "-m", "gunicorn", "-c", "python:featherbeat.web.gunicorn_conf"]
        proc = self._spawn(f"web{index}", args, HOST="127.0.0.1", PORT=str(port))
        self.webs[index] = (port, proc)
        self.wait_http(port, proc, timeout)
        return port

    def wait_http(self, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"web process on {port} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise TimeoutError(f"web process on {port} not answering after {timeout}s")

    def stop_web(self, index: int) -> int:
        port, proc = self.webs.pop(index)
        _terminate(proc)
        return port

    def start_worker(self, index: int) -> subprocess.Popen[bytes]:
        proc = self._spawn(f"worker{index}", [sys.executable, "-m", "featherbeat.cli", "worker"])
        self.workers[index] = proc
        return proc

    def wait_workers_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for index, proc in self.workers.items():
            while not any(e["event"] == "consumer.started" for e in self.events(f"worker{index}")):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker{index} did not start: {self.log(f'worker{index}')}")
                time.sleep(0.05)

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.webs[index][0]}"

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def events(self, name: str) -> list[dict]:
        out = []
        for line in self.log(name).splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def worker_events(self, event: str) -> list[tuple[int, dict]]:
        """(worker index, event) of every ``event`` line in every worker's log."""
        return [
            (index, e)
            for index in sorted(self.workers_seen())
            for e in self.events(f"worker{index}")
            if e.get("event") == event
        ]

    def workers_seen(self) -> set[int]:
        return {int(p.stem[6:]) for p in self.root.glob("worker*.log")}

    def close(self) -> None:
        for index in list(self.webs):
            self.stop_web(index)
        for proc in self.workers.values():
            _terminate(proc)


def _terminate(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def http(
    method: str, url: str, body: bytes | None = None, timeout: float = 30.0
) -> tuple[int, dict, dict[str, str]]:
    """One request; (status, JSON body or {}, headers). HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, headers = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, raw, headers = exc.code, exc.read(), dict(exc.headers)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {"raw": raw}
    return status, data, headers
