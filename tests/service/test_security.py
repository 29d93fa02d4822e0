"""Hostile clients against a real gunicorn + consumer on 127.0.0.1 (issue 14).

Each test reproduces one way a client on the open internet could hurt the service or other
users, in bounded loops, and checks the defence: refusals are 4xx JSON errors naming the
problem, nothing is left on disk, and the service keeps answering.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from featherbeat.testing.service import Service, running_service
from featherbeat.testing.signals import click_track, write_audio

pytestmark = pytest.mark.service

MB = 1024 * 1024


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    env = {
        "FEATHERBEAT_MAX_UPLOAD_MB": "1",
        "FEATHERBEAT_UPLOAD_IDLE_TIMEOUT": "1",
        "FEATHERBEAT_INCOMING_MAX_AGE": "2",
    }
    with running_service(tmp_path_factory.mktemp("security"), env) as service:
        yield service


# --- helpers -----------------------------------------------------------------------------------


def leftovers(svc: Service) -> list[str]:
    """Every file a refused upload could have left: temp uploads and stored uploads (results
    belong to accepted uploads)."""
    found = []
    for folder in ("incoming", "blobs/uploads"):
        root = svc.data_dir / folder
        if root.is_dir():
            found += [str(p.relative_to(svc.data_dir)) for p in root.rglob("*") if p.is_file()]
    return found


def wait_no_leftovers(svc: Service, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (left := leftovers(svc)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"left on disk: {left}"


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (headers, then Content-Length bytes of body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def stream_request(
    port: int, head: bytes, pieces: Iterable[bytes], pause: float = 0.0
) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` then ``pieces``; stop sending as soon as the server answers (it may
    refuse early and close), then read that answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for piece in pieces:
                if select.select([sock], [], [], pause)[0]:
                    break  # an early answer
                sock.sendall(piece)
        return read_response(sock)


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def part_head(boundary: str, name: str, filename: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: audio/wav\r\n\r\n'
    ).encode()


def error_of(status: int, body: bytes) -> dict[str, Any]:
    assert 400 <= status < 500, (status, body[:300])
    error = json.loads(body)["error"]
    assert error["code"] and error["message"], error
    return error


# --- 14.1: failed uploads never fill the disk -------------------------------------------------


def test_many_file_parts_in_one_chunked_request_leave_nothing(svc: Service) -> None:
    """Nine file parts of 0.9 MB each, each under the 1 MB limit, chunked: refused, and no
    part is left on disk (each used to land in its own temp file, kept after the 413)."""
    boundary = uuid.uuid4().hex
    head = (
        "POST /api/v1/analyses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()

    def pieces() -> Iterator[bytes]:
        for i in range(9):
            yield chunked(part_head(boundary, "file", f"part{i}.wav"))
            for _ in range(9):
                yield chunked(b"\x01" * 100_000)
            yield chunked(b"\r\n")
        yield chunked(f"--{boundary}--\r\n".encode()) + b"0\r\n\r\n"

    status, _, body = stream_request(svc.port, head, pieces())
    assert error_of(status, body)["code"] in ("too_many_files", "too_large")
    wait_no_leftovers(svc)
    assert svc.request("GET", "/healthz")[0] == 200


def test_one_oversized_part_chunked_leaves_nothing(svc: Service) -> None:
    boundary = uuid.uuid4().hex
    head = (
        "POST /api/v1/analyses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    pieces = [chunked(part_head(boundary, "file", "big.wav"))]
    pieces += [chunked(b"\x02" * 100_000)] * 15  # 1.5 MB, over the 1 MB limit
    status, _, body = stream_request(svc.port, head, pieces)
    assert status == 413 and error_of(status, body)["code"] == "too_large"
    wait_no_leftovers(svc)


def test_stalled_multipart_upload_leaves_nothing(svc: Service) -> None:
    boundary = uuid.uuid4().hex
    first = part_head(boundary, "file", "stall.wav") + b"\x03" * 200_000
    head = (
        "POST /api/v1/analyses HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as sock:
        sock.sendall(head + first)  # then nothing: the idle timeout is 1 s
        status, headers, body = read_response(sock)
    assert status == 408 and error_of(status, body)["code"] == "upload_stalled"
    assert headers["connection"] == "close"  # it closes, and says so (was "keep-alive")
    wait_no_leftovers(svc)


def test_abandoned_multipart_upload_leaves_nothing(svc: Service) -> None:
    boundary = uuid.uuid4().hex
    head = (
        "POST /api/v1/analyses HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as sock:
        sock.sendall(head + part_head(boundary, "file", "gone.wav") + b"\x04" * 300_000)
        time.sleep(0.3)
    wait_no_leftovers(svc)
    assert svc.request("GET", "/healthz")[0] == 200


def test_upload_of_a_killed_web_process_is_swept(svc: Service) -> None:
    """A web worker killed mid-upload cannot clean up: its temp file is swept on a schedule
    (FEATHERBEAT_INCOMING_MAX_AGE=2 here), not only when the consumer restarts."""
    assert svc.web is not None
    boundary = uuid.uuid4().hex
    head = (
        "POST /api/v1/analyses HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    incoming = svc.data_dir / "incoming"
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as sock:
        sock.sendall(head + part_head(boundary, "file", "killed.wav") + b"\x05" * 300_000)
        deadline = time.monotonic() + 5
        while not any(incoming.glob("upload-*")):
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.05)
        for pid in svc.children(svc.web.pid):
            os.kill(pid, signal.SIGKILL)
    assert any(incoming.glob("upload-*")), "the killed worker's file is still there"
    wait_no_leftovers(svc, timeout=15)
    deadline = time.monotonic() + 15  # the master has started a fresh worker
    while svc.request("GET", "/healthz", timeout=2)[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


# --- 14.3: the same bytes from two uploaders ---------------------------------------------------


def test_second_uploader_gets_own_id_and_cannot_delete_the_first(
    svc: Service, tmp_path: Path
) -> None:
    clicks = click_track(117.0, 4.0)
    data = write_audio(tmp_path, "mine", clicks.audio, clicks.sr, "wav").read_bytes()
    status, alice = svc.upload(data, "alice-private-name.wav")
    assert status == 202
    alice = svc.wait_done(alice["id"])
    status, bob = svc.upload(data, "bob.wav")
    # Bob sees his own id, name and times, and the same status code as for a new file.
    assert status == 202 and bob["id"] != alice["id"], bob
    assert bob["filename"] == "bob.wav" and "alice" not in json.dumps(bob)
    assert bob["created_at"] >= alice["finished_at"] and bob["finished_at"] >= bob["created_at"]
    assert bob["status"] == "done"  # the shared analysis: no second run
    # Bob deletes: only his id goes; Alice's analysis and result stay.
    assert svc.request("DELETE", f"/api/v1/analyses/{bob['id']}")[0] == 204
    assert svc.json("GET", f"/api/v1/analyses/{bob['id']}")[0] == 404
    assert svc.job(alice["id"])["filename"] == "alice-private-name.wav"
    code, _, body = svc.request("GET", alice["links"]["analysis"])
    assert code == 200 and json.loads(body)["track"]
    # Carol shares it too; Alice deletes; Carol still reads it; Carol's delete removes it all.
    carol = svc.upload(data, "carol.wav")[1]
    assert svc.request("DELETE", f"/api/v1/analyses/{alice['id']}")[0] == 204
    assert svc.json("GET", f"/api/v1/analyses/{alice['id']}")[0] == 404
    code, _, _ = svc.request("GET", carol["links"]["analysis"])
    assert code == 200
    results = svc.data_dir / "blobs" / "results" / alice["id"]
    assert results.is_dir()
    assert svc.request("DELETE", f"/api/v1/analyses/{carol['id']}")[0] == 204
    assert not results.exists(), "the shared result goes with its last id"


# --- 10.12: a stored upload is never left without its record ----------------------------------


def test_upload_whose_record_cannot_be_written_leaves_no_blob(svc: Service, tmp_path: Path) -> None:
    """Another process holds the job store's write lock longer than the store waits (10 s):
    the upload is refused 503 and the copy it stored is deleted, not orphaned."""
    import sqlite3

    clicks = click_track(143.0, 3.0)
    data = write_audio(tmp_path, "locked", clicks.audio, clicks.sr, "wav").read_bytes()
    uploads_dir = svc.data_dir / "blobs" / "uploads"
    before = set(uploads_dir.iterdir()) if uploads_dir.is_dir() else set()
    db = sqlite3.connect(svc.data_dir / "jobs.db", isolation_level=None, timeout=30)
    try:
        db.execute("BEGIN IMMEDIATE")
        status, body = svc.upload(data, "locked.wav")
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert status == 503, body
    assert body["error"]["code"] == "store_unavailable"
    after = set(uploads_dir.iterdir()) if uploads_dir.is_dir() else set()
    assert after == before, "the stored upload of a job that was never recorded is deleted"
    assert not list((svc.data_dir / "incoming").iterdir())
    status, job = svc.upload(data, "locked.wav")  # the store is back: accepted
    assert status == 202 and svc.wait_done(job["id"])["status"] == "done"
    assert svc.request("DELETE", f"/api/v1/analyses/{job['id']}")[0] == 204


# --- 14.2: slow clients cannot stall the service ----------------------------------------------

SLOW_ENV = {
    "FEATHERBEAT_THREADS": "16",  # the production default, whose threads slow clients took
    "FEATHERBEAT_HEADER_TIMEOUT": "4",
    "FEATHERBEAT_UPLOAD_IDLE_TIMEOUT": "30",
    "FEATHERBEAT_MAX_CONNECTIONS_PER_CLIENT": "0",  # every client here is 127.0.0.1
}


def healthz_seconds(port: int, timeout: float = 3.0) -> float:
    """Time for one GET /healthz on a fresh connection (``timeout`` if it never answers)."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, _, _ = read_response(sock, timeout)
            assert status == 200
    except (TimeoutError, OSError):
        return timeout
    return time.monotonic() - started


