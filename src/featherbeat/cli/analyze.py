"""``featherbeat analyze FILE [FILE ...] [-o FILE_OR_DIR] [--format spotify|beats|jams] [--quiet]``

Two modes, as madmom's programs: one file goes to stdout (or to ``-o FILE``, or into ``-o DIR/``);
several files go into the folder ``-o DIR/`` as ``<name>.json`` / ``.beats`` / ``.jams``. A
trailing slash or an existing directory always means a folder. A file that cannot be read gets
one line on stderr and the batch goes on; the exit code is 1 when any input was unreadable, 2 for
bad usage, 0 otherwise. An analysis with a non-zero ``meta.status_code`` (an input cut short, a
stage that failed) gets one ``warning`` line on stderr, also with ``--quiet`` (which silences the
progress bar only); the exit code stays 0, as the output is usable.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# The analysis is single-threaded by design (one core per job in the service). OpenBLAS would
# otherwise start a spinning thread per core for the small matrix products of the features,
# which doubles the CPU time and adds memory. Must be set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from featherbeat.analysis.formats import FORMATS  # noqa: E402 (numpy-free)
from featherbeat.cli.output import (  # noqa: E402 (stdlib only)
    ProgressBar,
    atomic_file,
    fail,
    targets,
    warning_line,
)

if TYPE_CHECKING:
    from featherbeat.analysis.profile import Profile

DEFAULT_MAX_MINUTES: float | None = None
"""No limit by default: the analysis keeps memory flat at any length (issue 13; a 6-hour Opus
file peaks under 100 MB, docs/benchmarks/memory_speed.md), so the CLI analyses whatever it can
decode. ``--max-minutes`` still lets a caller refuse long inputs (time, not memory)."""


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes, got {text!r}")
    return value


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="analyse audio files (tempo, beats, bars, sections, segments, key)",
        description="Analyse audio files and write Spotify audio-analysis JSON, .beats or JAMS.",
    )
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="audio files (mp3, wav, flac, ogg, opus, m4a, ...)"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE_OR_DIR",
        help="output file (one input), or folder: a name ending in / or an existing folder "
        "(needed for several inputs; created when missing); default: stdout",
    )
    p.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="spotify",
        help="output format (default: spotify)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (warnings are still shown)"
    )
    p.add_argument(
        "--max-minutes",
        type=_positive_minutes,
        default=DEFAULT_MAX_MINUTES,
        metavar="N",
        help="refuse inputs longer than N minutes (default: no limit; memory does not grow "
        "with the length)",
    )
    p.add_argument(
        "--rhythm",
        choices=("fused", "learned", "committee", "dsp"),
        default=None,
        help="beat tracker: fused (the onset-curve tracker with the trained model's cues), "
        "learned (the small trained model), committee (whichever of fused, learned and dsp "
        "agrees most with the other two) or dsp (the onset-curve tracker) (default: "
        "FEATHERBEAT_RHYTHM, else the one that measures better, see docs/rhythm.md)",
    )
    p.add_argument(
        "--via",
        metavar="URL",
        help="analyse on the featherbeat service at URL (e.g. http://127.0.0.1:8000) instead of "
        "locally: each file is uploaded, its job followed and its result written as a local run "
        "writes it; the token in FEATHERBEAT_API_TOKEN is sent when set",
    )
    p.set_defaults(func=run)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[TextIO]:
    """Send file descriptor 2 to /dev/null while decoding; yield a stream to the real stderr.

    libmpg123 (inside libsndfile) prints resync notes and "part2_3_length" errors straight to
    fd 2 on many ordinary MP3s; the user should see one line per problem, from us. The CLI is
    single-threaded, so nothing else loses output meanwhile.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    real = os.fdopen(os.dup(saved), "w", encoding="utf-8", errors="replace")
    try:
        os.dup2(devnull, 2)
        yield real
    finally:
        real.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        real.close()


def _write(profile: Profile, fmt: str, target: Path | None) -> None:
    from featherbeat.analysis import formats

    if target is None:
        formats.write(profile, fmt, sys.stdout)
        sys.stdout.flush()
        return
    with atomic_file(target) as raw:
        fp = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        formats.write(profile, fmt, fp)
        fp.flush()
        fp.detach()  # atomic_file closes the file


def run(args: argparse.Namespace) -> int:
    if getattr(args, "via", None):
        from featherbeat.cli import via

        return via.run(args)
    where = targets(args)
    if where is None:
        return 2
    # numpy and the analysis modules: ~0.1 CPU-s of imports, ~100 000 objects that live to
    # the end. Their allocations set off ~35 cyclic-garbage collections that find nothing, and
    # the first collections after them traverse them all again: ~0.015 CPU-s per run, 0.005
    # with collection paused for the imports and the survivors frozen (left out of later
    # collections; gc.freeze() is meant for exactly such long-lived start-up objects).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        from featherbeat.analysis.errors import DecodeError
        from featherbeat.analysis.pipeline import analyze
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()

    show_bar = not args.quiet and sys.stderr.isatty()
    status = 0
    for path, target in zip(args.files, where, strict=True):
        try:
            with _native_stderr_silenced() as err:
                bar = ProgressBar(err, enabled=show_bar, label=os.path.basename(path)[:40])
                try:
                    profile = analyze(
                        path,
                        progress=bar.progress if show_bar else None,
                        max_duration=None if args.max_minutes is None else args.max_minutes * 60,
                        rhythm=args.rhythm,
                    )
                finally:
                    bar.close()
            _write(profile, args.format, target)
            if profile.status_code:
                print(warning_line(path, profile.detailed_status), file=sys.stderr)
        except KeyboardInterrupt:
            fail("interrupted")
            return 130
        except BrokenPipeError:
            # The reader went away (``| head``): stop quietly, as Unix tools do. stdout is
            # pointed at /dev/null so the interpreter's final flush does not complain either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return status
        except DecodeError as exc:
            fail(str(exc) if os.path.basename(path) in str(exc) else f"{path}: {exc}")
            status = 1
        except OSError as exc:
            fail(f"{path}: cannot write output ({exc.strerror or exc})")
            status = 1
        except Exception as exc:  # a bug: still one line, and the batch goes on
            fail(f"{path}: internal error ({type(exc).__name__}: {exc})")
            status = 1
    return status
