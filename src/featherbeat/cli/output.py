"""What a local ``analyze`` and ``analyze --via`` share: where results go, how a file is
written, the progress line and the stderr lines. Stdlib only.

- ``targets(args)``: each input's output (None = stdout) from ``-o``, or None after a usage
  error (one stderr line, exit code 2).
- ``atomic_file(target)``: write beside the target and rename, so a failure never leaves a
  half-written result; the file gets the permissions ``open()`` would give (0666 & ~umask).
- ``ProgressBar``: one line on stderr, redrawn in place, only when stderr is a terminal.
- ``fail(message)`` / ``warning_line(path, detail)``: the one-line messages.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from featherbeat.analysis.formats import EXTENSIONS


def fail(message: str) -> None:
    print(f"featherbeat: {message}", file=sys.stderr)


def warning_line(path: str | os.PathLike[str], detail: str) -> str:
    """The one stderr line for an analysis that is usable but incomplete (status_code 1)."""
    return f"featherbeat: {path}: warning: {' '.join(detail.split())}"


def is_folder(output: str) -> bool:
    """A trailing slash or an existing directory always means a folder; anything else a file."""
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def targets(args: argparse.Namespace) -> list[Path | None] | None:
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
        fail("several input files need -o FOLDER/ (a folder, or a name ending in /)")
        return None
    out = Path(args.output)
    if not is_folder(args.output):
        if len(args.files) == 1:
            return [out]
        why = "is a file" if out.exists() else "is not a folder"
        fail(
            f"{args.output}: {why}; several input files need -o FOLDER/ "
            "(an existing folder, or a name ending in / to create one)"
        )
        return None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"{args.output}: cannot create the folder ({exc.strerror or exc})")
        return None
    stems = [Path(f).stem for f in args.files]
    # Two inputs with the same stem (a.mp3, a.flac) must not overwrite each other's output.
    names = [
        s if stems.count(s) == 1 else Path(f).name for s, f in zip(stems, args.files, strict=True)
    ]
    return [out / (n + ext) for n in names]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[IO[bytes]]:
    """A binary file beside ``target``, renamed onto it when the block ends without error."""
    fd, tmp = tempfile.mkstemp(prefix=".featherbeat-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fp:
            yield fp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ProgressBar:
    """``[#####.....]  42%  <text>`` on one line of ``stream``, redrawn in place; draws nothing
    unless ``enabled`` (default: when the stream is a terminal)."""

    WIDTH = 30

    def __init__(
        self, stream: IO[str] | None = None, enabled: bool | None = None, label: str = ""
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label  # what progress() shows after the stage (a file name)
        self._drawn = False

    def progress(self, fraction: float, stage: str) -> None:
        """An ``analyze()`` progress callback: the stage, then the label."""
        self.draw(fraction, f"{stage:<10} {self.label}")

    def draw(self, fraction: float, text: str) -> None:
        if not self.enabled:
            return
        filled = int(round(min(max(fraction, 0.0), 1.0) * self.WIDTH))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {fraction:4.0%} {text}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erase the line, so what follows on stderr starts on a clean one."""
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * (self.WIDTH + 70) + "\r")
            self.stream.flush()
            self._drawn = False
