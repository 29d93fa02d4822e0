"""Blobs as files under one folder: the ``BlobStore`` of the default, one-box deployment."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from featherbeat.jobs.blobs import CHUNK, BlobStore, check_key


class LocalBlobStore(BlobStore):
    """Blobs as files under one folder (the default, one-box deployment). ``ttl`` is ignored:
    the retention sweep deletes old blobs."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, fp: IO[bytes], *, ttl: float | None = None) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.part-{os.getpid()}-{threading.get_ident()}")
        with tmp.open("wb") as out:
            shutil.copyfileobj(fp, out, CHUNK)
        os.replace(tmp, target)  # atomic: readers see the old blob or the new, never half
        return target.stat().st_size

    def put_file(self, key: str, path: str | Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)  # our temp files live on the same filesystem
        except OSError:
            super().put_file(key, path)

    def get(self, key: str, out: IO[bytes]) -> bool:
        try:
            with self._path(key).open("rb") as fp:
                shutil.copyfileobj(fp, out, CHUNK)
        except FileNotFoundError:
            return False
        return True

    def iter(self, key: str) -> Iterator[bytes] | None:
        try:
            fp = self._path(key).open("rb")
        except FileNotFoundError:
            return None

        def chunks() -> Iterator[bytes]:
            with fp:
                while chunk := fp.read(CHUNK):
                    yield chunk

        return chunks()

    @contextmanager
    def local_path(self, key: str, tmp_dir: str | Path | None = None) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise KeyError(key)
        yield path

    def local_file(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop the folders of the key once empty (a run's, then its job's: results/<job>/<run>),
        # never the top-level ones (results/, uploads/).
        folder = path.parent
        while folder.parent != self.root and folder != self.root:
            try:
                folder.rmdir()
            except OSError:  # not empty (another format, another run) or gone
                return
            folder = folder.parent
