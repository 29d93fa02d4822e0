"""``featherbeat worker``: one huey consumer running analyses (no web server).

Start-up order matters for "no job lost": first the reaper re-enqueues what a previous,
killed consumer left behind, then the consumer starts taking messages. On SIGTERM/SIGINT the
running children are killed and their jobs handed straight back to the queue, so a deploy
or restart costs a job its progress, never the job.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from featherbeat.config import PRIVATE_UMASK


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run a job consumer (analyses uploads queued by `featherbeat serve`)",
        description="Run the job consumer alone: takes queued uploads and analyses them, "
        "each in its own child process under a memory and time watchdog.",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="analyses at once (default: FEATHERBEAT_CONCURRENCY or 1)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from featherbeat.config import ConfigError, Settings

    try:
        settings = Settings.from_env()
        if args.concurrency is not None:
            if args.concurrency < 1:
                raise ConfigError("--concurrency must be at least 1")
            settings = settings.with_(concurrency=args.concurrency)
        return run_consumer(settings)
    except ConfigError as exc:
        print(f"featherbeat worker: {exc}", file=sys.stderr)
        return 2


def run_consumer(settings: Any) -> int:
    from featherbeat.jobs.log import log_event
    from featherbeat.jobs.reaper import Reaper, purge_expired, reap_at_startup, release
    from featherbeat.jobs.runner import ActiveChildren, Runner, cleanup_tmp
    from featherbeat.jobs.services import Services

    # huey logs its own lifecycle on stderr; our job events are the JSON lines on stdout.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    os.umask(PRIVATE_UMASK)  # results and temp files readable by our user only
    services = Services.from_settings(settings)
    active = ActiveChildren()
    runner = Runner(settings, services.store, services.blobs, active)
    cleanup_tmp(settings)
    recovered = reap_at_startup(services)
    purge_expired(services)
    reaper = Reaper(services)
    reaper.start()
    consumer = services.queue.consumer(runner, workers=settings.concurrency)
    log_event(
        "consumer.started",
        concurrency=settings.concurrency,
        recovered=len(recovered),
        data_dir=str(settings.data_dir),
        broker=_broker_label(settings.broker),
    )
    # huey treats SIGTERM as "stop now" and SIGINT as "finish running tasks first"; an
    # analysis can take minutes, longer than any platform waits, so both mean stop now.
    consumer._graceful_sig = -1  # noqa: SLF001 (no public switch in huey)
    consumer._signal_actions = {signal.SIGTERM: (False, False), signal.SIGINT: (False, False)}  # noqa: SLF001
    try:
        consumer.run()
    finally:
        reaper.stop()
        owned = active.stop_all()
        release(services, owned)
        log_event("consumer.stopped", released=len(owned))
    return 0


def _broker_label(broker: str | None) -> str:
    """The broker for the log line, without its password (Redis URLs may carry one)."""
    if not broker:
        return "sqlite"
    from featherbeat.jobs.services import redact_url

    return redact_url(broker)
