"""Running one job: claim it, run the analysis child under a watchdog, store the results.

The watchdog polls the child every ``POLL`` seconds: its RSS (VmRSS from /proc/<pid>/status)
against ``FEATHERBEAT_CHILD_MAX_RSS_MB``, its wall time against ``FEATHERBEAT_CHILD_TIMEOUT``.
A child that crosses either, crashes or is killed from outside is retried ONCE with
``reduced=True`` (rhythm and loudness only); a second failure fails the job with a reason a
person can act on. Bad input (exit code 3) fails at once: no retry can help it.

While the child runs, the job's heartbeat is refreshed every ``heartbeat_seconds``; each write
is conditional on still owning the job, so a worker that was presumed dead and whose job was
recovered elsewhere learns it on its next heartbeat, kills its child and walks away.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from featherbeat.analysis.formats import FORMATS
from featherbeat.analysis.progress import Stage
from featherbeat.config import Settings
from featherbeat.jobs.blobs import BlobStore, result_key
from featherbeat.jobs.child import EXIT_BAD_INPUT
from featherbeat.jobs.log import log_event
from featherbeat.jobs.store import Job, JobStore

POLL = 0.2
MAX_CLAIMS = 3  # a job that took its worker down this many times is failed, not retried forever
PROGRESS_EVERY = 0.5  # seconds between progress writes to the store (SSE resolution)

# Stages the child reports, mapped onto the job's overall progress (writing is the last 5 %).
_ANALYSIS_SHARE = 0.95


def read_rss_mb(pid: int) -> float | None:
    """Current resident set (VmRSS) of ``pid`` in MB, None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGKILL the child when the
    # consumer dies (kill -9, OOM), so no orphan analysis keeps running unsupervised.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# A quoted absolute path, or an unquoted one that starts a word ("MP4/M4A" and "1/2" do not).
_PATHISH = re.compile(r"""(['"])/[^'"]*\1|(?<![\w.:/])/(?:[^\s'":,()]+/)*[^\s'":,()]*""")
# Library internals a client cannot act on: "avcodec_open2(...) returned 22", "[Errno 13] ".
_INTERNALS = re.compile(r":?\s*'?\b\w+\([^)]*\)'?\s+returned\s+-?\d+:?|\[Errno -?\d+\]\s*")


def public_message(message: str, filename: str | None, *paths: str | Path) -> str:
    """What a client may read of a failure: the name the person uploaded wherever a server
    path stood (the upload's storage path, temp folders, anything absolute), and no library
    internals. The full message goes to the log only (``job.failed``)."""
    name = filename or "the upload"
    text = _PATHISH.sub(lambda m: f"'{name}'" if m.group(1) else name, message)
    for path in sorted((str(p) for p in paths if str(p)), key=len, reverse=True):
        text = text.replace(path, name)  # relative ones the pattern cannot know
    text = _INTERNALS.sub("", text)
    text = re.sub(r"\(\s+", "(", text)
    return re.sub(r"\s*\(\)", "", text).strip()


# What the analysis child may see of the consumer's environment: enough to find Python, its
# packages and a temp dir, and the numeric libraries' thread settings. Not the API token, the
# broker URL or cloud credentials: FFmpeg and libsndfile parse untrusted bytes in that process.
_CHILD_ENV = re.compile(
    r"^(PATH|HOME|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|PYTHONPATH|PYTHONHOME|PYTHONUNBUFFERED|"
    r"PYTHONDONTWRITEBYTECODE|VIRTUAL_ENV|\w+_NUM_THREADS|MALLOC_\w+)$"
)


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if _CHILD_ENV.match(k)}


def named_as_uploaded(message: str, input_path: Path, filename: str | None) -> str:
    """The decoder names the file it read, which here is the server's storage name (the job
    id or a temporary blob): say the name the person uploaded instead."""
    prefix = f"{input_path.name}: "
    if filename and message.startswith(prefix):
        return f"{filename}: {message[len(prefix) :]}"
    return message


