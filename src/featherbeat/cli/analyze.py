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
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

# The analysis is single-threaded by design (one core per job in the service). OpenBLAS would
# otherwise start a spinning thread per core for the small matrix products of the features,
# which doubles the CPU time and adds memory. Must be set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from featherbeat.analysis.formats import EXTENSIONS, FORMATS  # noqa: E402 (numpy-free)

DEFAULT_MAX_MINUTES = 240.0
"""A tiny file can claim (and truly hold) a day of silence; without a limit its curves alone
would take ~0.5 GB. Four hours covers the longest mixes people analyse."""


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
        help=f"refuse inputs longer than N minutes (default {DEFAULT_MAX_MINUTES:g}; memory grows "
        "by tens of MB per hour of audio)",
    )
    p.add_argument(
        "--via",
        metavar="URL",
        help="analyse on the featherbeat service at URL (e.g. http://127.0.0.1:8000) instead of "
        "locally: each file is uploaded, its job followed and its result written as a local run "
        "writes it; the token in FEATHERBEAT_API_TOKEN is sent when set",
    )
    p.set_defaults(func=run)


class _ProgressBar:
    """A one-line bar on stderr, redrawn in place; only used when stderr is a terminal."""

    WIDTH = 30

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name, self.stream = name, stream

    def __call__(self, fraction: float, stage: str) -> None:
        filled = int(round(fraction * self.WIDTH))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {fraction:4.0%} {stage:<10} {self.name[:40]}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r" + " " * (self.WIDTH + 60) + "\r")
        self.stream.flush()


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


def _fail(message: str) -> None:
    print(f"featherbeat: {message}", file=sys.stderr)


def warning_line(path: str | os.PathLike[str], detail: str) -> str:
    """The one stderr line for an analysis that is usable but incomplete (status_code 1)."""
    return f"featherbeat: {path}: warning: {' '.join(detail.split())}"


def _warn(path: str, detail: str) -> None:
    print(warning_line(path, detail), file=sys.stderr)


def _is_folder(output: str) -> bool:
    """A trailing slash or an existing directory always means a folder; anything else a file."""
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def _targets(args: argparse.Namespace) -> list[Path | None] | None:
    """Where each input's output goes (None = stdout), or None after a usage error.

    ``-o out/`` is a folder whether it exists or not (created when missing), so a shell glob
    that matches one file still writes ``out/<name>.json``. Several inputs need such a folder:
    a name that is not one (``-o single.json a.ogg b.ogg``) is a usage error, never a folder
    created under a file's name.
    """
    ext = EXTENSIONS[args.format]
    if not args.output:
        if len(args.files) == 1:
            return [None]
        _fail("several input files need -o FOLDER/ (a folder, or a name ending in /)")
        return None
    out = Path(args.output)
    if not _is_folder(args.output):
        if len(args.files) == 1:
            return [out]
        why = "is a file" if out.exists() else "is not a folder"
        _fail(
            f"{args.output}: {why}; several input files need -o FOLDER/ "
            "(an existing folder, or a name ending in / to create one)"
        )
        return None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"{args.output}: cannot create the folder ({exc.strerror or exc})")
        return None
    stems = [Path(f).stem for f in args.files]
    # Two inputs with the same stem (a.mp3, a.flac) must not overwrite each other's output.
    names = [
        s if stems.count(s) == 1 else Path(f).name for s, f in zip(stems, args.files, strict=True)
    ]
    return [out / (n + ext) for n in names]


def _write(profile: Any, fmt: str, target: Path | None) -> None:
    from featherbeat.analysis import formats

    if target is None:
        formats.write(profile, fmt, sys.stdout)
        sys.stdout.flush()
        return
    # Write beside the target and rename: a failure never leaves a half-written file.
    fd, tmp = tempfile.mkstemp(prefix=".featherbeat-", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fp:
            formats.write(profile, fmt, fp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def run(args: argparse.Namespace) -> int:
    if getattr(args, "via", None):
        from featherbeat.cli import via

        return via.run(args)
    targets = _targets(args)
    if targets is None:
        return 2
    from featherbeat.analysis.errors import DecodeError
    from featherbeat.analysis.pipeline import analyze

    show_bar = not args.quiet and sys.stderr.isatty()
    status = 0
    for path, target in zip(args.files, targets, strict=True):
        try:
            with _native_stderr_silenced() as err:
                bar = _ProgressBar(os.path.basename(path), err) if show_bar else None
                try:
                    profile = analyze(path, progress=bar, max_duration=args.max_minutes * 60)
                finally:
                    if bar is not None:
                        bar.close()
            _write(profile, args.format, target)
            if profile.status_code:
                _warn(path, profile.detailed_status)
        except KeyboardInterrupt:
            _fail("interrupted")
            return 130
        except BrokenPipeError:
            # The reader went away (``| head``): stop quietly, as Unix tools do. stdout is
            # pointed at /dev/null so the interpreter's final flush does not complain either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return status
        except DecodeError as exc:
            _fail(str(exc) if os.path.basename(path) in str(exc) else f"{path}: {exc}")
            status = 1
        except OSError as exc:
            _fail(f"{path}: cannot write output ({exc.strerror or exc})")
            status = 1
        except Exception as exc:  # a bug: still one line, and the batch goes on
            _fail(f"{path}: internal error ({type(exc).__name__}: {exc})")
            status = 1
    return status
