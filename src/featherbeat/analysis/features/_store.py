"""Where per-frame results live: a growable array that moves to a temp file once it is large.

Collecting chunks in a list and concatenating at the end briefly holds every curve twice; for an
hour of chroma and timbre that is the largest allocation of the whole analysis. Growing one
array in place (x1.5, starting from the expected length when the header gives it) avoids it.

Flat memory at any length (issue 13): once a curve passes ``SPILL_BYTES`` its rows go to an
unlinked temp file (``tempfile``'s directory: ``TMPDIR``), written as they stream, and
:meth:`GrowingArray.result` maps that file read-only. The values are the same float32 either
way; only where they are kept differs. A mapped page a stage reads counts in the resident size
until :func:`release` drops it again (the data stays in the file and the page cache), so stages
that sweep a whole curve read it in :func:`row_chunks` and the pipeline releases every mapped
curve between stages. Tracks under ~8 minutes (nearly every song) never spill.
"""

from __future__ import annotations

import mmap
import tempfile
import weakref
from collections.abc import Iterator
from typing import IO

import numpy as np
import numpy.typing as npt

# Per curve. 1 MB is ~8 minutes of chroma (12 x float32 at 43 frames/s) or ~48 minutes of a
# one-value curve at 86 frames/s; below it a curve stays an ordinary in-memory array. With ten
# curves, what stays resident is at most ~10 MB (just before they spill), then ten write
# buffers: ~2.5 MB at any length.
SPILL_BYTES = 1 << 20
# Rows written to the file at once; rows a chunked reader maps at a time (~3 MB of chroma).
WRITE_BUFFER_BYTES = 1 << 18
CHUNK_ROWS = 1 << 16

# Live spill mappings: (first address, end address) -> the mmap, weakly (the arrays over a
# mapping keep it alive; once they are gone the mapping closes and drops out of here).
_LIVE: dict[tuple[int, int], weakref.ref[mmap.mmap]] = {}


def _address(values: np.ndarray) -> int:
    return int(values.__array_interface__["data"][0])


def release(values: object) -> None:
    """Give back the resident pages of a spilled curve (no-op for an in-memory array).

    Works for any view of it (a slice, ``np.asarray`` of it): the mapping is found by address.
    """
    if not _LIVE or not isinstance(values, np.ndarray) or not values.size:
        return
    at = _address(values)
    for (lo, hi), ref in list(_LIVE.items()):
        if lo <= at < hi:
            _madvise(ref())


def _madvise(mm: mmap.mmap | None) -> None:
    if mm is not None and not mm.closed:
        # Drops the pages from this process's resident set; the next access re-reads them
        # from the page cache (curves are mapped read-only, and a ``scratch`` array's mapping
        # is shared, so its writes are in the file: nothing is lost either way).
        mm.madvise(mmap.MADV_DONTNEED)


def _dead(mm: mmap.mmap | None) -> bool:
    return mm is None or mm.closed


def _tracked(mm: mmap.mmap, dtype: npt.DTypeLike, count: int) -> np.ndarray:
    """``count`` values of ``dtype`` over ``mm``, registered in ``_LIVE`` (so ``release`` and
    ``is_spilled`` know the array's address range), forgetting mappings already gone."""
    flat: np.ndarray = np.frombuffer(mm, dtype=dtype, count=count)
    at = _address(flat)
    for key in [k for k, ref in _LIVE.items() if _dead(ref())]:
        del _LIVE[key]
    _LIVE[(at, at + flat.nbytes)] = weakref.ref(mm)
    return flat


def release_all() -> None:
    """Release every live spilled curve (the pipeline calls this between stages)."""
    for key, ref in list(_LIVE.items()):
        mm = ref()
        if mm is None or mm.closed:
            _LIVE.pop(key, None)
        else:
            _madvise(mm)


def is_spilled(values: object) -> bool:
    if not _LIVE or not isinstance(values, np.ndarray) or not values.size:
        return False
    at = _address(values)
    return any(lo <= at < hi and ref() is not None for (lo, hi), ref in _LIVE.items())


