"""The consumer's lifecycle: start-up recovery, the huey consumer, and a stop that loses nothing.

``run_consumer(settings)`` is what ``featherbeat worker`` runs (the CLI only parses flags).
Start-up order matters for "no job lost": first the reaper re-enqueues what a previous, killed
consumer left behind, then the consumer starts taking messages. On SIGTERM or SIGINT the
running children are killed and their jobs handed straight back to the queue, so a deploy or
restart costs a job its progress, never the job.

huey's own ``Consumer.run()`` treats SIGINT as "finish the running tasks first", and an
analysis can take minutes, longer than any platform waits before SIGKILL. So this module
drives huey through its public ``start()``, ``check_worker_health()`` and ``stop()`` only and
installs its own handlers (both signals mean "stop now"), instead of rewriting huey's private
signal table: that works the same on every huey version pyproject accepts.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from types import FrameType
from typing import Any

from featherbeat.config import PRIVATE_UMASK, Settings
from featherbeat.jobs.log import log_event
from featherbeat.jobs.reaper import Reaper, hand_back, purge_expired, reap_at_startup
from featherbeat.jobs.runner import Runner, cleanup_tmp
from featherbeat.jobs.services import Services, redact_url
from featherbeat.jobs.supervise import ActiveChildren

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HEALTH_EVERY = 10.0  # seconds between checks that huey's worker threads are alive


class ConsumerProcess:
    """One consumer: ``start()``, then ``wait()`` until ``stop()`` (or a stop signal)."""

    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        self.settings = settings
        self.services = services if services is not None else Services.from_settings(settings)
        # warm: the next job's analysis child is started (and imports) while a worker is idle.
        self.active = ActiveChildren(warm=settings.warm_child)
        self.runner = Runner(settings, self.services.store, self.services.blobs, self.active)
        self.reaper = Reaper(self.services)
        # A plain flag, not a threading.Event: the stop signals' handler sets it, and a Python
        # signal handler runs in the main thread between two bytecodes of whatever it was
        # doing. Event.set() takes the event's lock, which wait() holds for a few bytecodes of
        # every poll: a signal landing there deadlocked the consumer on itself (a SIGTERM it
        # never acted on; the flaky stop-signal tests under load).
        self.stop_requested = False
        self.huey_consumer: Any = None

    def start(self) -> None:
        cleanup_tmp(self.settings)
        recovered = reap_at_startup(self.services)
        purge_expired(self.services)
        self.reaper.start()
        self.huey_consumer = self.services.queue.consumer(
            self.runner, workers=self.settings.concurrency
        )
        self.huey_consumer.start()
        self.keep_spare()
        log_event(
            "consumer.started",
            concurrency=self.settings.concurrency,
            recovered=len(recovered),
            data_dir=str(self.settings.data_dir),
            broker=redact_url(self.settings.broker) if self.settings.broker else "sqlite",
        )

    def wait(self) -> None:
        """Block until ``stop()``, checking huey's workers meanwhile (a dead one is replaced)."""
        next_check = time.monotonic() + HEALTH_EVERY
        while not self.stop_requested:
            time.sleep(0.1)  # a stop signal's handler runs here; no lock is held
            self.keep_spare()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + HEALTH_EVERY
                self.huey_consumer.check_worker_health()

    def keep_spare(self) -> None:
        """A spare analysis child for the next job whenever a worker is idle (warm start,
        ``featherbeat.jobs.supervise``); only ever from the main thread, whose life the spare's
        parent-death signal follows."""
        died = self.active.keep_spare(self.settings.concurrency)
        if died is not None:
            log_event("child.spare_died", returncode=died)

    def stop(self) -> None:
        """Ask ``wait()`` to return within 0.1 s (safe from a signal handler and from any
        thread: one store of a flag, no lock)."""
        self.stop_requested = True

    def shutdown(self) -> list[tuple[str, str]]:
        """Kill running children, hand their jobs back, stop huey; the released (owner, job)."""
        self.reaper.stop()
        # huey first, so no worker thread takes another message (a released job's among
        # them); then the children: a worker thread blocked in supervise() returns STOPPED
        # at once and leaves its job record alone, so the hand-back is the only writer.
        if self.huey_consumer is not None:
            self.huey_consumer.stop(graceful=False)
        owned = self.active.stop_all()
        hand_back(self.services, owned)
        log_event("consumer.stopped", released=len(owned))
        return owned


def run_consumer(settings: Settings) -> int:
    """The whole life of ``featherbeat worker``: returns its exit code once stopped."""
    # huey logs its own lifecycle on stderr; our job events are the JSON lines on stdout.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    os.umask(PRIVATE_UMASK)  # results and temp files readable by our user only
    consumer = ConsumerProcess(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        consumer.stop()

    # Blocked while huey starts: its start() installs its own handlers, which ours replace
    # before any stop signal can reach either; a signal sent meanwhile waits, then reaches ours.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        consumer.start()
        for signum in STOP_SIGNALS:
            signal.signal(signum, on_signal)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        consumer.wait()
    finally:
        consumer.shutdown()
    return 0
