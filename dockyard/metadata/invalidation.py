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
        self._connection: Any = None
        # The round trip that callers arriving now wait for: it starts after the one in
        # flight (if any) ends, so that it is sent after they arrived.
        self._next: asyncio.Future[bool] | None = None
        self._pump: asyncio.Task[None] | None = None
        self.notifications = 0

    async def start(self, wait: float = 5.0) -> None:
        """Start listening; waits up to ``wait`` seconds for the first connection (the
        caches stay off until it exists, and the listener keeps trying)."""
        self._generation.catch_up = self.catch_up
        self._task = asyncio.create_task(self._run(), name="dockyard write listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), wait)

    async def stop(self) -> None:
        self._generation.catch_up = None
        for task in (self._task, self._pump):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._pump = None
        waiter, self._next = self._next, None
        if waiter is not None and not waiter.done():
            waiter.set_result(False)
        self._generation.lapse()

    async def catch_up(self) -> None:
        """Return once every notification of a transaction committed before this call has
        been received; if that cannot be known (no connection, a failed round trip), the
        caches are turned off instead. Concurrent callers share one round trip."""
        if self._connection is None or self._generation.disabled:
            return
        waiter = self._next
        if waiter is None:
            waiter = self._next = asyncio.get_running_loop().create_future()
            if self._pump is None or self._pump.done():
                self._pump = asyncio.create_task(self._round_trips())
        if not await asyncio.shield(waiter):
            self._generation.lapse()

    async def _round_trips(self) -> None:
        # PostgreSQL sends the notifications queued for a session before it answers the
        # session's next query: once ``SELECT 1`` returns, they have been received.
        while self._next is not None:
            waiter, self._next = self._next, None
            answered = False
            try:
                await self._connection.fetchval("SELECT 1", timeout=self._heartbeat)
                answered = True
            except Exception as exc:
                log.debug("cache invalidation: round trip failed: %s", exc)
            finally:  # also when cancelled: nobody may wait for ever
                waiter.set_result(answered)

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
            try:
                self._connection = await self._connect()
                if delay > RETRY_FIRST:
                    log.info("cache invalidation: listening for writes again")
                delay = RETRY_FIRST
                while True:
                    self._generation.renew(time.monotonic() + 2 * self._heartbeat)
                    self._connected.set()
                    await asyncio.sleep(self._heartbeat)
                    await self.catch_up()  # the heartbeat: a round trip, shared
                    if self._generation.disabled:
                        raise ConnectionError("the heartbeat's round trip failed")
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
                connection, self._connection = self._connection, None
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), 1)
