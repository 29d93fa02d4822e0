"""Uploads and results: opaque byte blobs under string keys. The ``BlobStore`` contract.

Backends, one module each: ``local_blobs.LocalBlobStore`` (files under the data dir, the
default), ``redis_blobs.RedisBlobs`` and ``s3_blobs.S3Blobs`` (the scale-out). Every backend
implements the abstract methods; the others have generic defaults built on them:

- ``put(key, fp, *, ttl=None) -> int``: stream ``fp`` into the blob, return its size; raises
  ``BlobTooLargeError`` over the backend's cap and ``StorageFullError`` (an ``OSError`` with
  errno ENOSPC, like a full local disk) when the store has no room
- ``get(key, out) -> bool``: stream the blob into ``out``; False if absent
- ``iter(key) -> Iterator[bytes] | None``: the blob in chunks (None if absent), for responses
- ``size(key) -> int | None``; ``delete(key)`` (no error if absent)
- ``put_file(key, path)``: store a local file and remove it (the local store moves it)
- ``local_path(key)``: context manager yielding a local path holding the blob (the analysis
  child needs a real file; remote stores download into a temp file)
- ``local_file(key) -> Path | None``: the blob's own file when the backend keeps blobs as
  files (so a web response can answer Range requests from it), else None

Keys are ``uploads/<job id>`` and ``results/<job id>/<run>/<format>`` (``run``: the token of the
run that wrote them, so two runs of one job never write the same key; the job record names the
winner's); job ids are random URL-safe tokens, and every key is checked so a key can never
address a file outside the store.
"""

from __future__ import annotations

import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

CHUNK = 1 << 20

_KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")


def check_key(key: str) -> str:
    """Keys are relative slash paths of safe names: nothing like ``..`` or ``/etc``."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobTooLargeError(ValueError):
    """The blob is bigger than the store's cap."""


class StorageFullError(OSError):
    """The store has no room left (errno ENOSPC, like a full local disk)."""


def upload_key(job_id: str) -> str:
    return check_key(f"uploads/{job_id}")


def result_key(job_id: str, fmt: str, run: str | None = None) -> str:
    """Where one run of a job stores one format (records written before runs had their own
    keys name ``results/<job id>/<format>``, which still reads)."""
    return check_key(f"results/{job_id}/{run}/{fmt}" if run else f"results/{job_id}/{fmt}")


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

    def local_file(self, key: str) -> Path | None:
        """The blob's own file, if this backend keeps blobs as local files; None otherwise
        (and None when the blob is absent)."""
        return None


def copy_chunks(chunks: Iterator[bytes] | None, out: IO[bytes]) -> bool:
    """Write ``chunks`` to ``out``; False when the blob does not exist (``chunks`` is None)."""
    if chunks is None:
        return False
    for chunk in chunks:
        out.write(chunk)
    return True