def probe(port: int, seconds: float) -> list[float]:
    """/healthz latencies, one every 0.2 s for ``seconds``."""
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        latencies.append(healthz_seconds(port))
        time.sleep(0.2)
    return latencies


def test_64_slow_heads_do_not_stall_healthz(tmp_path: Path) -> None:
    """64 sockets send a request line and one header, then nothing: before, they took every
    pool thread and /healthz timed out; now heads wait in the event loop, never on a thread,
    and each is answered 408 (JSON) once FEATHERBEAT_HEADER_TIMEOUT passes."""
    with running_service(tmp_path, SLOW_ENV) as svc:
        slow = []
        try:
            for _ in range(64):
                sock = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nUser-Agent: slow\r\n")
                slow.append(sock)
            latencies = probe(svc.port, 2.5)
            assert max(latencies) < 1.0, latencies
            answers = [read_response(sock) for sock in slow]
        finally:
            for sock in slow:
                sock.close()
        print(f"healthz under 64 slow heads: max {max(latencies) * 1000:.0f} ms")
        assert {status for status, _, _ in answers} == {408}
        assert json.loads(answers[0][2])["error"]["code"] == "request_timeout"
        assert healthz_seconds(svc.port) < 1.0


def test_64_slow_upload_bodies_do_not_stall_healthz(tmp_path: Path) -> None:
    """64 uploads whose bodies trickle in (a byte per 2 s): a bounded share of threads takes
    uploads (the rest are refused 503 at once), those are cut by the minimum body rate (408
    upload_too_slow) and /healthz answers within 1 s throughout."""
    with running_service(tmp_path, SLOW_ENV) as svc:
        head = (
            b"POST /api/v1/analyses?filename=slow.wav HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
        )
        slow = []
        try:
            for _ in range(64):
                sock = socket.create_connection(("127.0.0.1", svc.port), timeout=15)
                sock.sendall(head + b"R")
                slow.append(sock)
            latencies = []
            for _ in range(4):  # a byte from each every 2 s, /healthz probed meanwhile
                latencies += probe(svc.port, 2.0)
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.send(b"I")
            answers = [read_response(sock) for sock in slow]
        finally:
            for sock in slow:
                sock.close()
        print(f"healthz under 64 slow bodies: max {max(latencies) * 1000:.0f} ms")
        assert max(latencies) < 1.0, latencies
        codes = {json.loads(body)["error"]["code"] for _, _, body in answers if body}
        statuses = {status for status, _, _ in answers}
        assert statuses <= {408, 503} and "upload_too_slow" in codes, (statuses, codes)
        assert not leftovers(svc)


