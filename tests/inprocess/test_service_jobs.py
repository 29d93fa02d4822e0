"""The job layer without HTTP on the embedded backends: the reaper, retention, the sniffer.
What every job store and blob store must do is in test_store_contract.py and
test_blob_contract.py.

Fast (no gunicorn): real SQLite files, real huey queue, real files in tmp_path.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from featherbeat.config import ConfigError, Settings
from featherbeat.jobs.blobs import upload_key
from featherbeat.jobs.reaper import purge_expired, reap
from featherbeat.jobs.runner import Runner
from featherbeat.jobs.services import Services
from featherbeat.jobs.store import Job
from featherbeat.jobs.supervise import Ending
from featherbeat.testing.signals import click_track, write_audio
from featherbeat.web.sniff import NotAudioError, sniff


@pytest.fixture
def services(tmp_path: Path) -> Services:
    return Services.from_settings(
        Settings(data_dir=tmp_path, heartbeat_seconds=0.1, stale_seconds=0.5)
    )


def new_job(services: Services, job_id: str, age: float = 0.0) -> Job:
    now = time.time() - age
    job = Job(
        id=job_id, filename="a.wav", size_bytes=1, sha256=job_id, created_at=now, enqueued_at=now
    )
    services.store.create(job)
    return job


def test_reaper_recovers_dead_worker_and_lost_message_but_not_live_ones(services: Services) -> None:
    new_job(services, "dead")
    assert services.store.claim("dead", "gone", stale_before=0)
    new_job(services, "alive")
    assert services.store.claim("alive", "here", stale_before=0)
    new_job(services, "lost", age=5)  # queued long ago, no message in the queue
    new_job(services, "waiting", age=5)
    services.queue.enqueue("waiting")
    time.sleep(0.6)
    services.store.update("alive", "here", heartbeat_at=time.time())
    recovered = reap(services)
    assert sorted(recovered) == ["dead", "lost"]
    assert services.store.get("dead").status == "queued"
    assert services.store.get("alive").status == "running"
    assert services.queue.pending_ids() == {"dead", "lost", "waiting"}
    # The presumed-dead owner can no longer report or finish.
    assert not services.store.update("dead", "gone", progress=0.9)
    assert not services.store.finish("dead", "gone", "done")
    assert reap(services) == [], "a second sweep finds nothing new"


def test_retention_purges_old_finished_jobs_and_their_files(tmp_path: Path) -> None:
    services = Services.from_settings(Settings(data_dir=tmp_path, retention_days=1))
    for job_id, age_days in (("old", 2.0), ("new", 0.5)):
        new_job(services, job_id)
        assert services.store.claim(job_id, "me", stale_before=0)
        src = tmp_path / f"{job_id}.json"
        src.write_text("{}")
        services.blobs.put_file(f"results/{job_id}/spotify", src)
        finished = time.time() - age_days * 86400
        services.store.finish(
            job_id,
            "me",
            "done",
            finished_at=finished,
            result_keys={"spotify": f"results/{job_id}/spotify"},
        )
    assert purge_expired(services) == 1
    assert services.store.get("old") is None and services.blobs.size("results/old/spotify") is None
    assert services.store.get("new") is not None
    assert services.blobs.size("results/new/spotify") == 2


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "opus", "mp3", "m4a"])
def test_sniff_reads_container_and_duration(tmp_path: Path, fmt: str) -> None:
    clicks = click_track(120, 7.0)
    got = sniff(write_audio(tmp_path, "c", clicks.audio, clicks.sr, fmt))
    assert got.duration is not None and abs(got.duration - 7.0) < 0.2, got


@pytest.mark.parametrize(
    "data",
    [b"", b"just some text\n" * 50, b"\xff\xfb" + b"\x00" * 500, b"RIFF\x00\x00\x00\x00WAVE"],
)
def test_sniff_rejects_non_audio(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.mp3"
    path.write_bytes(data)
    with pytest.raises(NotAudioError):
        sniff(path)


def test_settings_from_env_validate() -> None:
    s = Settings.from_env({"FEATHERBEAT_MAX_UPLOAD_MB": "2", "FEATHERBEAT_CORS_ORIGINS": "a, b"})
    assert s.max_upload_bytes == 2 * 1024 * 1024 and s.cors_origins == ("a", "b")
    for bad in (
        {"FEATHERBEAT_CONCURRENCY": "0"},
        {"FEATHERBEAT_KEEP_UPLOADS": "maybe"},
        {"FEATHERBEAT_BROKER": "amqp://x"},
        {"FEATHERBEAT_STALE_SECONDS": "1"},
    ):
        with pytest.raises(ConfigError):
            Settings.from_env(bad)


def published(services: Services, job_id: str) -> dict[str, bytes]:
    """The result bytes the job record names, per format."""
    job = services.store.get(job_id)
    assert job is not None and job.status == "done" and job.result_keys
    out = {}
    for fmt, key in job.result_keys.items():
        buf = io.BytesIO()
        assert services.blobs.get(key, buf), key
        out[fmt] = buf.getvalue()
    return out


def test_a_run_taken_over_never_touches_the_published_result(
    services: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At-least-once: a run presumed dead (paused or starved past its lease) while its child
    finished is taken over and analysed again; when it resumes it must not store over the
    winner's result (which a client may already have read: results never change)."""
    clicks = click_track(120, 4.0)
    audio = write_audio(tmp_path, "a", clicks.audio, clicks.sr, "wav")
    now = time.time()
    job = Job(
        id="job",
        filename="a.wav",
        size_bytes=1,
        sha256="a",
        created_at=now,
        enqueued_at=now,
        upload_key=upload_key("job"),
    )
    with audio.open("rb") as fp:
        services.blobs.put(job.upload_key, fp)
    services.store.create(job)
    paused, winner = (
        Runner(services.settings, services.store, services.blobs),
        Runner(services.settings, services.store, services.blobs),
    )
    owner = paused.new_owner()
    claimed = services.store.claim(job.id, owner, stale_before=time.time())
    assert claimed is not None
    outdir = tmp_path / "paused-out"
    outdir.mkdir()
    with services.blobs.local_path(job.upload_key, tmp_dir=tmp_path) as path:
        outcome = paused.run_child(job.id, owner, path, outdir, reduced=False)
    assert outcome.ending is Ending.DONE
    # ... and here the paused run's heartbeat goes stale (bounded: a few lease lengths).
    deadline = time.monotonic() + 30
    while job.id not in {j.id for j in services.store.stale(time.time() - 0.5)}:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    winner(job.id)  # a live worker takes it over and finishes it
    first = published(services, job.id)
    paused._succeed(claimed, owner, outdir, outcome)  # the paused run resumes where it was
    assert published(services, job.id) == first
    results = services.settings.data_dir / "blobs" / "results" / job.id
    assert len(list(results.iterdir())) == 1, "only the winner's run is stored"
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    assert [e["event"] for e in events if e.get("owner") == owner] == ["job.lost"]
    assert sum(e["event"] == "job.finished" for e in events) == 1
