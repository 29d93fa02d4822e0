"""``featherbeat worker``: one huey consumer running analyses (no web server).

Only the command line lives here; the consumer's lifecycle (start-up recovery, signals, the
stop that hands running jobs back) is ``featherbeat.jobs.consumer``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


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
    from featherbeat.jobs.consumer import run_consumer

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