def held_connection(port: int, seconds: float = 5.0) -> socket.socket:
    """A kept-alive connection the server has answered (so accepted and counted). The
    server counts a connection until it notices its close, so the one the harness' readiness
    probe just closed may still hold a slot: a 429 here is retried (bounded)."""
    deadline = time.monotonic() + seconds
    while True:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = read_response(sock)
        if status == 200:
            return sock
        sock.close()
        assert status == 429 and time.monotonic() < deadline, status
        time.sleep(0.05)


def test_connections_per_client_are_capped(tmp_path: Path) -> None:
    env = {**SLOW_ENV, "FEATHERBEAT_MAX_CONNECTIONS_PER_CLIENT": "4"}
    with running_service(tmp_path, env) as svc:
        idle = [held_connection(svc.port) for _ in range(4)]
        try:
            with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as extra:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                status, headers, body = read_response(extra)
            assert status == 429 and headers.get("retry-after") == "5"
            assert json.loads(body)["error"]["code"] == "too_many_connections"
            idle.pop().close()  # one goes: a new connection is served again
            deadline = time.monotonic() + 5
            while svc.request("GET", "/healthz", timeout=3)[0] != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            for sock in idle:
                sock.close()


# --- 14.9: protocol faults are 4xx JSON errors -------------------------------------------------


