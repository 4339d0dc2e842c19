"""The notification outbox: events waiting for their endpoints, oldest first.

Events of a change are written in its transaction (:mod:`dockyard.metadata.changes`);
those of a read (a pull) in a small transaction of their own (:meth:`append_events`). The
deliverer reads an endpoint's events in order, deletes each once the endpoint took it,
and counts the failed attempts. None of these writes changes what the registry holds, so
none invalidates a read cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update

from dockyard.metadata import schema as t
from dockyard.metadata.changes import OutboxEvent, insert_events
from dockyard.metadata.transactions import StoreBase

_OUTBOX = t.notification_outbox


@dataclass(frozen=True)
class PendingEvent:
    id: int
    repository: str
    payload: str
    attempts: int


class OutboxQueries(StoreBase):
    """The outbox, per endpoint."""

    async def append_events(self, events: Sequence[OutboxEvent]) -> None:
        """Write events in a transaction of their own (those of reads)."""
        if events:
            async with self._write(invalidates=False) as connection:
                await insert_events(connection, events)

    async def pending_events(self, endpoint: str, after: int, limit: int) -> list[PendingEvent]:
        """The oldest ``limit`` events of ``endpoint`` after event id ``after``."""
        query = (
            select(_OUTBOX.c.id, _OUTBOX.c.repository, _OUTBOX.c.payload, _OUTBOX.c.attempts)
            .where(_OUTBOX.c.endpoint == endpoint, _OUTBOX.c.id > after)
            .order_by(_OUTBOX.c.id)
            .limit(limit)
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).all()
        return [PendingEvent(r.id, r.repository, r.payload, r.attempts) for r in rows]

    async def remove_event(self, event_id: int) -> None:
        """Delivered (or dropped): gone from the outbox."""
        async with self._write(invalidates=False) as connection:
            await connection.execute(delete(_OUTBOX).where(_OUTBOX.c.id == event_id))

    async def count_failed_attempt(self, event_id: int) -> None:
        async with self._write(invalidates=False) as connection:
            await connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == event_id)
                .values(attempts=_OUTBOX.c.attempts + 1)
            )

    async def pending_counts(self) -> dict[str, int]:
        """How many events wait, per endpoint name."""
        query = select(_OUTBOX.c.endpoint, func.count()).group_by(_OUTBOX.c.endpoint)
        async with self._read() as connection:
            return {row[0]: int(row[1]) for row in (await connection.execute(query)).all()}

    async def drop_oldest_events(self, endpoint: str, count: int) -> int:
        """Delete the ``count`` oldest events of ``endpoint``; how many went."""
        if count <= 0:
            return 0
        oldest = (
            select(_OUTBOX.c.id)
            .where(_OUTBOX.c.endpoint == endpoint)
            .order_by(_OUTBOX.c.id)
            .limit(count)
        )
        async with self._write(invalidates=False) as connection:
            result = await connection.execute(delete(_OUTBOX).where(_OUTBOX.c.id.in_(oldest)))
            return int(result.rowcount)

    async def drop_endpoint_events(self, endpoint: str) -> int:
        """Delete every event of ``endpoint`` (no longer configured); how many went."""
        async with self._write(invalidates=False) as connection:
            result = await connection.execute(delete(_OUTBOX).where(_OUTBOX.c.endpoint == endpoint))
            return int(result.rowcount)
