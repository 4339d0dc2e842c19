"""Read caches kept valid across replicas on PostgreSQL, with ``LISTEN``/``NOTIFY``.

Every write transaction that changes what the registry holds runs ``pg_notify`` on
:data:`CHANNEL` before it commits (:meth:`dockyard.metadata.transactions.StoreBase._write`);
PostgreSQL delivers the notification to every listening session once the transaction
commits. Each serving process keeps one connection of its own (outside the pool) that
listens and bumps the process's :class:`NotifiedGeneration`, which drops every cached read.

The caches are on only while the listener is known to be alive: it checks its connection
every :data:`HEARTBEAT` seconds and extends the generation's validity by twice that. A lost
connection turns the caches off at once (or, when nothing says it was lost, within two
heartbeats); the listener reconnects with backoff, and the caches come back with a bump.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from dockyard.metadata.generation import NotifiedGeneration

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

CHANNEL = "dockyard_writes"
HEARTBEAT = 5.0
RETRY_FIRST = 0.5
RETRY_MAX = 10.0
log = logging.getLogger("dockyard")


class WriteListener:
    """Listens for :data:`CHANNEL` on a connection of its own, for one process."""

    def __init__(
        self, engine: AsyncEngine, generation: NotifiedGeneration, heartbeat: float = HEARTBEAT
    ) -> None:
        self._engine = engine
        self._generation = generation
        self._heartbeat = heartbeat
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.notifications = 0

    async def start(self, wait: float = 5.0) -> None:
        """Start listening; waits up to ``wait`` seconds for the first connection (the
        caches stay off until it exists, and the listener keeps trying)."""
        self._task = asyncio.create_task(self._run(), name="dockyard write listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), wait)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._generation.lapse()

    def _notified(self, *_: Any) -> None:
        self.notifications += 1
        self._generation.bump()

    async def _connect(self) -> Any:
        import asyncpg

        args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        connection = await asyncpg.connect(*args, timeout=self._heartbeat, **kwargs)
        await connection.add_listener(CHANNEL, self._notified)
        connection.add_termination_listener(lambda _: self._generation.lapse())
        return connection

    async def _run(self) -> None:
        delay = RETRY_FIRST
        while True:
            connection = None
            try:
                connection = await self._connect()
                if delay > RETRY_FIRST:
                    log.info("cache invalidation: listening for writes again")
                delay = RETRY_FIRST
                while True:
                    self._generation.renew(time.monotonic() + 2 * self._heartbeat)
                    self._connected.set()
                    await asyncio.sleep(self._heartbeat)
                    await connection.fetchval("SELECT 1", timeout=self._heartbeat)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: caches off, then reconnect
                self._generation.lapse()
                if delay == RETRY_FIRST:
                    log.warning(
                        "cache invalidation: lost the listening connection (%s); "
                        "read caches off until it is back",
                        exc,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), 1)
