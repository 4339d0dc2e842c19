"""Writing large files without filling the page cache with them.

A blob written through the page cache costs, on first touch of each fresh page, far more
CPU than the copy itself (measured 2.25 CPU s/GiB on a 2-core VM against 0.4 when pages
are reused). :class:`PageRecycler` keeps a streamed file's footprint to a few windows:
each window is handed to the disk as soon as it is written (``sync_file_range``) and, once
on disk, dropped from the cache (``posix_fadvise(DONTNEED)``), so the next window reuses
the pages just freed. As a side effect the final ``fdatasync`` finds little left to do.

Cheaper still is not to use the cache at all: :func:`write_direct` writes a page-aligned
buffer at a page-aligned offset with ``O_DIRECT`` (about 0.2 CPU s/GiB here), which the
buffers of a taken-over request body are (``dockyard.api.direct_body``). Unaligned writes
(the tail of a blob, bodies from aiohttp) go through the cache and the recycler.

A recycler told to ``keep`` the pages (``storage.filesystem.cacheuploads: true``) skips the
drop: the file stays cached for its first reader, and every window costs fresh pages. On
a VM that hands free memory back to its host (a balloon with free page reporting, as the
benchmark machine) each of those is faulted in from the host on first touch, inside the
writer's ``pwrite``: 5.8-8.5 CPU s/GiB there against 1.4 (docs/performance.md).

Where ``sync_file_range`` is missing (not Linux), the recycler does nothing; where
``O_DIRECT`` is refused (tmpfs, some network filesystems), writes go through the cache.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable

WINDOW = 8 * 1024 * 1024
# Windows kept in the cache behind the newest: written out, not yet waited for.
LAG = 4 * WINDOW
ALIGN = 4096
_WAIT_BEFORE = 1
_WRITE = 2
_WAIT_AFTER = 4


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not hasattr(os, "posix_fadvise"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()


def aligned(data: bytes | memoryview, offset: int) -> bool:
    """Whether ``data`` may be written at ``offset`` with ``O_DIRECT``: a writable buffer
    whose address, length and offset are multiples of the page size."""
    if not isinstance(data, memoryview) or data.readonly or not data.c_contiguous:
        return False
    if offset % ALIGN or len(data) % ALIGN or not data:
        return False
    return ctypes.addressof(ctypes.c_char.from_buffer(data)) % ALIGN == 0


def open_direct(path: str | os.PathLike[str]) -> int | None:
    """A second descriptor on ``path`` for ``O_DIRECT`` writes, or None where refused."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError:
        return None


def write_direct(fd: int, data: memoryview, offset: int) -> int:
    """Write what ``O_DIRECT`` takes of ``data`` at ``offset``; returns the bytes written
    (all of them, unless the kernel stopped short; the caller writes the rest itself)."""
    done = 0
    while done < len(data):
        try:
            written = os.pwrite(fd, data[done:], offset + done)
        except OSError:
            return done
        if written <= 0 or written % ALIGN:
            return done + max(written, 0)
        done += written
    return done


class PageRecycler:
    """Follows one file descriptor written from ``start`` on, possibly by several threads
    at once (a write that finishes early only makes writeback start early). With ``keep``
    the pages written out stay in the cache (the next reader finds them there): the writer
    still waits for the windows ``LAG`` behind, so the dirty pages stay few."""

    def __init__(self, fd: int, start: int, keep: bool = False) -> None:
        self._fd = fd
        self._keep = keep
        # Everything before ``_dropped`` has been written out and dropped; everything
        # between it and ``_started`` has been handed to the disk.
        self._dropped = start - start % WINDOW
        self._started = self._dropped
        self._lock = threading.Lock()

    def written(self, end: int) -> None:
        """Bytes up to ``end`` were written: start writeback of whole new windows and drop
        those more than ``LAG`` behind."""
        if _sync_file_range is None:
            return
        with self._lock:
            boundary = end - end % WINDOW
            if boundary > self._started:
                _sync_file_range(self._fd, self._started, boundary - self._started, _WRITE)
                self._started = boundary
            keep_from = self._started - LAG
            if keep_from > self._dropped:
                length = keep_from - self._dropped
                flags = _WAIT_BEFORE | _WRITE | _WAIT_AFTER
                done = _sync_file_range(self._fd, self._dropped, length, flags) == 0
                if done and not self._keep:
                    os.posix_fadvise(self._fd, self._dropped, length, os.POSIX_FADV_DONTNEED)
                self._dropped = keep_from
