"""``featherbeat analyze --via URL`` against a real embedded-mode service (gunicorn + consumer).

The CLI runs as a real process; its stderr is a pseudo-terminal in one test, so the overall
progress bar is checked the way a person sees it.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from featherbeat.testing.redis_server import wav_bytes
from featherbeat.testing.service import Service, running_service

pytestmark = [pytest.mark.service, pytest.mark.timeout(120)]


def featherbeat(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "featherbeat.cli", *args],
        capture_output=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


def write_tracks(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"song{i}.wav"
        path.write_bytes(wav_bytes(200 + i, 1.5 + i * 0.5))
        paths.append(path)
    return paths


def test_batch_into_folder_with_a_bad_file(service: Service, tmp_path: Path) -> None:
    tracks = write_tracks(tmp_path, 3)
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio\n")
    out = tmp_path / "out"
    done = featherbeat(
        "analyze", "--via", service.base_url, *map(str, tracks), str(bad), "-o", f"{out}/"
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "notes.wav" in lines[0] and "not_audio" in lines[0]
    assert lines[0].count("notes.wav") == 1, lines[0]  # issue 10.7: the name once, not twice
    assert sorted(p.name for p in out.iterdir()) == ["song0.json", "song1.json", "song2.json"]
    for i in range(3):
        doc = json.loads((out / f"song{i}.json").read_text())
        assert abs(doc["track"]["duration"] - (1.5 + i * 0.5)) < 0.1
        assert "featherbeat" in doc


def test_one_file_into_a_folder_and_a_warning_for_a_cut_file(
    service: Service,
    tmp_path: Path,
) -> None:
    """Issues 10.1 and 10.2 through the service: `-o out/` with one input is a folder, and a
    file cut short gets the same one warning line a local run gives, also with --quiet."""
    import struct

    data = bytearray(wav_bytes(300, 2.0))
    at = data.find(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 0x7FFFFFF0)  # claims hours, holds 2 s
    cut = tmp_path / "cut.wav"
    cut.write_bytes(bytes(data))
    out = tmp_path / "out"
    done = featherbeat("analyze", "--via", service.base_url, "-q", str(cut), "-o", f"{out}/")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cut.json"]
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"featherbeat: {cut}: warning: "), lines
    assert "input truncated" in lines[0]


def test_one_file_to_stdout_same_as_the_service_result(service: Service, tmp_path: Path) -> None:
    (track,) = write_tracks(tmp_path, 1)
    done = featherbeat("analyze", "--via", service.base_url, "--format", "beats", str(track))
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""  # not a terminal: no progress bar
    # The same bytes again: the service answers from its cache, the output is identical.
    again = featherbeat("analyze", "--via", service.base_url + "/", "-f", "beats", str(track))
    assert again.returncode == 0 and again.stdout == done.stdout
    status, job = service.upload(track)
    assert status == 202 and job["status"] == "done"
    _, _, body = service.request("GET", f"{job['links']['analysis']}?format=beats")
    assert done.stdout == body


def test_progress_bar_on_a_terminal(service: Service, tmp_path: Path) -> None:
    tracks = write_tracks(tmp_path, 2)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "featherbeat.cli", "analyze", "--via", service.base_url]
            + [*map(str, tracks), "-o", f"{tmp_path / 'out'}/"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(60) == 0
    finally:
        os.close(master)
    text = seen.decode(errors="replace")
    assert "\r[" in text and "2/2 done" in text and "100%" in text  # cli/output.ProgressBar


def test_unusable_url_is_a_usage_error(tmp_path: Path) -> None:
    (track,) = write_tracks(tmp_path, 1)
    done = featherbeat("analyze", "--via", "ftp://example.invalid", str(track))
    assert done.returncode == 2
    assert b"http(s) URL" in done.stderr and len(done.stderr.splitlines()) == 1


def metric(svc: Service, name: str) -> float:
    _status, _headers, body = svc.request("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_full_queue_and_a_web_restart_mid_batch(tmp_path: Path) -> None:
    tracks = write_tracks(tmp_path, 4)
    out = tmp_path / "out"
    with running_service(tmp_path / "svc", env={"FEATHERBEAT_QUEUE_LIMIT": "1"}) as svc:
        svc.stop_worker()  # nothing is analysed: the queue fills after one upload
        proc = subprocess.Popen(
            [sys.executable, "-m", "featherbeat.cli", "analyze", "--via", svc.base_url]
            + [*map(str, tracks), "-o", f"{out}/"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        full = 'featherbeat_uploads_rejected_total{reason="queue_full"}'
        deadline = time.monotonic() + 30
        while metric(svc, full) < 1:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        svc.stop_web()  # the service goes away mid-batch ...
        time.sleep(1)
        svc.start_web()  # ... and comes back (same port); then analyses resume
        svc.start_worker()
        _stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == [f"song{i}.json" for i in range(4)]
