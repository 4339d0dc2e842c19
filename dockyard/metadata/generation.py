"""A write counter shared by the worker processes of one store, and the read cache it guards.

Every committed metadata write bumps the counter; a cached read is used only while the
counter still has the value it had before that read was made. A write in any worker thus
invalidates every worker's cache before its response is sent, so a client that pushes and
then pulls (on whichever worker) always sees its push.

On SQLite the counter lives in a small memory-mapped file beside the database: reading it
is a memory load, bumping it takes an ``flock``. On PostgreSQL, where replicas share no
file, each process keeps its own counter (:class:`NotifiedGeneration`): every write
transaction sends a ``NOTIFY`` that reaches every process's listener when it commits
(:mod:`dockyard.metadata.invalidation`), which bumps the counter; while that listener is
not known to be connected, the caches are off.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

_COUNTER = struct.Struct("<Q")
MAX_ENTRIES = 50_000


class WriteGeneration:
    """The counter: in-process (``path`` None), shared through a file, or ``disabled``.

    ``catch_up``, when set, is awaited before a cached read is trusted: it returns once
    every write committed before the call has bumped the counter (see
    :class:`NotifiedGeneration`)."""

    def __init__(self, path: Path | None, disabled: bool = False) -> None:
        self.disabled = disabled
        self.catch_up: Callable[[], Awaitable[None]] | None = None
        self._local = 0
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        if path is not None and not disabled:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(fd).st_size < _COUNTER.size:
                os.ftruncate(fd, _COUNTER.size)
            self._fd = fd
            self._map = mmap.mmap(fd, _COUNTER.size)

    @classmethod
    def for_database(cls, url: str, readcache: bool = True) -> WriteGeneration:
        """The counter that fits a database URL: beside a SQLite file, in-process for an
        in-memory SQLite, one bumped by notifications for a server database that several
        hosts may share (off until a listener runs); ``readcache`` False: disabled."""
        parsed = make_url(url)
        if not readcache:
            return cls(None, disabled=True)
        if parsed.get_backend_name() != "sqlite":
            return NotifiedGeneration()
        if parsed.database in (None, "", ":memory:"):
            return cls(None)
        return cls(Path(f"{parsed.database}-generation"))

    def current(self) -> int:
        if self._map is None:
            return self._local
        return int(_COUNTER.unpack_from(self._map, 0)[0])

    def bump(self) -> None:
        if self._map is None or self._fd is None:
            self._local += 1
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            _COUNTER.pack_into(self._map, 0, (self.current() + 1) % 2**64)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class NotifiedGeneration(WriteGeneration):
    """A counter of this process, bumped by a listener of the database's notifications.

    A notification reaches each listener a little after its transaction commits: a client
    that pushed through one replica and reads at once through another could come first.
    So before a cached read is trusted, the listener makes a round trip on its connection
    (``catch_up``), which PostgreSQL answers only after sending the notifications already
    queued for it; concurrent readers share one round trip.

    The caches it guards are on only until ``valid_until`` (monotonic seconds), which the
    listener pushes forward while its connection is known to be alive; when it lapses
    (connection lost, or silent for too long), they are off until the listener renews it,
    and that renewal bumps the counter, since writes may have gone unnoticed meanwhile."""

    def __init__(self) -> None:
        super().__init__(None)
        self._valid_until = 0.0

    @property
    def disabled(self) -> bool:
        return time.monotonic() > self._valid_until

    @disabled.setter
    def disabled(self, value: bool) -> None:
        if value:
            self._valid_until = 0.0

    def renew(self, until: float) -> None:
        """The listener is alive and will say so again before ``until``."""
        if self.disabled:
            self.bump()
        self._valid_until = until

    def lapse(self) -> None:
        """The listener lost its connection: caches off until it renews."""
        self._valid_until = 0.0


_MISS = object()


class ReadCache:
    """Results of metadata reads, valid while the write generation is unchanged."""

    def __init__(self, generation: WriteGeneration) -> None:
        self._generation = generation
        self._entries: dict[Any, tuple[int, Any]] = {}

    def get(self, key: Any) -> Any:
        """The cached value, or :data:`MISS`."""
        if self._generation.disabled:
            return _MISS
        entry = self._entries.get(key)
        if entry is None or entry[0] != self._generation.current():
            return _MISS
        return entry[1]

    def put(self, key: Any, generation: int, value: Any) -> None:
        if self._generation.disabled:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (generation, value)


MISS = _MISS
