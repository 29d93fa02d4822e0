"""Warm start through a real consumer (``featherbeat worker`` beside gunicorn): one spare
analysis child while the worker is idle, jobs run in it, and no spare outlives its consumer
however the consumer ends."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from featherbeat.testing.service import Service, running_service
from featherbeat.testing.signals import click_track, write_audio

pytestmark = pytest.mark.service


def gone(pid: int) -> bool:
    """Not running any more (a zombie waiting for its reaper counts as gone)."""
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def one_spare(svc: Service, timeout: float = 60.0) -> int:
    """The consumer's only child, a spare waiting for a job (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        kids, spares = svc.consumer_children(), svc.spares()
        if len(kids) == 1 and spares == kids:
            return spares[0]
        assert time.monotonic() < deadline, (kids, spares, svc.logs())
        time.sleep(0.05)


def finished_events(svc: Service) -> list[dict]:
    lines = (svc.log_dir / "worker.log").read_text(errors="replace").splitlines()
    events = [json.loads(x) for x in lines if x.startswith("{")]
    return [e for e in events if e.get("event") == "job.finished"]


def test_jobs_run_in_the_spare_and_one_spare_waits_between_them(tmp_path: Path) -> None:
    with running_service(tmp_path / "svc") as svc:
        spares = [one_spare(svc)]
        for i in range(3):
            clicks = click_track(96.0 + 7 * i, 3.0)
            track = write_audio(tmp_path, f"t{i}", clicks.audio, clicks.sr, "wav")
            status, job = svc.upload(track)
            assert status == 202, job
            final = svc.wait_done(job["id"], timeout=120)
            assert final["status"] == "done", (final, svc.logs())
            spares.append(one_spare(svc))  # a new one, and only one: no spare piles up
        assert len(set(spares)) == 4, spares
        assert all(gone(pid) for pid in spares[:-1])  # used up, and reaped
        events = finished_events(svc)
        assert [e["warm"] for e in events] == [True, True, True], events
        svc.stop_worker(signal.SIGTERM)
        assert gone(spares[-1]), "the spare outlived its consumer's stop"


def test_the_spare_dies_with_its_killed_consumer_and_a_dead_spare_is_replaced(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path / "svc") as svc:
        spare = one_spare(svc)
        os.kill(spare, signal.SIGKILL)  # dies while waiting: reported, then replaced
        deadline = time.monotonic() + 10
        while not gone(spare):
            assert time.monotonic() < deadline, "SIGKILL did not kill the spare"
            time.sleep(0.01)
        assert one_spare(svc) != spare
        assert '"child.spare_died"' in (svc.log_dir / "worker.log").read_text()
        spare = one_spare(svc)
        assert svc.worker is not None
        svc.worker.send_signal(signal.SIGKILL)  # kill -9, OOM: no stop handler runs
        svc.worker.wait()
        deadline = time.monotonic() + 10  # the parent-death signal (bounded wait)
        while not gone(spare):
            assert time.monotonic() < deadline, "the spare outlived its killed consumer"
            time.sleep(0.05)


def test_warm_start_off_keeps_no_spare(tmp_path: Path) -> None:
    clicks = click_track(110.0, 3.0)
    track = write_audio(tmp_path, "off", clicks.audio, clicks.sr, "wav")
    with running_service(tmp_path / "svc", {"FEATHERBEAT_WARM_CHILD": "0"}) as svc:
        status, job = svc.upload(track)
        assert status == 202, job
        assert svc.wait_done(job["id"], timeout=120)["status"] == "done"
        time.sleep(1.0)  # ten ticks of the consumer's loop, which would start a spare
        assert svc.consumer_children() == []
        assert [e["warm"] for e in finished_events(svc)] == [False]
