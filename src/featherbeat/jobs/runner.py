"""Running one job: claim it, run the analysis child under its supervisor, store the results.

The child and its watchdog live in ``featherbeat.jobs.supervise``; this module turns their
``Ending`` into job states. A child that crosses a limit, crashes or is killed from outside
(``FAILED``) is retried ONCE with ``reduced=True`` (rhythm and loudness only); a second failure
fails the job with a reason a person can act on. Bad input (``BAD_INPUT``) fails at once: no
retry can help it.

While the child runs, the job's heartbeat is refreshed every ``heartbeat_seconds`` (the
supervisor's ``report``), and so it is while the upload is fetched and the results are stored
(``_lease``); each write is conditional on still owning the job, so a worker that was presumed
dead and whose job was recovered elsewhere learns it on its next heartbeat, kills its child and
walks away (``LOST``).

A job can be analysed twice (at-least-once: a run whose heartbeat went stale, e.g. a paused or
CPU-starved worker, is taken over), but only one result is ever published: each run stores its
results under its own keys (``result_key(job, fmt, run)``), only the run whose conditional
``finish`` wins gets them named in the record, and a run that loses deletes what it stored.
A run checks it still owns the job before storing anything, so a loser usually stores nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from featherbeat.analysis.formats import FORMATS
from featherbeat.analysis.progress import Stage
from featherbeat.config import Settings
from featherbeat.jobs.blobs import BlobStore, result_key
from featherbeat.jobs.log import log_event
from featherbeat.jobs.store import Job, JobStore
from featherbeat.jobs.supervise import (
    ActiveChildren,
    Ending,
    Limits,
    Outcome,
    child_command,
    supervise,
)

MAX_CLAIMS = 3  # a job that took its worker down this many times is failed, not retried forever
PROGRESS_EVERY = 0.5  # seconds between progress writes to the store (SSE resolution)


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


def named_as_uploaded(message: str, input_path: Path, filename: str | None) -> str:
    """The decoder names the file it read, which here is the server's storage name (the job
    id or a temporary blob): say the name the person uploaded instead."""
    prefix = f"{input_path.name}: "
    if filename and message.startswith(prefix):
        return f"{filename}: {message[len(prefix) :]}"
    return message


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

    @staticmethod
    def run_token(owner: str) -> str:
        """The per-run part of an owner (``new_owner``'s random token): names the run's
        result keys."""
        return owner.rsplit(":", 1)[-1]

    @contextlib.contextmanager
    def _lease(self, job_id: str, owner: str) -> Iterator[threading.Event]:
        """Keep the job's heartbeat fresh while this thread does something long that is not
        the child (fetching a large upload, storing large results), so a live run is never
        presumed dead for the size of its files. The event is set once the lease is lost."""
        lost, done = threading.Event(), threading.Event()

        def beat() -> None:
            while not done.wait(self.settings.heartbeat_seconds):
                try:
                    if not self.store.update(job_id, owner, heartbeat_at=time.time()):
                        lost.set()
                        return
                except Exception as exc:  # the store briefly unreachable: try again next beat
                    log_event("job.heartbeat_error", job=job_id, error=type(exc).__name__)

        thread = threading.Thread(target=beat, name=f"lease-{job_id[:8]}", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            done.set()
            thread.join()

    def __call__(self, job_id: str) -> None:
        owner = self.new_owner()
        stale_before = time.time() - self.settings.stale_seconds
        job = self.active.hold(
            owner, job_id, lambda: self.store.claim(job_id, owner, stale_before=stale_before)
        )
        if job is None:
            # Finished, deleted, or alive in another worker: a duplicate message, drop it.
            # (Or this consumer is stopping: the job stays queued for the next one.)
            reason = "consumer stopping" if self.active.stopping.is_set() else "not claimable"
            log_event("job.skipped", job=job_id, reason=reason)
            return
        try:
            self._claimed(job, owner)
        finally:
            self.active.done(owner)

    def _claimed(self, job: Job, owner: str) -> None:
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
            owner=owner,
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
                with self._lease(job.id, owner):
                    input_path = stack.enter_context(
                        self.blobs.local_path(job.upload_key, tmp_dir=tmp)
                    )
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
                if outcome.ending in (Ending.LOST, Ending.STOPPED):
                    log_event(f"job.{outcome.ending.value}", job=job.id, owner=owner)
                    return
                if outcome.ending is Ending.DONE:
                    self._succeed(job, owner, outdir, outcome)
                    return
                if outcome.ending is Ending.BAD_INPUT:
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

        def report(stage: str, progress: float) -> bool:
            return self.store.update(
                job_id, owner, stage=stage, progress=progress, heartbeat_at=time.time()
            )

        return supervise(
            child_command(input_path, outdir, reduced, s.max_duration, name),
            Limits(
                max_rss_mb=s.child_max_rss_mb,
                timeout=s.child_timeout,
                report_every=min(PROGRESS_EVERY, s.heartbeat_seconds),
            ),
            report,
            self.active,
            owner,
        )

    def _succeed(self, job: Job, owner: str, outdir: Path, outcome: Outcome) -> None:
        info = outcome.done
        assert info is not None  # an Ending.DONE outcome always carries the child's report
        # Still ours? A run presumed dead while its child finished (paused, starved) learns it
        # here and stores nothing. The keys are this run's own, so even a run that loses the
        # job after this check never overwrites the result the record names.
        if not self.store.update(job.id, owner, heartbeat_at=time.time()):
            log_event("job.lost", job=job.id, owner=owner, when="storing")
            return
        run = self.run_token(owner)
        keys: dict[str, str] = {}
        try:
            with self._lease(job.id, owner):
                for fmt in FORMATS:
                    key = result_key(job.id, fmt, run)
                    self.blobs.put_file(key, outdir / fmt)
                    keys[fmt] = key
        except BaseException:  # e.g. storage full: no half-stored run left behind
            self._drop_results(keys)
            raise
        won = self.store.finish(
            job.id,
            owner,
            "done",
            stage=Stage.DONE,
            progress=1.0,
            result_keys=keys,
            duration=info.duration,
            analysis_seconds=info.analysis_seconds,
            peak_rss_mb=round(outcome.peak_rss_mb, 1),
            error_code=None,
            error_message=None,
            warning=info.warning,
        )
        if not won:
            # Taken over meanwhile: the record names the winner's results, or the job is gone.
            self._drop_results(keys)
            log_event("job.lost", job=job.id, owner=owner, when="finishing")
            return
        started = job.started_at or job.created_at
        self._drop_upload(job)
        log_event(
            "job.finished",
            job=job.id,
            status="done",
            duration=info.duration,
            seconds=round(time.time() - started, 3),
            analysis_seconds=info.analysis_seconds,
            peak_rss_mb=round(outcome.peak_rss_mb, 1),
            reduced=info.reduced,
            missing=info.missing,
            warm=outcome.warm,  # its child was a spare that had imported ahead (supervise.py)
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
        else:  # taken over (or deleted) meanwhile: the job's end is another run's
            log_event("job.lost", job=job.id, owner=owner, when="failing")

    def _drop_results(self, keys: dict[str, str]) -> None:
        for key in keys.values():
            with contextlib.suppress(Exception):  # best effort: the caller's outcome stands
                self.blobs.delete(key)

    def _drop_upload(self, job: Job) -> None:
        if job.upload_key and not self.settings.keep_uploads:
            self.blobs.delete(job.upload_key)


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
