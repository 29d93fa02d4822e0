"""Supervising one analysis child: spawn it, read its protocol, watch its memory and time.

``supervise(...)`` runs ``python -m featherbeat.jobs.child`` and returns an ``Outcome`` whose
``ending`` is one of ``Ending``. It knows nothing of job records: every ``report_every``
seconds it calls ``report(stage, progress)``, and a False answer (the caller no longer owns
the job) kills the child and ends in ``LOST``. The runner (``featherbeat.jobs.runner``) turns
endings into job states and retries.

The watchdog polls the child every ``POLL`` seconds: its RSS (VmRSS from /proc/<pid>/status)
against ``Limits.max_rss_mb``, its wall time against ``Limits.timeout``. A child that crosses
either is killed and ends in ``FAILED`` with the reason; so does one that crashes or is killed
from outside. A child that reports bad input (exit code ``EXIT_BAD_INPUT`` and an error
message) ends in ``BAD_INPUT``. ``ActiveChildren.stop_all()`` (a stopping consumer) kills every
child, which then ends in ``STOPPED``.

Warm start: a fresh interpreter that imports numpy, libsndfile, soxr and the analysis costs
~0.2 CPU-s before it reads a byte, which on a 0.1-CPU host is ~2 s of every job's wall time.
With ``ActiveChildren(warm=True)`` (the consumer, unless ``FEATHERBEAT_WARM_CHILD=0``) the
next job's child is started while a worker is idle (``keep_spare()``, from the consumer's main
thread): ``SPARE_COMMAND``, started exactly as a cold child (``start_child``: the minimal
environment, the default signal mask, SIGKILL when the consumer dies), imports everything and
blocks on its stdin. ``spawn()`` hands it the job's arguments as one JSON line (then it puts
/dev/null on its stdin, as a cold child has) and it is watched from there exactly as a child
started for the job (its wall-time limit counts from the hand-over). Still one fresh process
per job that never saw the consumer's memory; a spare idles at its import footprint (~33 MB)
and exists only while a worker is idle, so it never stacks on a running analysis of a one-job
consumer. A spare that died while waiting means a cold start for the next job, and a new
spare after a growing pause (1 s to 5 min: one that cannot start never spins); a stopping
consumer kills and reaps it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, TypeVar

from featherbeat.analysis.progress import Stage
from featherbeat.jobs.protocol import EXIT_BAD_INPUT, EXIT_DONE, Done, Error, Message, Progress
from featherbeat.jobs.protocol import decode as decode_message

POLL = 0.2
# How long to wait for the child's output to be read once it has exited or been killed. Its
# pipes are then at EOF, so this bounds only a pathological case (something else holding them);
# it used to be 2 s per reader, which a starved reader thread could miss on a loaded machine,
# and a finished analysis whose "done" line was not read yet was judged a crash and run again
# (reduced).
READERS_GRACE = 60.0
# The child's stages mapped onto the job's overall progress (storing results is the last 5 %).
ANALYSIS_SHARE = 0.95

# stage, overall progress -> True while the caller still owns the job
Report = Callable[[str, float], bool]
T = TypeVar("T")


class Ending(Enum):
    DONE = "done"  # results written to the output folder
    BAD_INPUT = "bad_input"  # the input is not analysable: no retry can help
    FAILED = "failed"  # crashed, killed, or over a limit: a reduced retry may help
    LOST = "lost"  # the job was taken over elsewhere: walk away
    STOPPED = "stopped"  # this consumer is stopping: the job goes back to the queue


@dataclass
class Outcome:
    ending: Ending
    code: str = ""
    message: str = ""
    done: Done | None = None  # the child's final report when DONE
    peak_rss_mb: float = 0.0
    warm: bool = False  # the child was a spare, started before the job (warm start)


@dataclass(frozen=True)
class Limits:
    max_rss_mb: float
    timeout: float
    report_every: float


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


# What the analysis child may see of the consumer's environment: enough to find Python, its
# packages and a temp dir, the numeric libraries' thread settings, and the analysis' own
# settings (the beat tracker and its weights, read by rhythm.learned). Not the API token, the
# broker URL or cloud credentials: FFmpeg and libsndfile parse untrusted bytes in that process.
_CHILD_ENV = re.compile(
    r"^(PATH|HOME|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|PYTHONPATH|PYTHONHOME|PYTHONUNBUFFERED|"
    r"PYTHONDONTWRITEBYTECODE|VIRTUAL_ENV|\w+_NUM_THREADS|MALLOC_\w+|"
    r"FEATHERBEAT_RHYTHM|FEATHERBEAT_RHYTHM_WEIGHTS)$"
)


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if _CHILD_ENV.match(k)}


def _in_child() -> None:
    # Runs in the child between fork and exec. The consumer's worker threads block its stop
    # signals (only its main thread takes them, see featherbeat.jobs.consumer) and a mask
    # survives exec: give the child the default one back.
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    # Ask the kernel to SIGKILL the child when the consumer dies (kill -9, OOM), so no orphan
    # analysis keeps running unsupervised.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# Every analysis child is this command plus its arguments; the spare is it plus ``--wait``.
CHILD_COMMAND = [sys.executable, "-m", "featherbeat.jobs.child"]
SPARE_COMMAND = [*CHILD_COMMAND, "--wait"]


def start_child(cmd: list[str], *, stdin: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start an analysis child (or any ``cmd`` under the same rules): the minimal environment
    of :func:`child_env`, the default signal mask, killed when the consumer dies."""
    return subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
        cmd,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_in_child,
        close_fds=True,  # noqa: PLW1509 (prctl only)
        env=child_env(os.environ),
    )


