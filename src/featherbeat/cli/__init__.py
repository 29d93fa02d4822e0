"""The ``featherbeat`` command: ``analyze`` (core), ``serve`` and ``worker`` (service).

Each subcommand lives in its own module exposing ``add_parser(subparsers)``, which registers
the subcommand and sets ``func`` (returning the process exit code). The modules always ship and
import only the standard library at load time (the service extras load when a service command
runs), so the analysis core's CLI works without them installed.
"""

from __future__ import annotations

import argparse
import sys

from featherbeat import __version__
from featherbeat.cli import analyze, serve, worker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featherbeat",
        description="Tempo, beats, bars, sections, segments, loudness and key of music tracks.",
    )
    parser.add_argument("--version", action="version", version=f"featherbeat {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (analyze, serve, worker):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
