"""Uploads and results: opaque byte blobs under string keys.

The ``BlobStore`` interface (the same shape as ``redis_blobs.Blobs`` of the scale-out, so
RedisBlobs/S3Blobs drop in; the two helpers have generic defaults built on it):

- ``put(key, fp, *, ttl=None) -> int``: stream ``fp`` into the blob, return its size
- ``get(key, out) -> bool``: stream the blob into ``out``; False if absent
- ``iter(key) -> Iterator[bytes] | None``: the blob in chunks (None if absent), for responses
- ``size(key) -> int | None``; ``delete(key)`` (no error if absent)
- ``put_file(key, path)``: store a local file (the local store moves it instead of copying)
- ``local_path(key)``: context manager yielding a local path holding the blob (the analysis
  child needs a real file; remote stores download into a temp file)

Keys are ``uploads/<job id>`` and ``results/<job id>/<format>``; job ids are random URL-safe
tokens, and every key is checked so a key can never address a file outside the store.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

CHUNK = 1 << 20

_KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")


def check_key(key: str) -> str:
    """Keys are relative slash paths of safe names: nothing like ``..`` or ``/etc``."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid blob key {key!r}")
    return key


def upload_key(job_id: str) -> str:
    return check_key(f"uploads/{job_id}")


def result_key(job_id: str, fmt: str) -> str:
    return check_key(f"results/{job_id}/{fmt}")


class BlobStore(ABC):
    """Where uploads and results live. See the module docstring."""

    @abstractmethod
    def put(self, key: str, fp: IO[bytes], *, ttl: float | None = None) -> int: ...

    @abstractmethod
    def get(self, key: str, out: IO[bytes]) -> bool: ...

    @abstractmethod
    def iter(self, key: str) -> Iterator[bytes] | None: ...

    @abstractmethod
    def size(self, key: str) -> int | None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def put_file(self, key: str, path: str | Path) -> None:
        with open(path, "rb") as fp:
            self.put(key, fp)
        os.unlink(path)

    @contextmanager
    def local_path(self, key: str, tmp_dir: str | Path | None = None) -> Iterator[Path]:
        with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="blob-") as tmp:
            if not self.get(key, tmp):
                raise KeyError(key)
            tmp.flush()
            yield Path(tmp.name)


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

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop the per-job results folder once it is empty.
        if path.parent == self.root or path.parent.parent == self.root:
            return
        with suppress(OSError):
            path.parent.rmdir()
