"""The per-process side of notifications that the use-case wrappers share: recording the
changes a call makes, writing the events of reads, and waking the deliverer.

Events of reads (pulls) have no transaction to join. They are written by a group commit:
while one small transaction inserts what has gathered, the pulls that come meanwhile
gather for the next one, so a burst of pulls costs a few transactions, not one each. A
pull waits for its events to be written before it is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence

from dockyard.metadata.changes import OutboxEvent, recording
from dockyard.notify.observer import NoObserver, NotificationObserver
from dockyard.notify.recorder import EventRecorder

log = logging.getLogger("dockyard.notify")


class GroupCommit:
    """Writes events in batches, one batch at a time; ``add`` returns once its events are
    written (or their batch failed: then it raises)."""

    def __init__(self, write: Callable[[Sequence[OutboxEvent]], Awaitable[None]]) -> None:
        self._write = write
        self._gathered: list[OutboxEvent] = []
        self._next: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def add(self, events: Sequence[OutboxEvent]) -> None:
        self._gathered.extend(events)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        written = self._next
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_batches())
        await asyncio.shield(written)

    async def _write_batches(self) -> None:
        try:
            while self._gathered:
                batch, self._gathered = self._gathered, []
                done, self._next = self._next, None
                assert done is not None
                try:
                    await self._write(batch)
                except Exception as exc:
                    done.set_exception(exc)
                else:
                    done.set_result(None)
        finally:
            self._writer = None


class Notifier:
    def __init__(
        self,
        recorder: EventRecorder,
        write: Callable[[Sequence[OutboxEvent]], Awaitable[None]],
        observer: NotificationObserver | None = None,
    ) -> None:
        self.recorder = recorder
        self.observer: NotificationObserver = observer or NoObserver()
        # Set when this process wrote events: its deliverer looks at once.
        self.written = asyncio.Event()
        self._reads = GroupCommit(write)

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Record the changes of the call run inside (they commit with it)."""
        with recording(self.recorder) as current:
            yield
        self._queued([e for e in current.written if isinstance(e, OutboxEvent)])

    async def read(self, events: Sequence[OutboxEvent]) -> None:
        """Write the events of a read; a failure is logged, never the reader's."""
        if not events:
            return
        try:
            await self._reads.add(events)
        except Exception:
            log.exception("notifications: %d pull events could not be written", len(events))
            return
        self._queued(events)

    def _queued(self, events: Sequence[OutboxEvent]) -> None:
        if not events:
            return
        for endpoint, count in Counter(e.endpoint for e in events).items():
            self.observer.queued(endpoint, count)
        self.written.set()
