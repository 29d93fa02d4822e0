"""The child protocol (featherbeat.jobs.protocol) both sides share, and the supervisor's
judgement of how a child ended, on real child processes (tiny Python scripts speaking it)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from featherbeat.jobs import protocol
from featherbeat.jobs.supervise import ActiveChildren, Ending, Limits, supervise


@pytest.mark.parametrize(
    "message",
    [
        protocol.Progress("rhythm", 0.42),
        protocol.Done(181.2, 3.1, 61.0, {"structure": "too short"}, True),
        protocol.Error("not_audio", "x.wav: no audio stream"),
    ],
)
def test_every_message_round_trips(message: protocol.Message) -> None:
    line = protocol.encode(message)
    assert line.endswith("\n") and line.count("\n") == 1
    assert protocol.decode(line.encode()) == message


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"hello from a stray print",
        b"[1, 2]",
        b'{"event": "progress"}',
        b'{"event": "x"}',
        b'{"event": "done", "duration": 1.0, "analysis_s',
        b'{"event": "error", "code": "c"}',
    ],
)
def test_anything_else_is_not_a_message(line: bytes) -> None:
    assert protocol.decode(line) is None


def run_script(tmp_path: Path, body: str, **limits: float) -> tuple[Ending, str, str]:
    script = tmp_path / "child.py"
    script.write_text(
        "import json, os, sys, time\n"
        "from featherbeat.jobs import protocol\n"
        "out = os.fdopen(1, 'w', buffering=1)\n" + textwrap.dedent(body)
    )
    reports: list[tuple[str, float]] = []

    def report(stage: str, progress: float) -> bool:
        reports.append((stage, progress))
        return limits.get("owned", 1.0) > 0

    outcome = supervise(
        [sys.executable, str(script)],
        Limits(
            max_rss_mb=limits.get("rss", 500.0),
            timeout=limits.get("timeout", 30.0),
            report_every=0.0,
        ),
        report,
        ActiveChildren(),
        "owner",
    )
    return outcome.ending, outcome.code, outcome.message


def test_done_bad_input_crash_and_limits_are_told_apart(tmp_path: Path) -> None:
    done = """
        out.write(protocol.encode(protocol.Progress("rhythm", 0.5)))
        out.write(protocol.encode(protocol.Done(1.0, 0.1, 20.0)))
    """
    assert run_script(tmp_path, done)[0] is Ending.DONE
    bad = """
        out.write(protocol.encode(protocol.Error("not_audio", "x.wav: nothing to decode")))
        sys.exit(protocol.EXIT_BAD_INPUT)
    """
    assert run_script(tmp_path, bad) == (Ending.BAD_INPUT, "not_audio", "x.wav: nothing to decode")
    crash = "print('Traceback: boom', file=sys.stderr)\nsys.exit(1)\n"
    ending, code, message = run_script(tmp_path, crash)
    assert (ending, code) == (Ending.FAILED, "analysis_crashed") and "boom" in message
    # Exit 0 without its final report is a crash too, never a success.
    assert run_script(tmp_path, "sys.exit(0)\n")[:2] == (Ending.FAILED, "analysis_crashed")
    slow = "time.sleep(30)\n"
    assert run_script(tmp_path, slow, timeout=0.5)[:2] == (Ending.FAILED, "time_limit")
    hungry = "block = b'x' * (150 << 20)\ntime.sleep(30)\n"
    assert run_script(tmp_path, hungry, rss=80.0)[:2] == (Ending.FAILED, "memory_limit")
    assert run_script(tmp_path, slow, owned=0.0)[0] is Ending.LOST
