"""One analysis in a fresh process: ``python -m featherbeat.jobs.child INPUT OUTDIR [--reduced]
[--max-duration S] [--name UPLOADED_NAME]``, or ``python -m featherbeat.jobs.child --wait``: a
spare started ahead of its job, which imports the analysis first and then reads those
arguments as one JSON list on stdin (EOF without a line: exit 0, nothing done). See
``featherbeat.jobs.supervise`` ("Warm start").

A fresh interpreter (not a fork) so the analysis never inherits the consumer's memory and a
crash or a memory blow-up kills only this process. It knows nothing of jobs, queues or
stores: it reads one file and writes ``OUTDIR/<format>`` for every format, so a result never
needs a second analysis.

Protocol with the watchdog (``featherbeat.jobs.supervise``): the messages and exit codes of
``featherbeat.jobs.protocol``, one JSON line each on the ORIGINAL stdout (the analysis' own
prints are sent to stderr so they cannot corrupt it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import IO, Any

from featherbeat.analysis.formats import FORMATS
from featherbeat.analysis.progress import Stage
from featherbeat.jobs.protocol import (
    EXIT_BAD_INPUT,
    EXIT_DONE,
    Done,
    Error,
    Message,
    Progress,
    encode,
)


def peak_rss_mb() -> float:
    """VmHWM (the kernel's peak resident set) of this process, in MB."""
    with open("/proc/self/status") as fh:
        match = re.search(r"VmHWM:\s+(\d+)\s+kB", fh.read())
    return int(match.group(1)) / 1024 if match else 0.0


class Reporter:
    """Writes protocol lines, throttled so a fast analysis does not flood the pipe."""

    def __init__(self, fd: int, interval: float = 0.2) -> None:
        self.out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self.interval = interval
        self._last = (float("-inf"), "")

    def emit(self, message: Message) -> None:
        self.out.write(encode(message))
        self.out.flush()

    def progress(self, fraction: float, stage: str) -> None:
        now = time.monotonic()
        if stage == self._last[1] and now - self._last[0] < self.interval:
            return
        self._last = (now, stage)
        self.emit(Progress(str(stage), min(1.0, max(0.0, float(fraction)))))


def write_results(profile: Any, outdir: Path) -> None:
    from featherbeat.analysis import formats

    for fmt in FORMATS:
        part = outdir / f"{fmt}.part"
        # Text mode: the serializers produce JSON/text; the rename makes each file all-or-nothing.
        with part.open("w", encoding="utf-8", newline="\n") as fp:
            formats.write(profile, fmt, fp)
        os.replace(part, outdir / fmt)


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    from featherbeat.analysis.errors import DecodeError, InputTooLongError
    from featherbeat.analysis.pipeline import analyze

    started = time.monotonic()
    try:
        profile = analyze(
            args.input,
            progress=reporter.progress,
            reduced=args.reduced,
            max_duration=args.max_duration,
        )
    except InputTooLongError as exc:
        reporter.emit(Error("too_long", str(exc)))
        return EXIT_BAD_INPUT
    except DecodeError as exc:
        reporter.emit(Error("not_audio", str(exc)))
        return EXIT_BAD_INPUT
    if args.name:
        # The input is a stored upload named by its job id; the results (the JAMS title)
        # name the file the person uploaded.
        profile.source.name = args.name
    reporter.emit(Progress(Stage.WRITING, 1.0))
    write_results(profile, Path(args.outdir))
    reporter.emit(
        Done(
            duration=float(profile.duration),
            analysis_seconds=round(time.monotonic() - started, 3),
            peak_rss_mb=round(peak_rss_mb(), 1),
            missing=dict(profile.missing),
            reduced=bool(profile.reduced),
            warning=profile.detailed_status if profile.status_code else None,
        )
    )
    return EXIT_DONE


def _preload() -> None:
    """Import everything an analysis and its writers load, so that a spare's job starts at the
    first decoded block (the libraries' imports are most of a fresh child's start-up CPU).
    numpy loads some submodules on first use (fft, ma): here too. Not PyAV (M4A and the rarer
    containers only): its ~25 MB would sit in every idle spare."""
    import numpy.fft
    import numpy.ma  # noqa: F401
    import soundfile  # noqa: F401
    import soxr  # noqa: F401

    import featherbeat.analysis.formats.beats
    import featherbeat.analysis.formats.jams
    import featherbeat.analysis.formats.spotify
    import featherbeat.analysis.pipeline
    import featherbeat.analysis.rhythm.learned  # noqa: F401
    from featherbeat import config  # noqa: F401 (rhythm.learned reads the settings)


def wait_for_job(stdin: IO[str]) -> list[str] | None:
    """The job's arguments from one JSON line on ``stdin``; None at EOF (a spare let go)."""
    line = stdin.readline()
    if not line.strip():
        return None
    args = json.loads(line)
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError("the job must be a JSON list of strings")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Keep the protocol channel private: fd 1 now goes to stderr for anything else (before a
    # spare's imports too, so nothing they print can corrupt the protocol).
    reporter = Reporter(os.dup(1))
    os.dup2(2, 1)
    if argv == ["--wait"]:
        _preload()
        job = wait_for_job(sys.stdin)
        if job is None:  # let go unused (the consumer stopped): nothing to do
            return 0
        argv = job
        # From here on exactly a cold child: stdin is /dev/null (a test tells a spare still
        # waiting from a child at work by it, /proc/<pid>/fd/0).
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    parser = argparse.ArgumentParser(prog="python -m featherbeat.jobs.child")
    parser.add_argument("input")
    parser.add_argument("outdir")
    parser.add_argument("--reduced", action="store_true")
    parser.add_argument("--max-duration", type=float, default=None)
    parser.add_argument("--name", default="", help="the uploaded file's name, for the results")
    args = parser.parse_args(argv)
    try:
        return run(args, reporter)
    except MemoryError:
        reporter.emit(Error("out_of_memory", "the analysis ran out of memory"))
        return 1
    except Exception as exc:  # a crash: the watchdog retries reduced, then fails with this
        reporter.emit(Error("analysis_crashed", f"{type(exc).__name__}: {exc}"))
        raise


if __name__ == "__main__":
    sys.exit(main())