def row_chunks(
    values: np.ndarray, start: int = 0, stop: int | None = None, rows: int = CHUNK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """(offset, values[offset : offset + rows]) over [start, stop), releasing spilled pages
    after each chunk: a sweep over a 6-hour curve holds one chunk resident, not the curve."""
    stop = values.shape[0] if stop is None else min(int(stop), values.shape[0])
    for a in range(int(start), stop, rows):
        yield a, values[a : min(a + rows, stop)]
        release(values)


def all_finite(values: np.ndarray) -> bool:
    """``np.isfinite(values).all()`` without a boolean temporary the size of the curve."""
    if not values.size:
        return True
    return all(bool(np.isfinite(chunk).all()) for _, chunk in row_chunks(values))


class GrowingArray:
    def __init__(
        self, width: int | None = None, capacity: int = 1024, spill_bytes: int | None = SPILL_BYTES
    ) -> None:
        self._shape_tail = () if width is None else (int(width),)
        self._row_bytes = 4 * (1 if width is None else int(width))
        self._spill_rows = None if spill_bytes is None else max(16, spill_bytes // self._row_bytes)
        if self._spill_rows is not None:
            capacity = min(int(capacity), self._spill_rows)
        self._data = np.zeros((max(16, int(capacity)), *self._shape_tail), dtype=np.float32)
        self._n = 0  # rows held in _data
        self._file: IO[bytes] | None = None
        self._filed = 0  # rows already written to the file
        self._result: np.ndarray | None = None

    def extend(self, rows: np.ndarray) -> None:
        k = rows.shape[0]
        if self._file is None and self._spill_rows is not None and self._n + k > self._spill_rows:
            self._spill()
        if self._n + k > self._data.shape[0]:
            if self._file is not None:
                self._flush()
            if self._n + k > self._data.shape[0]:  # in memory, or one block wider than the buffer
                cap = max(self._n + k, int(self._data.shape[0] * 1.5))
                grown = np.zeros((cap, *self._shape_tail), dtype=np.float32)
                grown[: self._n] = self._data[: self._n]
                self._data = grown
        self._data[self._n : self._n + k] = rows
        self._n += k

    def _spill(self) -> None:
        """Move what is held so far to a temp file; from now on ``_data`` is a write buffer."""
        # Closed with this object (unlinked at once: the mapping keeps the data reachable).
        self._file = tempfile.TemporaryFile(prefix="featherbeat-curve-")  # noqa: SIM115
        self._flush()
        buffer_rows = max(16, WRITE_BUFFER_BYTES // self._row_bytes)
        self._data = np.zeros((buffer_rows, *self._shape_tail), dtype=np.float32)

    def _flush(self) -> None:
        assert self._file is not None
        if self._n:
            self._file.write(np.ascontiguousarray(self._data[: self._n]).data)
            self._filed += self._n
            self._n = 0

    def __len__(self) -> int:
        return self._filed + self._n

    def result(self) -> np.ndarray:
        """The rows so far: a view of the in-memory array, or the file mapped read-only.

        Never a copy. In memory, the spare capacity behind the view was allocated with
        ``np.zeros`` and never written, so the kernel has not given it pages: it costs address
        space, not resident memory. A copy here would briefly double the largest arrays.
        """
        if self._file is None:
            return self._data[: self._n]
        if self._result is None or self._result.shape[0] != len(self):
            self._flush()
            self._file.flush()
            total = self._filed
            if total == 0:
                return np.zeros((0, *self._shape_tail), dtype=np.float32)
            length = total * self._row_bytes
            # The mapping holds its own reference to the file; the data stays on disk (the
            # file is already unlinked) until the last array over it is gone.
            mm = mmap.mmap(self._file.fileno(), length, access=mmap.ACCESS_READ)
            flat = _tracked(mm, np.float32, length // 4)
            self._result = flat.reshape(total, *self._shape_tail)
        return self._result


def scratch(shape: tuple[int, ...], dtype: npt.DTypeLike = np.float64) -> np.ndarray:
    """A writable work array (uninitialised, as ``np.empty``), kept in an unlinked temp file
    when larger than ``SPILL_BYTES``.

    For the few float64 working arrays that grow with the track (sections' unit features:
    ~1.4 MB an hour) and are read in chunks afterwards: the values are the same, only where
    they live differs. The mapping is shared, so :func:`release` drops its pages from the
    resident set without losing what was written (the kernel keeps it in the file and the
    page cache); a chunked writer or reader releases after each chunk. The file's pages are
    freed when the last array over the mapping is gone.
    """
    count = int(np.prod(shape, dtype=np.int64))
    size = count * np.dtype(dtype).itemsize
    if size <= SPILL_BYTES:
        return np.empty(shape, dtype=dtype)
    with tempfile.TemporaryFile(prefix="featherbeat-scratch-") as file:
        file.truncate(size)
        # The mapping keeps the (already unlinked) file alive after the descriptor is closed.
        mm = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_WRITE)
    return _tracked(mm, dtype, count).reshape(shape)


TAKE_STEP = 4096  # indices gathered between two releases in take()


def take(values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``values[at]`` (1-D ``values``), for a spilled array gathered ``TAKE_STEP`` indices at
    a time with its pages given back after each: beat-rate gathers touch every page of a
    frame-rate curve, so one gather over twelve hours made the whole curve resident. The same
    elements either way. Sorted indices (beats, tatums) are what it is for: ``TAKE_STEP`` beats
    span ~3 minutes of a 86 frames/s curve (~0.1 MB)."""
    if not is_spilled(values):
        return values[at]
    at = np.asarray(at)
    out = np.empty(at.shape, dtype=values.dtype)
    flat_at, flat_out = at.reshape(-1), out.reshape(-1)
    for i in range(0, flat_at.size, TAKE_STEP):
        flat_out[i : i + TAKE_STEP] = values[flat_at[i : i + TAKE_STEP]]
        release(values)
    return out
