"""API edge cases in-process, through the app factory (Flask's test client, no gunicorn).

Real stores and blobs in tmp_path, no consumer: a test puts a job in the state it needs through
the job store's own operations (claim, finish), then asks the API. What needs a real server
(sockets, timeouts, the consumer) stays in test_service_api.py.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from featherbeat.config import Settings
from featherbeat.jobs.services import Services
from featherbeat.testing.signals import click_track, write_audio
from featherbeat.web import create_app


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    clicks = click_track(120.0, 3.0)
    return write_audio(
        tmp_path_factory.mktemp("a"), "c", clicks.audio, clicks.sr, "wav"
    ).read_bytes()


def make_app(tmp_path: Path, **settings: Any) -> Flask:
    app = create_app(Settings(data_dir=tmp_path / "data", **settings))
    app.testing = True
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    yield make_app(tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def services(app: Flask) -> Services:
    return app.extensions["featherbeat"]


def upload(client: FlaskClient, data: bytes, name: str = "c.wav", **kw: Any) -> Any:
    return client.post(
        "/api/v1/analyses",
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        **kw,
    )


def error_code(response: Any) -> str:
    assert response.is_json, response.data
    return str(response.get_json()["error"]["code"])


def finish(app: Flask, job_id: str, status: str = "done", **values: Any) -> None:
    store = services(app).store
    assert store.claim(job_id, "test", time.time() - 60) is not None
    assert store.finish(job_id, "test", status, **values)


def test_accepted_upload_is_queued_and_its_audio_answers_ranges(
    app: Flask, client: FlaskClient, wav: bytes
) -> None:
    got = upload(client, wav)
    assert got.status_code == 202, got.data
    job = got.get_json()
    assert job["status"] == "queued" and job["queue_position"] == 1
    assert got.headers["Location"] == f"/api/v1/analyses/{job['id']}"
    assert services(app).queue.pending_ids() == {job["id"]}
    # Local blobs are files: the page's <audio> can seek.
    part = client.get(job["links"]["audio"], headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.data == wav[:10]
    assert part.headers["Content-Range"] == f"bytes 0-9/{len(wav)}"
    whole = client.get(job["links"]["audio"])
    assert whole.status_code == 200 and whole.data == wav


def test_same_bytes_get_their_own_ids_sharing_one_analysis(
    app: Flask, client: FlaskClient, wav: bytes
) -> None:
    first = upload(client, wav).get_json()
    again = upload(client, wav, name="other.wav")
    joined = again.get_json()
    assert again.status_code == 202 and joined["id"] != first["id"]
    assert joined["filename"] == "other.wav" and joined["status"] == "queued"
    finish(app, first["id"])
    cached = upload(client, wav)
    assert cached.status_code == 202 and cached.get_json()["status"] == "done"
    assert client.get(joined["links"]["self"]).get_json()["status"] == "done"
    counters = services(app).store.counters()
    assert counters["uploads:joined"] == 1 and counters["uploads:cached"] == 1
    assert services(app).store.counts()["done"] == 1, "one analysis for three uploads"
    # Deleting one id leaves the others' analysis in place.
    assert client.delete(first["links"]["self"]).status_code == 204
    assert client.get(first["links"]["self"]).status_code == 404
    assert client.get(joined["links"]["self"]).get_json()["status"] == "done"


def test_results_before_done_after_failure_and_once_gone(
    app: Flask, client: FlaskClient, wav: bytes
) -> None:
    job = upload(client, wav).get_json()
    analysis = job["links"]["analysis"]
    assert (
        client.get(analysis).status_code == 409 and error_code(client.get(analysis)) == "not_ready"
    )
    bad = client.get(analysis + "?format=mp3")
    assert bad.status_code == 400 and error_code(bad) == "bad_format"
    # Done, but its result blob is gone (retention, a lost bucket): 410, not a 500.
    finish(app, job["id"], result_keys={"spotify": f"results/{job['id']}/spotify"})
    gone = client.get(analysis)
    assert gone.status_code == 410 and error_code(gone) == "result_gone"
    # The upload is deleted once analysed: the audio is gone, the job is not.
    services(app).blobs.delete(f"uploads/{job['id']}")
    audio = client.get(job["links"]["audio"])
    assert audio.status_code == 410 and error_code(audio) == "audio_gone"


def test_failed_job_result_is_409_with_its_reason(
    app: Flask, client: FlaskClient, wav: bytes
) -> None:
    job = upload(client, wav).get_json()
    finish(app, job["id"], "failed", error_code="memory_limit", error_message="Too big.")
    got = client.get(job["links"]["self"]).get_json()
    assert got["status"] == "failed"
    assert got["error"] == {"code": "memory_limit", "message": "Too big."}
    result = client.get(job["links"]["analysis"])
    assert result.status_code == 409 and error_code(result) == "job_failed"
    assert "Too big." in result.get_json()["error"]["message"]
    # A job that failed for the server's reasons never blocks a new upload of the same bytes.
    retry = upload(client, wav)
    assert retry.status_code == 202 and retry.get_json()["id"] != job["id"]
    # Bytes that failed as bad input are refused at once, named by the new upload.
    finish(app, retry.get_json()["id"], "failed", error_code="not_audio", error_message="no")
    again = upload(client, wav, name="again.wav")
    assert again.status_code == 415 and error_code(again) == "not_audio"
    assert again.get_json()["error"]["message"].startswith("again.wav: ")


def test_unknown_and_absurd_ids_are_404(client: FlaskClient) -> None:
    for job_id in ("nope", "x" * 500):
        got = client.get(f"/api/v1/analyses/{job_id}")
        assert got.status_code == 404 and error_code(got) == "not_found"
    assert client.delete("/api/v1/analyses/nope").status_code == 404


def test_delete_removes_record_and_blobs(app: Flask, client: FlaskClient, wav: bytes) -> None:
    job = upload(client, wav).get_json()
    assert services(app).blobs.size(f"uploads/{job['id']}") == len(wav)
    assert client.delete(job["links"]["self"]).status_code == 204
    assert services(app).store.get(job["id"]) is None
    assert services(app).blobs.size(f"uploads/{job['id']}") is None
    assert client.get(job["links"]["self"]).status_code == 404


def test_full_queue_is_503_with_retry_after_and_counted(tmp_path: Path, wav: bytes) -> None:
    app = make_app(tmp_path, queue_limit=1)
    client = app.test_client()
    assert upload(client, wav).status_code == 202
    other = wav[:-2] + b"\x00\x01"  # other bytes: not a duplicate
    full = upload(client, other)
    assert full.status_code == 503 and error_code(full) == "queue_full"
    assert full.headers["Retry-After"] == "30"
    assert services(app).store.counters()["rejected:queue_full"] == 1
    assert not list((tmp_path / "data" / "incoming").iterdir()), "the refused upload was kept"


def test_not_audio_too_long_and_empty(tmp_path: Path, wav: bytes) -> None:
    app = make_app(tmp_path, max_duration=2.0)
    client = app.test_client()
    text = upload(client, b"just some text\n" * 100, name="notes.mp3")
    assert text.status_code == 415 and error_code(text) == "not_audio"
    assert "notes.mp3" in text.get_json()["error"]["message"]
    long = upload(client, wav)
    assert long.status_code == 422 and error_code(long) == "too_long"
    empty = upload(client, b"")
    assert empty.status_code == 400 and error_code(empty) == "empty_upload"
    counters = services(app).store.counters()
    assert counters["rejected:not_audio"] == 1 and counters["rejected:too_long"] == 1
    assert services(app).store.counts() == {"queued": 0, "running": 0, "done": 0, "failed": 0}


def test_raw_body_upload_and_a_wrong_field(client: FlaskClient, wav: bytes) -> None:
    raw = client.post("/api/v1/analyses?filename=..%2F..%2Fetc%2Fpasswd", data=wav)
    assert raw.status_code == 202 and raw.get_json()["filename"] == "passwd"
    wrong = client.post(
        "/api/v1/analyses",
        data={"audio": (io.BytesIO(wav), "c.wav")},
        content_type="multipart/form-data",
    )
    assert wrong.status_code == 400 and error_code(wrong) == "missing_file"
    assert "'audio'" in wrong.get_json()["error"]["message"]


def test_token_guards_upload_and_delete_not_reads(tmp_path: Path, wav: bytes) -> None:
    app = make_app(tmp_path, api_token="s3cret")
    client = app.test_client()
    refused = upload(client, wav)
    assert refused.status_code == 401 and error_code(refused) == "unauthorized"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = upload(client, wav, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "wrong" in wrong.get_json()["error"]["message"]
    ok = upload(client, wav, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 202
    job = ok.get_json()
    assert client.get(job["links"]["self"]).status_code == 200
    assert client.delete(job["links"]["self"]).status_code == 401
    assert services(app).store.counters()["rejected:unauthorized"] == 2
