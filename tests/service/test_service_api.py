"""The HTTP API against a real gunicorn + consumer: uploads, progress, results, bad input.

One service per module (starting one costs ~1 s); every JSON answer is checked against the
OpenAPI document by ``Service.json``. Audio is generated here, at test time.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from featherbeat.testing.service import Service, multipart, running_service
from featherbeat.testing.signals import click_track, write_audio

pytestmark = pytest.mark.service

SPOTIFY_SCHEMA = Path(__file__).resolve().parents[3] / "shared/spotify/audio-analysis.schema.json"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Service:
    directory = tmp_path_factory.mktemp("service")
    env = {
        "FEATHERBEAT_MAX_UPLOAD_MB": "4",
        "FEATHERBEAT_MAX_DURATION": "120",
        "FEATHERBEAT_UPLOAD_IDLE_TIMEOUT": "1",
        "FEATHERBEAT_KEEP_UPLOADS": "1",
    }
    with running_service(directory, env) as service:
        yield service


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    files = {}
    for i, fmt in enumerate(("wav", "flac", "mp3", "ogg")):
        clicks = click_track(100.0 + 10 * i, 12.0)
        files[fmt] = write_audio(folder, f"clicks{i}", clicks.audio, clicks.sr, fmt)
    return files


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg"])
def test_upload_progress_and_results(svc: Service, audio: dict[str, Path], fmt: str) -> None:
    status, job = svc.upload(audio[fmt], raw=(fmt == "mp3"))
    assert status == 202, job
    assert job["status"] in ("queued", "running") and job["filename"] == audio[fmt].name
    events = svc.events(job["id"])
    statuses = [e for e in events if e.get("event") == "status"]
    assert statuses, events
    ids = [int(e["id"]) for e in statuses if "id" in e]
    assert ids == sorted(set(ids)), "event ids must grow"
    for event in statuses:
        assert event["data"]["id"] == job["id"]
        assert 0.0 <= event["data"]["progress"] <= 1.0
    # Every stage is reported, in order (issue 10.5: the short rhythm and structure stages
    # used to fall between two reads), and the bar never goes back.
    stages = [e["data"]["stage"] for e in statuses]
    seen = [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]]
    assert seen[-5:] == ["decoding", "rhythm", "structure", "writing", "done"], stages
    progress = [e["data"]["progress"] for e in statuses]
    assert progress == sorted(progress), progress
    final = statuses[-1]["data"]
    assert final["status"] == "done", (final, svc.logs())
    assert final["progress"] == 1.0 and final["stage"] == "done" and final["attempts"] == 1
    assert abs(final["duration"] - 12.0) < 0.5

    status, headers, body = svc.request("GET", job["links"]["analysis"])
    assert status == 200 and headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert {
        "meta",
        "track",
        "bars",
        "beats",
        "tatums",
        "sections",
        "segments",
        "featherbeat",
    } <= set(doc)
    assert 8 <= len(doc["beats"]) <= 40
    if SPOTIFY_SCHEMA.is_file():
        import jsonschema

        jsonschema.Draft202012Validator(json.loads(SPOTIFY_SCHEMA.read_text())).validate(doc)
    status, _, same = svc.request("GET", f"/v1/audio-analysis/{job['id']}")
    assert status == 200 and json.loads(same) == doc

    status, headers, beats = svc.request("GET", job["links"]["analysis"] + "?format=beats")
    assert status == 200 and headers["content-type"] == "text/plain; charset=utf-8", headers
    rows = [line.split("\t") for line in beats.decode().splitlines() if line.strip()]
    assert len(rows) == len(doc["beats"]) and all(len(r) == 2 for r in rows)
    status, _, jams_doc = svc.request("GET", job["links"]["analysis"] + "?format=jams")
    assert status == 200 and "annotations" in json.loads(jams_doc)
    # The JAMS title is the uploaded file's name, not the job id (issue 10.6).
    assert json.loads(jams_doc)["file_metadata"]["title"] == audio[fmt].name
    assert final["warning"] is None and doc["meta"]["status_code"] == 0

    status, headers, data = svc.request("GET", job["links"]["audio"])  # kept: KEEP_UPLOADS=1
    assert status == 200 and data == audio[fmt].read_bytes()


def test_same_bytes_twice_is_served_from_cache(svc: Service, audio: dict[str, Path]) -> None:
    status, first = svc.upload(audio["flac"], "first.flac")
    first = svc.wait_done(first["id"])
    assert first["status"] == "done"
    started = time.monotonic()
    status, again = svc.upload(audio["flac"], "renamed.flac", raw=True)
    assert status == 202, again  # the same answer as a new upload: nothing tells a repeat
    assert again["id"] != first["id"] and again["filename"] == "renamed.flac"
    assert again["status"] == "done" and again["attempts"] == first["attempts"]
    assert time.monotonic() - started < 5.0


def _metric_values(svc: Service) -> dict[str, float]:
    status, _, text = svc.request("GET", "/metrics")
    assert status == 200
    found = re.findall(r"^(featherbeat_\S+) (\S+)$", text.decode(), re.MULTILINE)
    return {name: float(value) for name, value in found}


def test_same_bytes_uploaded_at_once_become_one_job(svc: Service, tmp_path: Path) -> None:
    clicks = click_track(131, 10.0)  # bytes no other test uploads
    data = write_audio(tmp_path, "together", clicks.audio, clicks.sr, "wav").read_bytes()
    uploads_dir = svc.data_dir / "blobs" / "uploads"
    blobs_before = set(uploads_dir.iterdir()) if uploads_dir.is_dir() else set()
    before = _metric_values(svc)
    n = 8
    barrier = threading.Barrier(n)
    answers: dict[int, tuple[int, dict]] = {}
    errors: list[BaseException] = []

    def upload(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            answers[i] = svc.upload(data, f"together{i}.wav", raw=bool(i % 2))
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(answers) == n
    ids = {job["id"] for _, job in answers.values()}
    assert len(ids) == n, (answers, svc.logs())  # every uploader has their own id
    assert all(status == 202 for status, _ in answers.values()), answers
    for i, (_, job) in answers.items():
        assert job["filename"] == f"together{i}.wav"
    jobs = [svc.wait_done(job_id) for job_id in ids]
    assert all(j["status"] == "done" and j["attempts"] == 1 for j in jobs), jobs
    after = _metric_values(svc)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert delta('featherbeat_uploads_total{outcome="accepted"}') == 1
    joined = delta('featherbeat_uploads_total{outcome="joined"}')
    cached = delta('featherbeat_uploads_total{outcome="cached"}')
    assert joined + cached == n - 1, (joined, cached)
    assert delta('featherbeat_jobs{status="done"}') == 1  # one analysis ran
    # The uploads that lost the race left no stored copy behind (this server keeps uploads).
    new_blobs = [p.name for p in set(uploads_dir.iterdir()) - blobs_before]
    assert len(new_blobs) == 1 and new_blobs[0] in ids, new_blobs


def test_sse_reconnect_with_last_event_id_sends_only_newer(
    svc: Service, audio: dict[str, Path]
) -> None:
    job = svc.wait_done(svc.upload(audio["wav"], "again.wav")[1]["id"])
    first = [e for e in svc.events(job["id"]) if e.get("event") == "status"]
    last = first[-1]["id"]
    # A client that saw the final event reconnects: it gets that final state once, then EOF.
    again = [e for e in svc.events(job["id"], last_event_id=last) if e.get("event") == "status"]
    assert [e["id"] for e in again] == [last] and again[0]["data"]["status"] == "done"


def test_config_health_metrics_and_openapi(svc: Service) -> None:
    status, cfg = svc.json("GET", "/api/v1/config")
    assert status == 200 and cfg["auth_required"] is False
    assert cfg["max_upload_bytes"] == 4 * 1024 * 1024 and cfg["max_duration_seconds"] == 120
    assert svc.json("GET", "/healthz")[1]["status"] == "ok"
    status, spec = svc.json("GET", "/api/v1/openapi.json")
    assert spec["openapi"].startswith("3.1") and "/api/v1/analyses" in spec["paths"]
    status, headers, text = svc.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert "featherbeat_queue_depth " in text.decode()
    assert 'featherbeat_jobs{status="done"}' in text.decode()


def test_unknown_job_and_route_are_json_404(svc: Service) -> None:
    status, body = svc.json("GET", "/api/v1/analyses/doesNotExist0000000")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = svc.json("GET", "/api/v1/analyses/doesNotExist0000000/analysis")
    assert status == 404
    status, _, raw = svc.request("GET", "/api/v1/nothing-here")
    assert status == 404 and json.loads(raw)["error"]["code"] == "not_found"


def _rejected(svc: Service, status: int, body: dict, code: str) -> None:
    assert body["error"]["code"] == code, body
    assert len(body["error"]["message"]) > 10


@pytest.mark.parametrize(
    ("payload", "name", "code", "status"),
    [
        (b"", "empty.mp3", "empty_upload", 400),
        (b"Hello, this is a text file and not music at all.\n" * 20, "song.mp3", "not_audio", 415),
        (b"\x00" * 4096, "zeros.wav", "not_audio", 415),
    ],
)
def test_bad_bodies(svc: Service, payload: bytes, name: str, code: str, status: int) -> None:
    got, body = svc.upload(payload, name, raw=True)
    assert got == status
    _rejected(svc, got, body, code)
    if payload:
        got, body = svc.upload(payload, name)  # the same as multipart
        assert got == status
        _rejected(svc, got, body, code)


def test_wrong_field_name(svc: Service, audio: dict[str, Path]) -> None:
    status, body = svc.upload(audio["wav"], field="audio")
    assert status == 400
    _rejected(svc, status, body, "missing_file")
    assert "'audio'" in body["error"]["message"]


def test_too_long_and_too_large(svc: Service, tmp_path: Path) -> None:
    long = click_track(120, 130.0)  # over FEATHERBEAT_MAX_DURATION=120
    status, body = svc.upload(write_audio(tmp_path, "long", long.audio, long.sr, "flac"))
    assert status == 422
    _rejected(svc, status, body, "too_long")
    big = click_track(120, 100.0)  # 4.4 MB of WAV, over the 4 MB limit
    status, body = svc.upload(write_audio(tmp_path, "big", big.audio, big.sr, "wav"), raw=True)
    assert status == 413
    _rejected(svc, status, body, "too_large")
    # Stopped while streaming too (chunked: no Content-Length to judge up front).
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/v1/analyses?filename=x.wav")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b"\x00" * 65536
        for _ in range(80):  # 5 MB
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        assert resp.status == 413
        assert json.loads(resp.read())["error"]["code"] == "too_large"
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close as soon as it answered 413: also a correct refusal
    finally:
        conn.close()
    assert not list((svc.data_dir / "incoming").glob("*")), "partial uploads must be deleted"


def _read_reply(sock: socket.socket) -> str:
    """One HTTP response: headers, then Content-Length bytes of body (not waiting for the
    close: gunicorn lingers a few seconds on a connection whose body it did not read)."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            (
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            b"0",
        )
    )
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def test_huge_content_length_is_refused_before_reading(svc: Service) -> None:
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/analyses?filename=a.wav HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Length: 99999999999\r\n\r\n" + b"RIFF"
        )
        reply = _read_reply(sock)
    assert reply.startswith("HTTP/1.1 413"), reply
    body = json.loads(reply.split("\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "too_large"


def test_truncated_file_is_refused_or_fails_cleanly(svc: Service, audio: dict[str, Path]) -> None:
    data = audio["mp3"].read_bytes()
    status, body = svc.upload(data[: len(data) // 3], "cut.mp3")
    if status == 415:
        _rejected(svc, status, body, "not_audio")
        return
    assert status == 202, body
    job = svc.wait_done(body["id"])
    # Either the readable part is analysed, or the job fails with a reason; never lost.
    assert job["status"] == "done" or job["error"]["message"], job
    status, head = svc.upload(data[:200], "header-only.mp3")
    assert status in (202, 415), head
    if status == 202:
        assert svc.wait_done(head["id"])["status"] in ("done", "failed")


def test_a_wav_cut_short_is_done_with_a_warning(svc: Service, tmp_path: Path) -> None:
    """Issue 10.2: a WAV whose header claims far more than it holds is analysed (the readable
    part) and the job says so, as the result's meta does."""
    import struct

    clicks = click_track(98.0, 6.0)
    data = bytearray(write_audio(tmp_path, "liar", clicks.audio, clicks.sr, "wav").read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 3600 * clicks.sr * 2)  # an hour of 16-bit mono
    status, body = svc.upload(bytes(data), "cut short.wav")
    assert status == 202, body
    job = svc.wait_done(body["id"])
    assert job["status"] == "done", job
    assert "input truncated" in job["warning"] and "header says" in job["warning"], job
    status, _, raw = svc.request("GET", job["links"]["analysis"])
    meta = json.loads(raw)["meta"]
    assert meta["status_code"] == 1 and meta["detailed_status"] == job["warning"]
    _, _, jams_doc = svc.request("GET", job["links"]["analysis"] + "?format=jams")
    assert json.loads(jams_doc)["file_metadata"]["title"] == "cut short.wav"


def test_path_traversal_file_names_are_only_labels(svc: Service, audio: dict[str, Path]) -> None:
    data = audio["wav"].read_bytes() + b"\x00\x00"  # new bytes: not served from the cache
    for name in ("../../../../etc/passwd.wav", "..\\..\\windows\\win.ini.wav", "/abs/path.wav"):
        status, job = svc.upload(data, name)
        assert status in (200, 202), job
        assert "/" not in job["filename"] and "\\" not in job["filename"]
        assert not job["filename"].startswith(".")
        data += b"\x00\x00"
    assert not (svc.directory / "etc").exists() and not Path("/etc/passwd.wav").exists()
    status, job = svc.upload(data, "%2e%2e%2fx.wav", raw=True)
    assert status == 202 and "/" not in job["filename"]


def test_slow_trickle_does_not_block_others_and_is_cut(
    svc: Service, audio: dict[str, Path]
) -> None:
    data = audio["wav"].read_bytes()
    body, ctype = multipart("file", "slow.wav", data)
    with socket.create_connection(("127.0.0.1", svc.port), timeout=15) as sock:
        sock.sendall(
            f"POST /api/v1/analyses HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:1000]
        )
        # While that upload stalls, the service answers everyone else at once.
        started = time.monotonic()
        assert svc.request("GET", "/healthz")[0] == 200
        assert time.monotonic() - started < 0.5
        time.sleep(0.4)
        sock.sendall(body[1000:1010])  # a trickle...
        reply = _read_reply(sock)  # ...then silence past the timeout
    assert reply.startswith("HTTP/1.1 408"), reply
    assert json.loads(reply.split("\r\n\r\n", 1)[1])["error"]["code"] == "upload_stalled"


def test_result_before_done_is_409(svc: Service, tmp_path: Path) -> None:
    svc.stop_worker()  # nothing runs: the job stays queued
    try:
        clicks = click_track(97, 8.0)
        status, job = svc.upload(write_audio(tmp_path, "q", clicks.audio, clicks.sr, "flac"))
        assert status == 202 and job["status"] == "queued" and job["queue_position"] >= 1
        status, body = svc.json("GET", f"/api/v1/analyses/{job['id']}/analysis")
        assert status == 409 and body["error"]["code"] == "not_ready"
        status, body = svc.json("GET", f"/api/v1/analyses/{job['id']}/analysis?format=xml")
        assert status == 400 and body["error"]["code"] == "bad_format"
        # An idle stream gets the current state, then keep-alive comments (every 1 s here).
        with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as sock:
            sock.sendall(
                f"GET /api/v1/analyses/{job['id']}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            seen = b""
            deadline = time.monotonic() + 5
            # (an SSE comment starts a line; "Connection: keep-alive" in the headers does not)
            while b"\n: keep-alive" not in seen and time.monotonic() < deadline:
                seen += sock.recv(4096)
        assert b"event: status" in seen and b'"status": "queued"' in seen
        assert b"\n: keep-alive" in seen
    finally:
        svc.start_worker()
    assert svc.wait_done(job["id"])["status"] == "done"


def test_delete_removes_job_and_files(svc: Service, tmp_path: Path) -> None:
    clicks = click_track(131, 6.0)
    status, job = svc.upload(write_audio(tmp_path, "del", clicks.audio, clicks.sr, "wav"))
    svc.wait_done(job["id"])
    status, _, body = svc.request("DELETE", f"/api/v1/analyses/{job['id']}")
    assert status == 204 and body == b""
    assert svc.json("GET", f"/api/v1/analyses/{job['id']}")[0] == 404
    assert not (svc.data_dir / "blobs" / "results" / job["id"]).exists()
    assert not (svc.data_dir / "blobs" / "uploads" / job["id"]).exists()


def test_token_required_for_upload_and_delete(tmp_path: Path) -> None:
    clicks = click_track(111, 5.0)
    wav = write_audio(tmp_path, "tok", clicks.audio, clicks.sr, "wav")
    env = {"FEATHERBEAT_API_TOKEN": "s3cret", "FEATHERBEAT_CORS_ORIGINS": "https://app.example"}
    with running_service(tmp_path / "svc", env) as svc:
        assert svc.json("GET", "/api/v1/config")[1]["auth_required"] is True
        _, headers, _ = svc.request(
            "GET", "/api/v1/config", headers={"Origin": "https://app.example"}
        )
        assert headers["access-control-allow-origin"] == "https://app.example"
        _, headers, _ = svc.request(
            "GET", "/api/v1/config", headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in headers
        status, headers, _ = svc.request(
            "OPTIONS",
            "/api/v1/analyses",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert status == 200 and "Authorization" in headers["access-control-allow-headers"]
        status, body = svc.upload(wav)
        assert status == 401 and body["error"]["code"] == "unauthorized"
        status, body = svc.upload(wav, headers={"Authorization": "Bearer wrong"})
        assert status == 401 and "wrong" in body["error"]["message"]
        status, body = svc.upload(wav, headers={"Authorization": "Basic czNjcmV0"})
        assert status == 401
        status, job = svc.upload(wav, headers={"Authorization": "Bearer s3cret"})
        assert status == 202
        assert svc.job(job["id"])["id"] == job["id"]  # reading needs no token (ids are secret)
        assert svc.wait_done(job["id"])["status"] == "done"
        # Uploads are deleted once analysed (FEATHERBEAT_KEEP_UPLOADS is off here).
        status, body = svc.json("GET", f"/api/v1/analyses/{job['id']}/audio")
        assert status == 410 and body["error"]["code"] == "audio_gone"
        status, body = svc.json("DELETE", f"/api/v1/analyses/{job['id']}")
        assert status == 401
        status, _, _ = svc.request(
            "DELETE", f"/api/v1/analyses/{job['id']}", headers={"Authorization": "Bearer s3cret"}
        )
        assert status == 204
        metrics = svc.request("GET", "/metrics")[2].decode()
        assert 'featherbeat_uploads_rejected_total{reason="unauthorized"} 3' in metrics


def test_full_disk_is_507_not_a_client_error(tmp_path: Path) -> None:
    # The web processes may write at most 400 kB per file: writing the upload hits a real EFBIG.
    with running_service(tmp_path, web_file_limit=400_000) as svc:
        status, body = svc.upload(b"RIFF" + b"\0" * 600_000, "big.wav", raw=True)
        assert status == 507
        _rejected(svc, status, body, "storage_full")
        assert not list((svc.data_dir / "incoming").glob("*")), "the partial upload is deleted"


def test_open_streams_never_starve_other_requests(tmp_path: Path) -> None:
    clicks = click_track(101, 5.0)
    wav = write_audio(tmp_path, "sse", clicks.audio, clicks.sr, "wav")
    # 4 threads: 3 may stream, one always stays free for everything else.
    with running_service(tmp_path / "svc", {"FEATHERBEAT_THREADS": "4"}) as svc:
        svc.stop_worker()  # the job stays queued: its streams stay open
        job = svc.upload(wav)[1]
        request = f"GET /api/v1/analyses/{job['id']}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        streams = []
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
            sock.sendall(request)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            streams.append(sock)
        try:
            status, body = svc.json("GET", f"/api/v1/analyses/{job['id']}/events")
            assert status == 503 and body["error"]["code"] == "too_many_streams"
            started = time.monotonic()
            assert svc.job(job["id"])["status"] == "queued"
            assert time.monotonic() - started < 0.5
            streams.pop().close()  # a page goes away: its slot comes back
            deadline = time.monotonic() + 10
            while (first := _first_bytes(svc, request)).startswith(b"HTTP/1.1 503"):
                assert time.monotonic() < deadline, "the closed stream's slot never came back"
                time.sleep(0.3)
            assert first.startswith(b"HTTP/1.1 200"), first
        finally:
            for sock in streams:
                sock.close()


def _first_bytes(svc: Service, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def test_a_file_the_analysis_rejects_is_named_by_its_filename(svc: Service, tmp_path: Path) -> None:
    """An M4A cut in half passes the header sniff and fails in the decoder: the job's error
    must name the file the person uploaded, not the server's storage name (the job id)."""
    clicks = click_track(104.0, 10.0)
    data = write_audio(tmp_path, "whole", clicks.audio, clicks.sr, "m4a").read_bytes()
    status, body = svc.upload(data[: len(data) // 2], "my song.m4a")
    assert status == 202, body
    job = svc.wait_done(body["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "not_audio", job
    message = job["error"]["message"]
    assert message.startswith("my song.m4a: ") and job["id"] not in message, message


def test_metrics_summaries_count_the_same_analyses(svc: Service, tmp_path: Path) -> None:
    """Issue 10.11: /metrics counted 13 analysis times but 14 peak-memory samples (a failed
    job has a peak and no analysis time). Both summaries cover the same finished analyses."""
    clicks = click_track(106.0, 6.0)
    data = write_audio(tmp_path, "whole", clicks.audio, clicks.sr, "m4a").read_bytes()
    status, body = svc.upload(data[: len(data) // 2], "fails in the decoder.m4a")
    assert status == 202, body
    assert svc.wait_done(body["id"])["status"] == "failed"
    status, _, text = svc.request("GET", "/metrics")
    counts = dict(
        line.split()
        for line in text.decode().splitlines()
        if line.endswith(tuple("0123456789")) and "_count " in line
    )
    done = svc.json("GET", "/healthz")[1]["jobs"]["done"]
    assert (
        counts["featherbeat_analysis_seconds_count"]
        == counts["featherbeat_analysis_peak_rss_mb_count"]
        == str(min(done, 100))
    ), counts
