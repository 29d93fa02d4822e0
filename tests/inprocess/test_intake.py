"""The intake use case without HTTP: ``featherbeat.web.intake.accept`` on real embedded services.

Its mapping to status codes is tested through the app (test_api_inprocess.py); here, what it
decides and records, and that it can be called without Flask (as bench/scale.py does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from featherbeat.config import Settings
from featherbeat.jobs.services import Services, build_services
from featherbeat.jobs.sqlite_store import SqliteJobStore
from featherbeat.testing.signals import click_track, write_audio
from featherbeat.web import intake


@pytest.fixture
def svc(tmp_path: Path) -> Services:
    return build_services(Settings(data_dir=tmp_path / "data", queue_limit=2, max_duration=5.0))


def upload_of(folder: Path, name: str, data: bytes) -> intake.Upload:
    path = folder / f"incoming-{time.monotonic_ns()}"
    path.write_bytes(data)
    return intake.Upload(path, name, len(data), hashlib.sha256(data).hexdigest())


def audio(folder: Path, seconds: float, bpm: float = 120.0) -> bytes:
    clicks = click_track(bpm, seconds)
    return write_audio(folder, f"c{bpm:g}-{seconds:g}", clicks.audio, clicks.sr, "wav").read_bytes()


def test_a_new_upload_is_stored_recorded_and_enqueued(svc: Services, tmp_path: Path) -> None:
    up = upload_of(tmp_path, "song.wav", audio(tmp_path, 3.0))
    got = intake.accept(svc, up)
    assert got.link is None and got.id == got.job.id
    job = svc.store.get(got.id)
    assert job is not None and job.status == "queued" and job.filename == "song.wav"
    assert job.media_type == "audio/wav" and job.duration is not None
    assert job.upload_key is not None and svc.blobs.size(job.upload_key) == up.size
    assert not up.path.exists(), "the upload was taken over by the blob store"
    assert svc.queue.pending_ids() == {got.id}
    assert svc.store.counters() == {"uploads:accepted": 1}


def test_the_same_bytes_become_a_link_with_no_copy_and_no_queue_slot(
    svc: Services, tmp_path: Path
) -> None:
    data = audio(tmp_path, 3.0)
    first = intake.accept(svc, upload_of(tmp_path, "a.wav", data))
    again = intake.accept(svc, upload_of(tmp_path, "b.wav", data))
    assert again.link is not None and again.job.id == first.id and again.id != first.id
    assert again.link.filename == "b.wav"
    assert svc.blobs.size(f"uploads/{again.id}") is None, "no second stored copy"
    assert svc.queue.pending_ids() == {first.id}
    assert svc.store.counters()["uploads:joined"] == 1


def test_refusals_are_typed_counted_and_leave_nothing(svc: Services, tmp_path: Path) -> None:
    with pytest.raises(intake.NotAudioError) as not_audio:
        intake.accept(svc, upload_of(tmp_path, "notes.mp3", b"just text\n" * 200))
    assert not_audio.value.message.startswith("notes.mp3: ")
    with pytest.raises(intake.TooLongError) as too_long:
        intake.accept(svc, upload_of(tmp_path, "long.wav", audio(tmp_path, 6.0)))
    assert "long.wav lasts 0.1 minutes" in too_long.value.message
    for bpm in (100.0, 110.0):  # the queue holds two
        intake.accept(svc, upload_of(tmp_path, "x.wav", audio(tmp_path, 2.0, bpm)))
    with pytest.raises(intake.QueueFullError) as full:
        intake.accept(svc, upload_of(tmp_path, "late.wav", audio(tmp_path, 2.0, 130.0)))
    assert full.value.retry_after == 30 and full.value.code == "queue_full"
    counters = svc.store.counters()
    assert [counters[f"rejected:{c}"] for c in ("not_audio", "too_long", "queue_full")] == [1, 1, 1]
    assert svc.store.counts()["queued"] == 2
    stored = sorted(p.name for p in (tmp_path / "data" / "blobs" / "uploads").iterdir())
    assert len(stored) == 2, "a refused upload is never stored"


def test_a_record_that_cannot_be_written_is_503_and_its_blob_removed(
    svc: Services, tmp_path: Path
) -> None:
    # Another process holds the write lock for longer than the store waits.
    locked = dataclasses.replace(svc, store=SqliteJobStore(tmp_path / "data" / "jobs.db", 0.2))
    holder = sqlite3.connect(tmp_path / "data" / "jobs.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(intake.StoreUnavailableError) as caught:
            intake.accept(locked, upload_of(tmp_path, "a.wav", audio(tmp_path, 2.0)))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert caught.value.retry_after == 5 and not caught.value.counted
    uploads = tmp_path / "data" / "blobs" / "uploads"
    assert not uploads.exists() or not list(uploads.iterdir()), "no blob without a record"


def test_intake_imports_no_flask() -> None:
    script = (
        "import json, sys\n"
        "import featherbeat.web.intake\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'werkzeug'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_client_over_its_share_is_refused_others_are_not(tmp_path: Path) -> None:
    svc = build_services(Settings(data_dir=tmp_path / "data", client_queue_share=1))
    first = upload_of(tmp_path, "a.wav", audio(tmp_path, 2.0, 100.0))
    intake.accept(svc, dataclasses.replace(first, client="k1"))
    second = upload_of(tmp_path, "b.wav", audio(tmp_path, 2.0, 110.0))
    with pytest.raises(intake.ClientQueueFullError) as caught:
        intake.accept(svc, dataclasses.replace(second, client="k1"))
    assert (
        caught.value.retry_after == 30 and svc.store.counters()["rejected:client_queue_full"] == 1
    )
    assert intake.accept(svc, dataclasses.replace(second, client="k2")).link is None


def test_bytes_that_failed_as_bad_input_are_refused_at_once(svc: Services, tmp_path: Path) -> None:
    data = audio(tmp_path, 2.0)
    got = intake.accept(svc, upload_of(tmp_path, "a.wav", data))
    assert svc.store.claim(got.id, "w", time.time() - 60) is not None
    assert svc.store.finish(got.id, "w", "failed", error_code="not_audio", error_message="no")
    with pytest.raises(intake.NotAudioError, match="again.wav: these bytes were analysed lately"):
        intake.accept(svc, upload_of(tmp_path, "again.wav", data))
    assert svc.queue.pending_ids() == {got.id}, "no second analysis queued"