SPARE_BACKOFF = (1.0, 300.0)  # seconds before a spare that died is started again: first, most


class ActiveChildren:
    """The jobs this process is running and their children, so a stopping consumer can kill
    the children and hand every job back; with ``warm=True`` also the spare child that waits
    for the next job (module docstring, "Warm start").

    One lock orders claims and spawns against ``stop_all()``: a job is either claimed before
    the stop (and then among the jobs it returns) or not claimed at all, and a child (the
    spare too) is either started before the stop (and killed by it) or not started at all.
    """

    def __init__(self, warm: bool = False) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.jobs: dict[str, str] = {}  # owner -> job id
        self.procs: dict[str, subprocess.Popen[bytes]] = {}  # owner -> its running child
        self.warm = warm
        self.spare: subprocess.Popen[bytes] | None = None  # started, waiting for a job
        self._spare_backoff = SPARE_BACKOFF[0]
        self._spare_not_before = 0.0  # monotonic time before which no new spare is started

    def keep_spare(self, capacity: int) -> int | None:
        """Start the next job's child if warm start is on, fewer than ``capacity`` jobs run
        here (a worker is idle: a spare never stacks its imports on a running analysis of a
        one-job consumer) and no spare is alive. Returns the exit code of a spare found dead
        meanwhile (it is then started again after a growing pause, so a spare that cannot
        start never spins), else None. The consumer's main thread calls it every tick: the
        spare's parent-death signal follows the thread that started it, and that thread lives
        as long as the consumer. Skipped when the lock is busy (a claim can wait on the store
        for seconds): the main thread must keep answering stop signals; the next tick retries."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            if not self.warm or self.stopping.is_set():
                return None
            died = None
            if self.spare is not None:
                if self.spare.poll() is None:
                    return None
                died = self.spare.returncode
                _discard(self.spare)
                self.spare = None
                now = time.monotonic()
                self._spare_not_before = now + self._spare_backoff
                self._spare_backoff = min(self._spare_backoff * 2, SPARE_BACKOFF[1])
            if len(self.jobs) < capacity and time.monotonic() >= self._spare_not_before:
                self.spare = start_child(SPARE_COMMAND, stdin=subprocess.PIPE)
            return died
        finally:
            self.lock.release()

    def _hand_over(self, args: list[str]) -> subprocess.Popen[bytes] | None:
        """The spare, now running the job ``args``; None when there is no live spare (the
        caller then starts a cold child). Called with the lock held."""
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        if spare.poll() is not None or spare.stdin is None:
            _discard(spare)  # died while waiting: the keep loop's backoff does not apply here
            return None
        try:
            spare.stdin.write(json.dumps(args).encode() + b"\n")
            spare.stdin.close()
        except OSError:  # it died between poll() and the write (EPIPE)
            _discard(spare)
            return None
        self._spare_backoff = SPARE_BACKOFF[0]
        return spare

    def hold(self, owner: str, job_id: str, claim: Callable[[], T | None]) -> T | None:
        """``claim()``, and if it wins, count ``job_id`` as running here under ``owner``;
        None without calling it once stopping."""
        with self.lock:
            if self.stopping.is_set():
                return None
            got = claim()
            if got is not None:
                self.jobs[owner] = job_id
            return got

    def done(self, owner: str) -> None:
        """The job of ``owner`` is no longer ours to hand back (finished, lost, released)."""
        with self.lock:
            self.jobs.pop(owner, None)
            self.procs.pop(owner, None)

    def spawn(self, owner: str, cmd: list[str]) -> tuple[subprocess.Popen[bytes], bool] | None:
        """The child of ``owner``'s job running ``cmd`` (a ``child_command``) and whether it
        was warm: the spare, handed the command's arguments, when one waits, else a cold
        start; None without starting anything once stopping."""
        with self.lock:
            if self.stopping.is_set():
                return None
            prefix = CHILD_COMMAND
            proc = self._hand_over(cmd[len(prefix) :]) if cmd[: len(prefix)] == prefix else None
            warm = proc is not None
            if proc is None:
                proc = start_child(cmd)
            self.procs[owner] = proc
            return proc, warm

    def child_ended(self, owner: str) -> None:
        with self.lock:
            self.procs.pop(owner, None)

    def stop_all(self) -> list[tuple[str, str]]:
        """Kill every child and the spare; return (owner, job id) pairs whose jobs must go back
        to the queue."""
        with self.lock:
            self.stopping.set()
            jobs = list(self.jobs.items())
            procs = list(self.procs.values())
            spare, self.spare = self.spare, None
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if spare is not None:  # nobody else waits for it: reaped here, no zombie left
            _discard(spare)
        return jobs


def _discard(proc: subprocess.Popen[bytes]) -> None:
    """Kill (if alive) and reap a child nobody watches, and close its pipes."""
    with contextlib.suppress(ProcessLookupError):
        if proc.poll() is None:
            proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def child_command(
    input_path: Path, outdir: Path, reduced: bool, max_duration: float, name: str = ""
) -> list[str]:
    cmd = [
        *CHILD_COMMAND,
        str(input_path),
        str(outdir),
        "--max-duration",
        repr(float(max_duration)),
    ]
    if reduced:
        cmd.append("--reduced")
    if name:
        cmd += ["--name", name]
    return cmd


def overall_progress(stage: str, fraction: float) -> float:
    if stage in (Stage.WRITING, Stage.DONE):
        return ANALYSIS_SHARE
    return min(1.0, max(0.0, fraction)) * ANALYSIS_SHARE


def supervise(
    cmd: list[str], limits: Limits, report: Report, active: ActiveChildren, owner: str
) -> Outcome:
    """Run ``cmd`` (a ``child_command``) to its end under the watchdog; see the module docstring."""

    spawned = active.spawn(owner, cmd)
    if spawned is None:
        return Outcome(Ending.STOPPED)
    proc, warm = spawned
    watch = _Watch(proc, limits, report, active)
    try:
        early = watch.run()
    except BaseException:  # e.g. the store unreachable in report(): no child left unwatched
        watch.kill()
        raise
    finally:
        active.child_ended(owner)
        watch.join_readers()
    outcome = early or watch.judge()
    outcome.warm = warm
    return outcome


class _Watch:
    """The state of one supervised child: what it said, its peak memory, why it was killed."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        limits: Limits,
        report: Report,
        active: ActiveChildren,
    ) -> None:
        self.proc, self.limits, self.report, self.active = proc, limits, report, active
        self.messages: deque[Message] = deque()
        self.tail: deque[str] = deque(maxlen=20)
        self.readers = [
            threading.Thread(target=_read_protocol, args=(proc.stdout, self.messages), daemon=True),
            threading.Thread(target=_read_tail, args=(proc.stderr, self.tail), daemon=True),
        ]
        for t in self.readers:
            t.start()
        self.stage, self.progress, self.peak = str(Stage.DECODING), 0.0, 0.0
        self.final: Done | Error | None = None
        self.killed: tuple[str, str] | None = None

    def run(self) -> Outcome | None:
        """Poll until the child exits or is killed; an Outcome when it ends early (LOST,
        STOPPED), else None and ``judge()`` says how it ended."""
        started = time.monotonic()
        last_report = 0.0
        while True:
            rc = self.proc.poll()
            stage = self.stage
            self._drain()
            if self.stage != stage:
                # A new stage is reported as it starts, not at the next tick: the record then
                # passes through every stage in order, however fast the short ones are.
                last_report = time.monotonic()
                if not self.report(self.stage, round(self.progress, 4)):
                    self.kill()
                    return Outcome(Ending.LOST)
            if rc is not None:
                return None
            rss = read_rss_mb(self.proc.pid)
            if rss is not None:
                self.peak = max(self.peak, rss)
            if self.active.stopping.is_set():
                self.kill()
                return Outcome(Ending.STOPPED)
            self.killed = self._over_limit(rss, time.monotonic() - started)
            if self.killed:
                self.kill()
                return None
            now = time.monotonic()
            if now - last_report >= self.limits.report_every:
                last_report = now
                if not self.report(self.stage, round(self.progress, 4)):
                    self.kill()
                    return Outcome(Ending.LOST)
            time.sleep(POLL)

    def _drain(self) -> None:
        while self.messages:
            msg = self.messages.popleft()
            if isinstance(msg, Progress):
                self.stage = msg.stage or self.stage
                self.progress = overall_progress(self.stage, msg.progress)
            else:
                self.final = msg

    def _over_limit(self, rss: float | None, elapsed: float) -> tuple[str, str] | None:
        limits = self.limits
        if rss is not None and rss > limits.max_rss_mb:
            return (
                "memory_limit",
                f"The analysis needed more than {limits.max_rss_mb:g} MB of memory "
                f"({rss:.0f} MB at {self.progress:.0%}).",
            )
        if elapsed > limits.timeout:
            return ("time_limit", f"The analysis took longer than {limits.timeout:g} s.")
        return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def join_readers(self) -> None:
        """Wait until both pipes are read to their end (the child is gone: an event, not a
        guess), then take the last lines, which may arrive after the exit was seen."""
        deadline = time.monotonic() + READERS_GRACE
        for t in self.readers:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self._drain()

    def judge(self) -> Outcome:
        """How a child that exited (or was killed over a limit) ended."""
        peak = self.peak
        if self.killed:
            return Outcome(Ending.FAILED, *self.killed, peak_rss_mb=peak)
        rc, final = self.proc.returncode, self.final
        if isinstance(final, Done):
            peak = max(peak, final.peak_rss_mb)
        if rc == EXIT_DONE and isinstance(final, Done):
            return Outcome(Ending.DONE, done=final, peak_rss_mb=peak)
        if rc == EXIT_BAD_INPUT and isinstance(final, Error):
            return Outcome(Ending.BAD_INPUT, final.code, final.message, peak_rss_mb=peak)
        if self.active.stopping.is_set():
            return Outcome(Ending.STOPPED)
        if rc is not None and rc < 0:
            why = f"The analysis process was killed by signal {signal.Signals(-rc).name}"
            if -rc == signal.SIGKILL:
                why += " (out of memory, or stopped from outside)"
            return Outcome(Ending.FAILED, "analysis_killed", why + ".", peak_rss_mb=peak)
        error = final if isinstance(final, Error) else None
        detail = (error.message if error else "") or (
            self.tail[-1] if self.tail else f"exit code {rc}"
        )
        return Outcome(
            Ending.FAILED,
            (error.code if error else "") or "analysis_crashed",
            f"The analysis failed: {detail}.",
            peak_rss_mb=peak,
        )


def _read_protocol(stream: IO[bytes], out: deque[Message]) -> None:
    for raw in stream:
        msg = decode_message(raw)
        if msg is not None:
            out.append(msg)


def _read_tail(stream: IO[bytes], tail: deque[str]) -> None:
    for raw in stream:
        line = raw.decode("utf-8", "replace").strip()
        if line:
            tail.append(line[:300])