def test_malformed_chunked_body_is_a_json_400(svc: Service) -> None:
    head = (
        b"POST /api/v1/analyses?filename=x.wav HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    status, _, body = stream_request(svc.port, head, [b"zz\r\nRIFF\r\n0\r\n\r\n"])
    assert status == 400 and error_of(status, body)["code"] == "malformed_body", body
    wait_no_leftovers(svc)


def test_gunicorn_refusals_are_json(svc: Service) -> None:
    for raw, expected in (
        (b"NOT A REQUEST LINE\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", 431),
    ):
        with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as sock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(raw)
            status, headers, body = read_response(sock)
        assert status == expected, (status, body[:200])
        assert headers["content-type"] == "application/json"
        assert error_of(status, body)["message"]
    assert svc.request("GET", "/healthz")[0] == 200


# --- 14.4: per-client limits ------------------------------------------------------------------


def test_one_client_cannot_fill_the_queue_for_everyone(tmp_path: Path) -> None:
    """Before: 200 uploads from one client took the whole queue (51 accepted, then queue_full
    for everyone). Now one client gets its share (3 here) and a rate (6 a minute), both 429,
    while another client is still accepted."""
    env = {
        "FEATHERBEAT_CLIENT_ADDRESS_HEADER": "X-Forwarded-For",  # two clients on loopback
        "FEATHERBEAT_CLIENT_UPLOADS_PER_MINUTE": "6",
        "FEATHERBEAT_CLIENT_QUEUE_SHARE": "3",
        "FEATHERBEAT_QUEUE_LIMIT": "20",
    }
    files = []
    for i in range(8):
        clicks = click_track(90.0 + 7 * i, 1.5)
        files.append(write_audio(tmp_path, f"t{i}", clicks.audio, clicks.sr, "wav"))
    with running_service(tmp_path / "svc", env) as svc:
        svc.stop_worker()  # jobs stay queued
        greedy = {"X-Forwarded-For": "198.51.100.1"}
        answers = [svc.upload(path, headers=greedy) for path in files[:7]]
        statuses = [status for status, _ in answers]
        codes = [(body.get("error") or {}).get("code") for _, body in answers]
        assert statuses[:3] == [202, 202, 202], answers
        assert codes[3:6] == ["client_queue_full"] * 3, codes
        assert codes[6] == "too_many_uploads" and statuses[6] == 429, answers[6]
        status, other = svc.upload(files[7], headers={"X-Forwarded-For": "203.0.113.9"})
        assert status == 202, other
        assert svc.json("GET", "/healthz")[1]["jobs"]["queued"] == 4


def test_bytes_that_failed_as_bad_input_are_refused_at_once(svc: Service, tmp_path: Path) -> None:
    clicks = click_track(108.0, 6.0)
    whole = write_audio(tmp_path, "whole", clicks.audio, clicks.sr, "m4a").read_bytes()
    broken = whole[: len(whole) // 2]  # passes the header sniff, fails in the decoder
    status, first = svc.upload(broken, "first-name.m4a")
    assert status == 202, first
    assert svc.wait_done(first["id"])["error"]["code"] == "not_audio"
    counts = svc.json("GET", "/healthz")[1]["jobs"]
    started = time.monotonic()
    status, again = svc.upload(broken, "second-name.m4a")
    assert status == 415 and again["error"]["code"] == "not_audio", again
    assert "second-name.m4a" in again["error"]["message"]
    assert "first-name" not in again["error"]["message"]
    assert time.monotonic() - started < 2.0
    assert svc.json("GET", "/healthz")[1]["jobs"] == counts  # no second analysis
    assert not leftovers(svc)


# --- 10.3 / 14.7: no server paths or library internals in what clients read -------------------


def _many_channels_wav(channels: int = 2000) -> bytes:
    """A WAV whose header passes the upload check but which no decoder opens."""
    import struct

    data = b"\0" * (channels * 2 * 4)
    fmt = struct.pack(
        "<HHIIHH", 1, channels, 44100, 44100 * channels * 2, channels * 2 & 0xFFFF, 16
    )
    return (
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
        + b"fmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", len(data)) + data
    )  # fmt: skip


def _assert_public(message: str, job_id: str) -> None:
    for leak in ("/", "blobs", "uploads", job_id, "avcodec", "returned", "Errno", "Traceback"):
        assert leak not in message, (leak, message)


def test_errors_name_the_upload_never_a_server_path(svc: Service, tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "weird.wav"
    path.write_bytes(_many_channels_wav())
    status, job = svc.upload(path)
    assert status == 202, job
    job = svc.wait_done(job["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "not_audio", job
    message = job["error"]["message"]
    assert message.startswith("weird.wav: "), message
    _assert_public(message, job["id"])
    status, body = svc.json("GET", f"/api/v1/analyses/{job['id']}/analysis")
    assert status == 409
    _assert_public(body["error"]["message"], job["id"])
    # The CLI's --via shows the service's message: named, no path either.
    done = subprocess.run(
        [sys.executable, "-m", "featherbeat.cli", "analyze", "--via", svc.base_url, str(path)],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    stderr = done.stderr.decode()
    assert "weird.wav" in stderr and "blobs" not in stderr and "avcodec" not in stderr, stderr
    assert str(svc.data_dir) not in stderr, stderr


def test_public_message_drops_paths_and_internals() -> None:
    from featherbeat.jobs.runner import public_message

    raw = (
        "weird.wav: not a readable audio file (Error opening "
        "'/srv/app/var/blobs/uploads/oV3bR2m0Yw6aQ9t1PqX5Lw': Too many channels specified.)"
    )
    shown = public_message(raw, "weird.wav", "/srv/app/var")
    assert (
        shown
        == "weird.wav: not a readable audio file (Error opening 'weird.wav': Too many channels specified.)"
    )
    assert public_message(
        "x: cannot decode (avcodec_open2(...) returned 22: Invalid data)", "x"
    ) == ("x: cannot decode (Invalid data)")
    kept = "a.m4a: not a readable audio file (MP4/M4A without its index, truncated or incomplete)"
    assert public_message(kept, "a.m4a") == kept


# --- 14.5 / 14.6: cross-site requests and the page's headers ----------------------------------


def test_state_changing_requests_from_another_origin_are_refused(
    svc: Service, tmp_path: Path
) -> None:
    clicks = click_track(97.0, 2.0)
    wav = write_audio(tmp_path, "origin", clicks.audio, clicks.sr, "wav")
    status, body = svc.upload(wav, headers={"Origin": "https://evil.example"})
    assert status == 403 and body["error"]["code"] == "cross_origin", body
    status, body = svc.upload(wav, headers={"Origin": "null"})
    assert status == 403
    status, job = svc.upload(wav, headers={"Origin": svc.base_url})  # our own page
    assert status == 202, job
    status, _, body = svc.request(
        "DELETE", f"/api/v1/analyses/{job['id']}", headers={"Origin": "https://evil.example"}
    )
    assert status == 403 and json.loads(body)["error"]["code"] == "cross_origin"
    assert svc.request("DELETE", f"/api/v1/analyses/{job['id']}")[0] == 204  # no Origin: a CLI


def test_page_and_api_carry_security_headers(svc: Service) -> None:
    status, headers, _ = svc.request("GET", "/")
    assert status == 200
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    status, headers, _ = svc.request("GET", "/api/v1/config")
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


# --- 14.10: hardening --------------------------------------------------------------------------


def test_data_dir_and_what_it_holds_are_private(tmp_path: Path) -> None:
    clicks = click_track(99.0, 2.0)
    wav = write_audio(tmp_path, "private", clicks.audio, clicks.sr, "wav")
    with running_service(tmp_path / "svc", {"FEATHERBEAT_KEEP_UPLOADS": "1"}) as svc:
        job = svc.wait_done(svc.upload(wav)[1]["id"])
        assert job["status"] == "done"
        assert svc.data_dir.stat().st_mode & 0o777 == 0o700
        files = [p for p in svc.data_dir.rglob("*") if p.is_file()]
        assert any(p.name == "jobs.db" for p in files) and any("results" in p.parts for p in files)
        shared = [str(p) for p in files if p.stat().st_mode & 0o077]
        assert not shared, f"readable by other users: {shared}"


def test_analysis_child_gets_no_secrets() -> None:
    from featherbeat.jobs.supervise import child_env

    env = child_env(
        {
            "PATH": "/usr/bin",
            "LANG": "C.UTF-8",
            "PYTHONPATH": "/app/src",
            "OMP_NUM_THREADS": "1",
            "FEATHERBEAT_RHYTHM": "learned",
            "FEATHERBEAT_API_TOKEN": "s3cret",
            "FEATHERBEAT_BROKER": "redis://:pw@redis:6379/0",
            "AWS_SECRET_ACCESS_KEY": "k",
            "REDIS_PASSWORD": "pw",
        }
    )
    assert env == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": "/app/src",
        "OMP_NUM_THREADS": "1",
        "FEATHERBEAT_RHYTHM": "learned",  # the analysis' own setting, no secret
    }


def test_ranges_lengths_and_containers_answer_as_the_rfcs_say(tmp_path: Path) -> None:
    """416 carries Content-Range: bytes */N; a Range in another unit is ignored; a FLAC whose
    header leaves the length open (total_samples 0) is analysed, not refused as 7 trillion
    minutes long."""
    clicks = click_track(112.0, 4.0)
    flac = bytearray(write_audio(tmp_path, "open", clicks.audio, clicks.sr, "flac").read_bytes())
    flac[8 + 13] &= 0xF0  # STREAMINFO total samples: 0 ("unknown", legal)
    flac[8 + 14 : 8 + 18] = b"\0\0\0\0"
    with running_service(tmp_path / "svc", {"FEATHERBEAT_KEEP_UPLOADS": "1"}) as svc:
        status, job = svc.upload(bytes(flac), "open-length.flac")
        assert status == 202, job
        job = svc.wait_done(job["id"])
        assert job["status"] == "done", job
        audio = job["links"]["audio"]
        status, headers, body = svc.request("GET", audio, headers={"Range": "bytes=99999999-"})
        assert status == 416 and headers["content-range"] == f"bytes */{len(flac)}"
        assert json.loads(body)["error"]["code"]
        status, headers, body = svc.request("GET", audio, headers={"Range": "items=0-10"})
        assert status == 200 and len(body) == len(flac)


def _ogg_page(serial: int, payload: bytes, bos: bool) -> bytes:
    import struct

    head = b"OggS\0" + bytes([2 if bos else 0]) + struct.pack("<qIII", 0, serial, 0, 0)
    return head + bytes([1, len(payload)]) + payload  # one segment


def test_ogg_with_cover_art_stream_first_is_audio(tmp_path: Path) -> None:
    from featherbeat.web.sniff import sniff

    clicks = click_track(100.0, 3.0)
    vorbis = write_audio(tmp_path, "v", clicks.audio, clicks.sr, "ogg").read_bytes()
    theora = _ogg_page(0x7E57, b"\x80theora" + b"\0" * 34, bos=True)
    path = tmp_path / "with-cover.ogg"
    path.write_bytes(theora + vorbis)
    found = sniff(path)
    assert found.format == "ogg" and found.duration is not None
    assert abs(found.duration - 3.0) < 0.2


def test_crafted_mp4_with_millions_of_boxes_is_checked_in_bounded_time(tmp_path: Path) -> None:
    import struct

    from featherbeat.web.sniff import sniff

    path = tmp_path / "boxes.m4a"
    with path.open("wb") as out:
        out.write(struct.pack(">I4s4sI", 16, b"ftyp", b"M4A ", 0))
        out.write(struct.pack(">I4s", 8, b"free") * 3_000_000)  # 24 MB of empty boxes
    started = time.monotonic()
    found = sniff(path)
    assert time.monotonic() - started < 1.0
    assert found.format == "m4a" and found.duration is None  # left to the analysis


# --- 14.4: an input longer than the limit, with no length in its header ------------------------


def _piped_webm(path: Path, seconds: int) -> None:
    """Opus silence in WebM written to a sink that cannot seek: no Duration element, no Cues
    (what a browser's MediaRecorder or `ffmpeg ... -f webm pipe:` produce)."""
    import av
    import numpy as np

    class Pipe:
        def __init__(self, raw: Any) -> None:
            self.raw = raw

        def write(self, data: bytes) -> int:
            return int(self.raw.write(data))

        def seekable(self) -> bool:
            return False

    with path.open("wb") as raw:
        out = av.open(Pipe(raw), mode="w", format="webm")
        stream = out.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        silence = np.zeros((1, 48000), dtype=np.int16)
        for second in range(seconds):
            frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, second * 48000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        out.close()


def test_too_long_input_without_a_header_length_stops_before_decoding(tmp_path: Path) -> None:
    """Before: such a file passed the upload check and was decoded and analysed up to the limit
    before failing too_long (8.8 h against 2 h: ~55 CPU-s, 118 MB). Now opening it reads the
    packets' times only and refuses it at once."""
    from featherbeat.analysis.decode import open_audio
    from featherbeat.analysis.errors import InputTooLongError

    path = tmp_path / "piped.webm"
    _piped_webm(path, 90)
    started = time.process_time()
    with pytest.raises(InputTooLongError):
        open_audio(str(path), max_duration=30)
    assert time.process_time() - started < 1.0
    stream = open_audio(str(path), max_duration=120)  # within the limit: read in full
    samples = sum(len(block) for block in stream)
    assert abs(samples / 22050 - 90.0) < 1.0
