"""Asking the kernel to read a local file into the page cache before it is sent.

A blob written with ``O_DIRECT``, or whose pages :class:`~dockyard.storage.pagecache.
PageRecycler` dropped behind the writer, is not in the page cache when it is first pulled,
and ``sendfile`` from a cold file reads it in the kernel's default read-ahead steps, while
the client is waiting. ``posix_fadvise(WILLNEED)`` starts the reads in the background
instead; on Linux one call reads at most the device's read-ahead size (8 MiB here), so a
range is asked for in pieces of :data:`PIECE`. On pages already cached the call is a
lookup. Where ``posix_fadvise`` is missing (not Linux), nothing happens.
"""

from __future__ import annotations

import os

PIECE = 8 * 1024 * 1024
# How far ahead of the bytes being sent the reads are started.
AHEAD = 32 * 1024 * 1024

_fadvise = getattr(os, "posix_fadvise", None)


def will_need(fd: int, offset: int, length: int) -> None:
    """Start reading ``length`` bytes at ``offset`` into the page cache; returns once the
    reads are queued, not done. Errors are ignored: this is only a hint."""
    if _fadvise is None:
        return
    end = offset + length
    try:
        while offset < end:
            piece = min(PIECE, end - offset)
            _fadvise(fd, offset, piece, os.POSIX_FADV_WILLNEED)
            offset += piece
    except OSError:
        return


class ReadAhead:
    """Keeps reads started :data:`AHEAD` bytes ahead of a sequential reader of ``fd``
    that stops at ``end``."""

    def __init__(self, fd: int, offset: int, end: int) -> None:
        self._fd = fd
        self._asked = offset
        self._end = end

    def at(self, offset: int) -> None:
        """The reader is at ``offset``: ask for what is missing up to ``AHEAD`` past it."""
        target = min(offset + AHEAD, self._end)
        # In whole pieces, so that the calls stay few.
        if target - self._asked >= PIECE or (target == self._end and target > self._asked):
            will_need(self._fd, self._asked, target - self._asked)
            self._asked = target
