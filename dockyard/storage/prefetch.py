"""Reading a just-committed blob back into the page cache, in the background.

The filesystem writer keeps uploads out of the page cache (``O_DIRECT``, pages dropped
behind the writer: :mod:`dockyard.storage.pagecache`), so right after a push the blob is
only on disk, and the first pull, which often comes at once (CI pushes, a cluster
pulls), reads it from the disk while the client waits and writes its own copy.
registry:2 writes through the cache and serves that first pull from memory. So after a
commit the blob is asked for with ``posix_fadvise(WILLNEED)``: the kernel reads it into
the cache with the disk's own large reads, no copy through Python, while the client
finishes its push; a pull then finds it there.

One thread per process does it, a blob at a time, at the lowest CPU and disk priority
(``nice`` 19, the idle I/O class): the disk and the cores are shared with the uploads
still running, which a read-back at normal priority slowed by a tenth. It reads at most
:data:`PREFETCH_LIMIT` bytes of each blob; at most :data:`QUEUED` blobs wait, later ones
are skipped (a pull still reads ahead of itself, ``dockyard.api.readahead``). It is only
a hint: nothing waits for it, errors are ignored, the pages are the kernel's to evict,
and the blob's durability does not depend on it (the commit has ``fdatasync``-ed it
before). Where ``posix_fadvise`` is missing (not
Linux), nothing happens.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import queue
import threading
from pathlib import Path

# One call reads at most the device's read-ahead size on Linux (8 MiB here).
PIECE = 8 * 1024 * 1024
PREFETCH_LIMIT = 1024 * 1024 * 1024
QUEUED = 64

_fadvise = getattr(os, "posix_fadvise", None)
# ioprio_set(2) has no libc wrapper: its system call number, by machine.
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}
_IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_IDLE = 3
_IOPRIO_CLASS_SHIFT = 13
LOWEST_NICE = 19


def lower_this_threads_priority() -> None:
    """Give the calling thread the lowest CPU priority and the idle I/O class, where the
    system lets it (Linux sets both per thread); otherwise leave them."""
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, thread, LOWEST_NICE)
    number = _IOPRIO_SET.get(platform.machine())
    name = ctypes.util.find_library("c")
    if number is None or name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(name, use_errno=True)
        value = IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT
        libc.syscall(number, _IOPRIO_WHO_PROCESS, thread, value)


def read_into_cache(path: Path, length: int) -> None:
    """Ask for the first ``length`` bytes of ``path`` piece by piece; each call returns
    once its reads are queued. A missing file (deleted meanwhile) is skipped."""
    if _fadvise is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        for offset in range(0, length, PIECE):
            _fadvise(fd, offset, min(PIECE, length - offset), os.POSIX_FADV_WILLNEED)
    except OSError:
        return
    finally:
        os.close(fd)


class Prefetcher:
    """The background reader of one process: :meth:`schedule` never blocks."""

    def __init__(self, limit: int = PREFETCH_LIMIT, queued: int = QUEUED) -> None:
        self._limit = limit
        self._queue: queue.Queue[tuple[Path, int]] = queue.Queue(queued)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # A forked worker inherits the object but not the thread: each process its own.
        os.register_at_fork(after_in_child=self._forget_thread)

    def schedule(self, path: Path, size: int) -> None:
        """Read ``path`` (``size`` bytes) into the cache soon, unless too many wait."""
        if _fadvise is None or size <= 0:
            return
        self._start()
        try:
            self._queue.put_nowait((path, min(size, self._limit)))
        except queue.Full:
            return

    def wait_idle(self) -> None:
        """Return once every scheduled blob has been asked for (tests)."""
        self._queue.join()

    def _forget_thread(self) -> None:
        self._lock = threading.Lock()
        self._queue = queue.Queue(self._queue.maxsize)
        self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        lower_this_threads_priority()
        jobs = self._queue
        while True:
            path, length = jobs.get()
            try:
                read_into_cache(path, length)
            finally:
                jobs.task_done()


#: the process's prefetcher, shared by every filesystem driver in it
PREFETCHER = Prefetcher()
