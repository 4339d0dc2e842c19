"""Changes the store made, reported inside the transaction that made them.

A write method of the store reports what it changed (:func:`record_change`) once the change
is certain, on the transaction's own connection. Nothing happens unless a caller asked to
record changes for the code it runs (:func:`recording`): then each active recorder turns
the change into rows to queue, notification events (``notification_outbox``) or
replication jobs (``replication_jobs``), inserted in the same transaction, so that they
commit, or roll back, with the change. The store knows nothing of notifications or
replication: a recorder decides what a change means to whom. Recordings nest: the
notification and replication wrappers of one call both record its changes.

The notification wrappers of the use cases record for the duration of each call;
garbage collection and retention record the deletions they make the same way, inside
their own transactions (``record_change(connection, ManifestDeleted(...))``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from dockyard.metadata import schema as t
from dockyard.metadata.engine import DbConnection


@dataclass(frozen=True)
class BlobPushed:
    """A blob upload committed into ``repository``."""

    repository: str
    digest: str
    size: int


@dataclass(frozen=True)
class BlobMounted:
    """A stored blob linked into ``repository`` (from ``source``, when one was named)."""

    repository: str
    digest: str
    size: int
    source: str | None


@dataclass(frozen=True)
class ManifestPushed:
    """A manifest stored in ``repository`` (and ``tag`` moved to it, when pushed by tag)."""

    repository: str
    digest: str
    media_type: str
    payload: bytes
    tag: str | None


@dataclass(frozen=True)
class ManifestDeleted:
    """A manifest deleted from ``repository``, with the tags that pointed at it."""

    repository: str
    digest: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlobDeleted:
    """A blob unlinked from ``repository`` (or, for a collector, deleted from the store:
    ``repository`` is then empty)."""

    repository: str
    digest: str


@dataclass(frozen=True)
class TagDeleted:
    """A tag deleted from ``repository``; the manifest it pointed at stays."""

    repository: str
    tag: str


Change = BlobPushed | BlobMounted | ManifestPushed | ManifestDeleted | BlobDeleted | TagDeleted


@dataclass(frozen=True)
class OutboxEvent:
    """One event for one endpoint: what goes into a row of the outbox."""

    endpoint: str
    repository: str
    payload: str  # the event as JSON


@dataclass(frozen=True)
class ReplicationJob:
    """One replication job to queue: ``action`` "copy" (``reference``, a tag or digest,
    to ``destination``), "delete" (``reference`` there), or "sync" (all of ``rule``)."""

    rule: str
    destination: str
    action: str
    repository: str
    reference: str


Queued = OutboxEvent | ReplicationJob


class ChangeRecorder(Protocol):
    """Turns a change into the rows to queue (none when nobody wants it)."""

    def events(self, change: Change) -> Sequence[Queued]: ...


@dataclass
class Recording:
    """The recorder of one call, and the rows it has queued so far."""

    recorder: ChangeRecorder
    written: list[Queued] = field(default_factory=list)


_recording: ContextVar[tuple[Recording, ...]] = ContextVar("dockyard_recording", default=())


@contextlib.contextmanager
def recording(recorder: ChangeRecorder) -> Iterator[Recording]:
    """Record the changes that the code run inside the block makes (in this task), as
    well as any recording already active records them."""
    current = Recording(recorder)
    token = _recording.set((*_recording.get(), current))
    try:
        yield current
    finally:
        _recording.reset(token)


def is_recording() -> bool:
    """Whether a change reported now would be recorded (so that a store method can skip
    gathering details, such as the tags of a deleted manifest, that nobody would read)."""
    return bool(_recording.get())


async def record_change(connection: DbConnection, change: Change) -> None:
    """Report ``change``, made on ``connection``'s transaction: the rows of every active
    recorder are inserted there and commit with it."""
    for current in _recording.get():
        rows = current.recorder.events(change)
        events = [row for row in rows if isinstance(row, OutboxEvent)]
        jobs = [row for row in rows if isinstance(row, ReplicationJob)]
        if events:
            await insert_events(connection, events)
        if jobs:
            await insert_jobs(connection, jobs)
        current.written.extend(rows)


async def insert_events(connection: DbConnection, events: Sequence[OutboxEvent]) -> None:
    now = datetime.now(UTC)
    await connection.execute(
        t.notification_outbox.insert(),
        [
            {
                "endpoint": e.endpoint,
                "repository": e.repository,
                "payload": e.payload,
                "created_at": now,
                "attempts": 0,
            }
            for e in events
        ],
    )


async def insert_jobs(connection: DbConnection, jobs: Sequence[ReplicationJob]) -> None:
    now = datetime.now(UTC)
    await connection.execute(
        t.replication_jobs.insert(),
        [
            {
                "rule": job.rule,
                "destination": job.destination,
                "action": job.action,
                "repository": job.repository,
                "reference": job.reference,
                "state": "pending",
                "attempts": 0,
                "created_at": now,
                "due_at": now,
            }
            for job in jobs
        ],
    )
