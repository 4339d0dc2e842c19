"""Changes the store made, reported inside the transaction that made them.

A write method of the store reports what it changed (:func:`record_change`) once the change
is certain, on the transaction's own connection. Nothing happens unless a caller asked to
record changes for the code it runs (:func:`recording`): then the recorder turns the change
into notification events, and they are inserted into the outbox
(``notification_outbox``) in the same transaction, so that they commit, or roll back,
with the change. The store knows nothing of notifications: a recorder decides what a
change means to whom.

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


class ChangeRecorder(Protocol):
    """Turns a change into the events to deliver (none when nobody wants it)."""

    def events(self, change: Change) -> Sequence[OutboxEvent]: ...


@dataclass
class Recording:
    """The recorder of one call, and the events it has written so far."""

    recorder: ChangeRecorder
    written: list[OutboxEvent] = field(default_factory=list)


_recording: ContextVar[Recording | None] = ContextVar("dockyard_recording", default=None)


@contextlib.contextmanager
def recording(recorder: ChangeRecorder) -> Iterator[Recording]:
    """Record the changes that the code run inside the block makes (in this task)."""
    current = Recording(recorder)
    token = _recording.set(current)
    try:
        yield current
    finally:
        _recording.reset(token)


def is_recording() -> bool:
    """Whether a change reported now would be recorded (so that a store method can skip
    gathering details, such as the tags of a deleted manifest, that nobody would read)."""
    return _recording.get() is not None


async def record_change(connection: DbConnection, change: Change) -> None:
    """Report ``change``, made on ``connection``'s transaction: its events, if anyone
    records, are inserted there and commit with it."""
    current = _recording.get()
    if current is None:
        return
    events = current.recorder.events(change)
    if events:
        await insert_events(connection, events)
        current.written.extend(events)


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
