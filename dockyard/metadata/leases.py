"""Jobs that must run in one place at a time, across workers and replicas.

A scheduled job (garbage collection, retention, upload purging, notification delivery,
certificate renewal) asks for a lease by name before each run and skips the run when
somebody else holds it. The lease lives where every replica can see it:

* PostgreSQL: a session-level advisory lock on a connection kept for the run. A replica
  that dies loses its connection, and the server releases the lock with it.
* a SQLite file (one host): an exclusive ``flock`` on a file beside the database; the
  kernel releases it when the holding process dies.
* in-memory SQLite (one process): an asyncio lock.

Nothing is written, so a lease costs one round trip on PostgreSQL and one system call on
SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

from sqlalchemy import text

from dockyard.metadata.engine import Database, InlineEngine

_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,62}")


def lease_key(name: str) -> int:
    """The advisory-lock key of a lease: a stable signed 64-bit number for the name, with
    "dockyard:" in front so that no other application's keys collide with it by accident."""
    digest = hashlib.sha256(f"dockyard:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leases:
    """Named leases on one metadata database. One instance per process is enough."""

    def __init__(self, engine: Database) -> None:
        self._engine = engine
        self._local: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        """``async with leases.hold("gc") as held:`` — ``held`` is True when this process
        now runs the job alone until the block ends, False when another holds the lease
        (the caller skips this run). Never waits for the other holder."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"lease name {name!r}: lower-case letters, digits and '-'")
        if isinstance(self._engine, InlineEngine):
            database = self._engine.sync_engine.url.database
            if database in (None, "", ":memory:"):
                async with self._in_process(name) as held:
                    yield held
            else:
                with _file_lease(Path(f"{database}.{name}.lease")) as held:
                    yield held
            return
        async with self._advisory(name) as held:
            yield held

    @contextlib.asynccontextmanager
    async def _in_process(self, name: str) -> AsyncIterator[bool]:
        lock = self._local.setdefault(name, asyncio.Lock())
        if lock.locked():
            yield False
            return
        async with lock:
            yield True

    @contextlib.asynccontextmanager
    async def _advisory(self, name: str) -> AsyncIterator[bool]:
        key = lease_key(name)
        async with self._engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            got = await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            held = bool(got.scalar_one())
            try:
                yield held
            finally:
                if held:
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


@contextlib.contextmanager
def _file_lease(path: Path) -> Iterator[bool]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
