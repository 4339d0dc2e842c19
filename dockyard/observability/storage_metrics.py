"""``registry_storage_action_seconds{driver,action}``: a driver wrapped, each call timed.

Action names are registry:2's (``GetContent``, ``Stat``, ``Writer``, …) plus Dockyard's
``Commit`` and ``Abort``. As in Distribution, ``Reader`` and ``Writer`` time the opening
(here: until the first bytes of a read), not the transfer, which the client's speed
decides. ``capability`` is forwarded, so sendfile still sees the local files. A driver
that keeps the base class's ``redirect_url`` (the filesystem: it never redirects) is not
timed for ``RedirectURL``: its answer costs nothing, and every blob ``GET`` and ``HEAD``
would pay for timing it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

from dockyard.observability import batch, metrics
from dockyard.storage.driver import FileWriter, StorageDriver, StorageError, WriterState

_Capability = TypeVar("_Capability")
_T = TypeVar("_T")
ACTIONS = (
    "GetContent",
    "PutContent",
    "Reader",
    "Writer",
    "Commit",
    "Abort",
    "Stat",
    "List",
    "Move",
    "Delete",
    "RedirectURL",
)


class MeasuredDriver(StorageDriver):
    """``inner``, with the duration of every action observed."""

    def __init__(self, inner: StorageDriver) -> None:
        self._inner = inner
        self.name = inner.name
        self._timers = {
            a: batch.histogram(metrics.STORAGE_ACTION.labels(inner.name, a)) for a in ACTIONS
        }
        self._redirects = type(inner).redirect_url is not StorageDriver.redirect_url

    async def _timed(self, action: str, call: Awaitable[_T]) -> _T:
        started = time.perf_counter()
        try:
            return await call
        finally:
            self._timers[action].observe(time.perf_counter() - started)

    @property
    def inner(self) -> StorageDriver:
        return self._inner

    def __getattr__(self, name: str) -> Any:  # a driver's own attributes (its root, ...)
        return getattr(self._inner, name)

    async def get_content(self, path: str) -> bytes:
        return await self._timed("GetContent", self._inner.get_content(path))

    async def put_content(self, path: str, data: bytes) -> None:
        await self._timed("PutContent", self._inner.put_content(path, data))

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        timed = False
        stream = self._inner.reader(path, offset, length)
        try:
            async for chunk in stream:
                if not timed:
                    self._timers["Reader"].observe(time.perf_counter() - started)
                    timed = True
                yield chunk
        finally:
            if not timed:
                self._timers["Reader"].observe(time.perf_counter() - started)
            closing = getattr(stream, "aclose", None)
            if closing is not None:
                await closing()

    async def writer(
        self, path: str, resume: WriterState | None = None, destination: str | None = None
    ) -> FileWriter:
        return await self._timed("Writer", self._inner.writer(path, resume, destination))

    async def commit(self, path: str, state: WriterState, destination: str) -> None:
        await self._timed("Commit", self._inner.commit(path, state, destination))

    async def abort(self, path: str, state: WriterState) -> None:
        await self._timed("Abort", self._inner.abort(path, state))

    async def stat(self, path: str) -> int | None:
        return await self._timed("Stat", self._inner.stat(path))

    async def list(self, path: str) -> list[str]:
        return await self._timed("List", self._inner.list(path))

    async def move(self, source: str, destination: str) -> None:
        await self._timed("Move", self._inner.move(source, destination))

    async def delete(self, path: str) -> None:
        await self._timed("Delete", self._inner.delete(path))

    async def delete_many(self, paths: Sequence[str]) -> dict[str, StorageError]:
        return await self._timed("Delete", self._inner.delete_many(paths))

    async def redirect_url(self, path: str, method: str) -> str | None:
        if not self._redirects:
            return None
        return await self._timed("RedirectURL", self._inner.redirect_url(path, method))

    def capability(self, kind: type[_Capability]) -> _Capability | None:
        return self._inner.capability(kind)

    async def walk(self, path: str) -> AsyncIterator[str]:
        async for found in self._inner.walk(path):
            yield found

    async def close(self) -> None:
        await self._inner.close()