@dataclass
class Outcome:
    """How one child run ended. ``kind``: done | bad_input | failed | lost | stopped."""

    kind: str
    code: str = ""
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float = 0.0


class ActiveChildren:
    """Children of this process, so a stopping consumer can kill them and hand jobs back."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.procs: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}  # owner -> (job, proc)

    def add(self, owner: str, job_id: str, proc: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.procs[owner] = (job_id, proc)

    def remove(self, owner: str) -> None:
        with self.lock:
            self.procs.pop(owner, None)

    def stop_all(self) -> list[tuple[str, str]]:
        """Kill every child; return (owner, job id) pairs whose jobs must go back to the queue."""
        self.stopping.set()
        with self.lock:
            items = list(self.procs.items())
        for _owner, (_job, proc) in items:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        return [(owner, job_id) for owner, (job_id, _proc) in items]


class Runner:
    """The consumer's job handler: ``Runner(...)(job_id)`` runs one job to its end."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        blobs: BlobStore,
        active: ActiveChildren | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.active = active or ActiveChildren()
        self.tmp_root = settings.data_dir / "tmp"
        self.tmp_root.mkdir(parents=True, exist_ok=True)

    def new_owner(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def __call__(self, job_id: str) -> None:
        owner = self.new_owner()
        job = self.store.claim(
            job_id, owner, stale_before=time.time() - self.settings.stale_seconds
        )
        if job is None:
            # Finished, deleted, or alive in another worker: a duplicate message, drop it.
            log_event("job.skipped", job=job_id, reason="not claimable")
            return
        if job.claims > MAX_CLAIMS:
            self._fail(
                job,
                owner,
                "worker_lost",
                f"The analysis was interrupted {job.claims - 1} times because its worker died; "
                "the file may be too demanding for this server. Try a shorter or smaller file.",
            )
            return
        log_event(
            "job.started",
            job=job.id,
            attempts=job.attempts,
            claims=job.claims,
            waited=round(time.time() - job.created_at, 3),
        )
        try:
            self._run(job, owner)
        except Exception as exc:  # never leave a claimed job running without a heartbeat
            if not self.active.stopping.is_set():
                self._fail(
                    job,
                    owner,
                    "internal_error",
                    f"The service failed while handling this job ({type(exc).__name__}); "
                    "upload the file again.",
                )
            raise

    def _run(self, job: Job, owner: str) -> None:
        if not job.upload_key:
            self._fail(job, owner, "upload_missing", "The uploaded file is gone; upload it again.")
            return
        reduced = job.reduced
        attempts = job.attempts
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(
                tempfile.TemporaryDirectory(dir=self.tmp_root, prefix=f"job-{job.id[:8]}-")
            )
            try:
                input_path = stack.enter_context(self.blobs.local_path(job.upload_key, tmp_dir=tmp))
            except KeyError:
                self._fail(
                    job, owner, "upload_missing", "The uploaded file is gone; upload it again."
                )
                return
            while True:
                attempts += 1
                if not self.store.update(
                    job.id,
                    owner,
                    attempts=attempts,
                    reduced=reduced,
                    stage=Stage.DECODING,
                    progress=0.0,
                    heartbeat_at=time.time(),
                ):
                    log_event("job.lost", job=job.id, owner=owner)
                    return
                outdir = Path(tmp) / f"out{attempts}"
                outdir.mkdir()
                outcome = self.run_child(
                    job.id, owner, input_path, outdir, reduced, name=job.filename
                )
                if outcome.kind in ("lost", "stopped"):
                    log_event(f"job.{outcome.kind}", job=job.id, owner=owner)
                    return
                if outcome.kind == "done":
                    self._succeed(job, owner, outdir, outcome)
                    return
                if outcome.kind == "bad_input":
                    message = named_as_uploaded(outcome.message, input_path, job.filename)
                    self._fail(job, owner, outcome.code, message, outcome.peak_rss_mb)
                    return
                if reduced:
                    self._fail(
                        job,
                        owner,
                        outcome.code,
                        outcome.message + " A reduced analysis (rhythm and loudness only) "
                        "failed as well.",
                        outcome.peak_rss_mb,
                    )
                    return
                log_event(
                    "job.retry",
                    job=job.id,
                    reason=outcome.code,
                    message=outcome.message,
                    peak_rss_mb=round(outcome.peak_rss_mb, 1),
                    reduced=True,
                )
                reduced = True

    def run_child(
        self,
        job_id: str,
        owner: str,
        input_path: Path,
        outdir: Path,
        reduced: bool,
        name: str = "",
    ) -> Outcome:
        s = self.settings
        cmd = [
            sys.executable,
            "-m",
            "featherbeat.jobs.child",
            str(input_path),
            str(outdir),
            "--max-duration",
            repr(float(s.max_duration)),
        ]
        if reduced:
            cmd.append("--reduced")
        if name:
            cmd += ["--name", name]
        proc = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
            close_fds=True,  # noqa: PLW1509 (prctl only)
            env=child_env(os.environ),
        )
        self.active.add(owner, job_id, proc)
        messages: deque[dict[str, Any]] = deque()
        tail: deque[str] = deque(maxlen=20)
        readers = [
            threading.Thread(target=_read_protocol, args=(proc.stdout, messages), daemon=True),
            threading.Thread(target=_read_tail, args=(proc.stderr, tail), daemon=True),
        ]
        for t in readers:
            t.start()
        started = time.monotonic()
        last_write = 0.0
        stage, progress, peak = str(Stage.DECODING), 0.0, 0.0
        final: dict[str, Any] | None = None
        killed: tuple[str, str] | None = None
        try:
            while True:
                rc = proc.poll()
                lost = False
                while messages:
                    msg = messages.popleft()
                    if msg.get("event") == "progress":
                        new_stage = str(msg.get("stage") or stage)
                        progress = _overall(new_stage, float(msg.get("progress") or 0.0))
                        if new_stage != stage and not lost:
                            # A new stage is written as it starts, not at the next tick: the
                            # record then passes through every stage in order, however fast
                            # the short ones (rhythm, structure) are.
                            lost = not self.store.update(
                                job_id, owner, stage=new_stage, progress=round(progress, 4)
                            )
                            last_write = time.monotonic()
                        stage = new_stage
                    else:
                        final = msg
                if lost:
                    proc.kill()
                    proc.wait()
                    return Outcome("lost")
                if rc is not None:
                    break
                rss = read_rss_mb(proc.pid)
                if rss is not None:
                    peak = max(peak, rss)
                elapsed = time.monotonic() - started
                if self.active.stopping.is_set():
                    proc.kill()
                    proc.wait()
                    return Outcome("stopped")
                if rss is not None and rss > s.child_max_rss_mb:
                    killed = (
                        "memory_limit",
                        f"The analysis needed more than {s.child_max_rss_mb:g} MB of memory "
                        f"({rss:.0f} MB at {progress:.0%}).",
                    )
                elif elapsed > s.child_timeout:
                    killed = ("time_limit", f"The analysis took longer than {s.child_timeout:g} s.")
                if killed:
                    proc.kill()
                    proc.wait()
                    break
                now = time.monotonic()
                if now - last_write >= min(PROGRESS_EVERY, s.heartbeat_seconds):
                    last_write = now
                    if not self.store.update(
                        job_id,
                        owner,
                        stage=stage,
                        progress=round(progress, 4),
                        heartbeat_at=time.time(),
                    ):
                        proc.kill()
                        proc.wait()
                        return Outcome("lost")
                time.sleep(POLL)
        finally:
            self.active.remove(owner)
            for t in readers:
                t.join(timeout=2)
        if killed:
            return Outcome("failed", killed[0], killed[1], peak_rss_mb=peak)
        rc = proc.returncode
        peak = max(peak, float((final or {}).get("peak_rss_mb") or 0.0))
        if rc == 0 and final and final.get("event") == "done":
            return Outcome("done", info=final, peak_rss_mb=peak)
        if rc == EXIT_BAD_INPUT and final and final.get("event") == "error":
            return Outcome(
                "bad_input", str(final.get("code")), str(final.get("message")), peak_rss_mb=peak
            )
        if self.active.stopping.is_set():
            return Outcome("stopped")
        if rc is not None and rc < 0:
            why = f"The analysis process was killed by signal {signal.Signals(-rc).name}"
            if -rc == signal.SIGKILL:
                why += " (out of memory, or stopped from outside)"
            return Outcome("failed", "analysis_killed", why + ".", peak_rss_mb=peak)
        detail = (final or {}).get("message") or (tail[-1] if tail else f"exit code {rc}")
        return Outcome(
            "failed",
            str((final or {}).get("code") or "analysis_crashed"),
            f"The analysis failed: {detail}.",
            peak_rss_mb=peak,
        )

    def _succeed(self, job: Job, owner: str, outdir: Path, outcome: Outcome) -> None:
        keys = {}
        for fmt in FORMATS:
            key = result_key(job.id, fmt)
            self.blobs.put_file(key, outdir / fmt)
            keys[fmt] = key
        info = outcome.info
        started = job.started_at or job.created_at
        if not self.store.finish(
            job.id,
            owner,
            "done",
            stage=Stage.DONE,
            progress=1.0,
            result_keys=keys,
            duration=info.get("duration"),
            analysis_seconds=info.get("analysis_seconds"),
            peak_rss_mb=round(outcome.peak_rss_mb, 1),
            error_code=None,
            error_message=None,
            warning=info.get("warning") or None,
        ):
            # Someone else finished it meanwhile (we were presumed dead). Result keys are
            # per job, so both wrote the same analysis to the same keys: nothing to undo.
            log_event("job.lost", job=job.id, owner=owner, when="finishing")
            return
        self._drop_upload(job)
        log_event(
            "job.finished",
            job=job.id,
            status="done",
            duration=info.get("duration"),
            seconds=round(time.time() - started, 3),
            analysis_seconds=info.get("analysis_seconds"),
            peak_rss_mb=round(outcome.peak_rss_mb, 1),
            reduced=bool(info.get("reduced")),
            missing=info.get("missing") or {},
        )

    def _fail(self, job: Job, owner: str, code: str, message: str, peak: float = 0.0) -> None:
        if code == "analysis_crashed":
            # A crash's detail is the child's exception or last stderr line: the operator's.
            shown = (
                "The analysis failed unexpectedly (a bug or a file that trips the decoder); "
                "the server log has the details."
            )
        else:
            shown = public_message(message, job.filename, self.settings.data_dir)
        if self.store.finish(
            job.id,
            owner,
            "failed",
            error_code=code,
            error_message=shown,
            peak_rss_mb=round(peak, 1) if peak else None,
        ):
            self._drop_upload(job)
            log_event("job.failed", job=job.id, code=code, reason=message)

    def _drop_upload(self, job: Job) -> None:
        if job.upload_key and not self.settings.keep_uploads:
            self.blobs.delete(job.upload_key)


def _overall(stage: str, fraction: float) -> float:
    if stage in (Stage.WRITING, Stage.DONE):
        return _ANALYSIS_SHARE
    return min(1.0, max(0.0, fraction)) * _ANALYSIS_SHARE


def _read_protocol(stream: IO[bytes], out: deque[dict[str, Any]]) -> None:
    for raw in stream:
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        if isinstance(msg, dict):
            out.append(msg)


def _read_tail(stream: IO[bytes], tail: deque[str]) -> None:
    for raw in stream:
        line = raw.decode("utf-8", "replace").strip()
        if line:
            tail.append(line[:300])


def cleanup_tmp(settings: Settings, older_than: float = 6 * 3600) -> None:
    """Drop temp files a killed consumer or web process left behind (old enough that no live
    job or upload owns them): ``tmp/`` of the runner, ``incoming/`` of the upload handler."""
    limit = time.time() - older_than
    for folder in (settings.data_dir / "tmp", settings.data_dir / "incoming"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime >= limit:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
