"""Warm start (featherbeat.jobs.supervise, "Warm start"): the spare analysis child the consumer
keeps while a worker is idle, on real processes: started as a cold child is, handed its job,
replaced by a cold start when it died, never left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from featherbeat.jobs.supervise import (
    SPARE_COMMAND,
    ActiveChildren,
    Ending,
    Limits,
    Outcome,
    child_command,
    child_env,
    read_rss_mb,
    supervise,
)
from featherbeat.testing.signals import click_track, write_audio

LIMITS = Limits(max_rss_mb=500.0, timeout=120.0, report_every=0.0)


@pytest.fixture
def active() -> Iterator[ActiveChildren]:
    children = ActiveChildren(warm=True)
    yield children
    children.stop_all()  # whatever a test left: no process outlives it


@pytest.fixture(scope="module")
def track(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clicks = click_track(120.0, 3.0)
    return write_audio(tmp_path_factory.mktemp("warm"), "clicks", clicks.audio, clicks.sr, "wav")


def gone(pid: int) -> bool:
    """No such process, not even a zombie (it was reaped)."""
    return not Path(f"/proc/{pid}").exists()


def waiting_for_its_job(pid: int, timeout: float = 60.0) -> None:
    """Until the spare has imported everything and blocks in read(0, ...) (bounded)."""
    deadline = time.monotonic() + timeout
    while not Path(f"/proc/{pid}/syscall").read_text().startswith("0 0x0 "):
        assert time.monotonic() < deadline, "the spare never got to reading its job"
        time.sleep(0.05)


def status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def run_job(active: ActiveChildren, track: Path, outdir: Path, seen: list[int]) -> Outcome:
    """One real analysis through ``supervise``; ``seen``: the pid of the child at work (and
    its stdin), as the watchdog saw it."""
    outdir.mkdir()

    def report(_stage: str, _progress: float) -> bool:
        proc = active.procs.get("owner")
        if proc is not None and not seen:
            seen.append(proc.pid)
        return True

    return supervise(
        child_command(track, outdir, reduced=False, max_duration=600.0),
        LIMITS,
        report,
        active,
        "owner",
    )


def test_the_spare_starts_like_a_cold_child_and_runs_the_next_job(
    active: ActiveChildren, track: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEATHERBEAT_API_TOKEN", "s3cret")  # never for the child to see
    # Started where the consumer's stop signals are blocked (its main thread during start-up):
    # the spare still gets the default mask, as a cold child does.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        assert active.keep_spare(1) is None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    spare = active.spare
    assert spare is not None
    waiting_for_its_job(spare.pid)
    # A fresh interpreter (exec, not a fork of this process), its own minimal environment.
    cmdline = Path(f"/proc/{spare.pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert [c.decode() for c in cmdline] == SPARE_COMMAND
    environ = Path(f"/proc/{spare.pid}/environ").read_bytes().split(b"\0")[:-1]
    assert dict(e.decode().split("=", 1) for e in environ) == child_env(os.environ)
    assert "FEATHERBEAT_API_TOKEN" not in child_env(os.environ)
    assert int(status_field(spare.pid, "SigBlk"), 16) == 0
    # Idle at its import footprint (numpy, libsndfile, soxr, the analysis): tens of MB.
    rss = read_rss_mb(spare.pid)
    assert rss is not None and 10 < rss < 60, rss
    assert active.keep_spare(1) is None and active.spare is spare  # one spare, not two

    seen: list[int] = []
    outcome = run_job(active, track, tmp_path / "out", seen)
    assert outcome.ending is Ending.DONE and outcome.warm, outcome
    assert seen == [spare.pid]  # the job ran in the spare ...
    assert outcome.done is not None and abs(outcome.done.duration - 3.0) < 0.1
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"spotify", "beats", "jams"}
    assert active.spare is None and spare.returncode == 0  # ... which is now used up
    assert active.keep_spare(1) is None and active.spare is not None  # the next one


def test_a_dead_spare_means_a_cold_start_and_a_new_spare_after_a_pause(
    active: ActiveChildren, track: Path, tmp_path: Path
) -> None:
    active.keep_spare(1)
    first = active.spare
    assert first is not None
    first.kill()
    first.wait()
    seen: list[int] = []
    outcome = run_job(active, track, tmp_path / "out", seen)
    assert outcome.ending is Ending.DONE and not outcome.warm  # cold, not judged a crash
    assert seen and seen[0] != first.pid
    assert first.stdout is not None and first.stdout.closed  # its pipes were closed

    # A spare that dies while idle is reported and replaced, after a pause: never a spin.
    active.keep_spare(1)
    second = active.spare
    assert second is not None
    os.kill(second.pid, signal.SIGKILL)
    second.wait()
    assert active.keep_spare(1) == -signal.SIGKILL
    assert active.spare is None  # not at once ...
    deadline = time.monotonic() + 10
    while active.spare is None:  # ... but after the first pause (1 s)
        assert time.monotonic() < deadline, "the dead spare was never replaced"
        assert active.keep_spare(1) is None
        time.sleep(0.05)
    assert active.spare.pid != second.pid


def test_no_spare_while_every_worker_is_busy_and_none_after_the_stop(
    active: ActiveChildren,
) -> None:
    assert active.hold("busy", "job", lambda: True)
    assert active.keep_spare(1) is None and active.spare is None  # never on a running job
    active.keep_spare(2)  # a second worker is idle
    spare = active.spare
    assert spare is not None
    assert active.stop_all() == [("busy", "job")]
    assert gone(spare.pid)  # killed and reaped: no zombie, no orphan
    assert active.spare is None
    assert active.keep_spare(2) is None and active.spare is None  # stopping: none again


def test_off_means_cold_children_only(track: Path, tmp_path: Path) -> None:
    cold = ActiveChildren(warm=False)
    assert cold.keep_spare(1) is None and cold.spare is None
    outcome = run_job(cold, track, tmp_path / "out", [])
    assert outcome.ending is Ending.DONE and not outcome.warm


def test_a_spare_let_go_exits_quietly() -> None:
    """EOF instead of a job (its consumer gone without killing it): exit 0, nothing done."""
    proc = subprocess.run(
        SPARE_COMMAND, input=b"", capture_output=True, timeout=120, env=child_env(os.environ)
    )
    assert proc.returncode == 0 and proc.stdout == b"", proc.stderr[-500:]
    assert SPARE_COMMAND[0] == sys.executable


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_the_child_analyses_with_the_services_rhythm_settings(
    warm: bool, track: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FEATHERBEAT_RHYTHM(_WEIGHTS) reach the analysis child, cold or spare (they were filtered
    out with the secrets, so the service always ran the default tracker): weights that are not
    there make the learned tracker fall back to DSP and say so in the result."""
    monkeypatch.setenv("FEATHERBEAT_RHYTHM", "learned")
    monkeypatch.setenv("FEATHERBEAT_RHYTHM_WEIGHTS", str(tmp_path / "missing.npz"))
    children = ActiveChildren(warm=warm)
    try:
        children.keep_spare(1)
        outcome = run_job(children, track, tmp_path / "out", [])
    finally:
        children.stop_all()
    assert outcome.ending is Ending.DONE and outcome.warm is warm
    assert outcome.done is not None and "rhythm_model" in outcome.done.missing, outcome.done
    assert "missing.npz" in (outcome.done.warning or ""), outcome.done.warning
