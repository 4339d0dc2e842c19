"""The storage-driver contract: a few operations on opaque files, nothing about digests.

It is written so that an object store can implement it: nothing asks for rename, append
or truncate, and an upload in progress may be invisible until it is committed.

* Whole files: ``get_content`` / ``put_content`` (small, atomic), ``reader`` (a stream
  from an offset), ``stat``, ``list``, ``walk``, ``move``, ``delete`` (and ``delete_many``),
  ``redirect_url``.
* Uploads: ``writer`` opens a :class:`FileWriter` that appends in order. Between
  requests the *caller* keeps where the upload stands (a :class:`WriterState`: the bytes
  kept and an opaque ``driver_state``, e.g. a multipart upload id and its parts) and
  hands it back to resume, to ``commit`` (the bytes become the file at a destination, all
  at once) or to ``abort``. The driver never lists anything to learn an upload's progress:
  object-store listings lag. Whatever was written past the kept size (a failed chunk) is
  discarded when the upload is resumed or committed.
* Optional interfaces (``capability``): :class:`dockyard.storage.local.LocalFiles` for a
  driver whose files are local (sendfile).

Paths are absolute, slash-separated strings (``/docker/registry/v2/...``) whose components
use ``[A-Za-z0-9._-]`` and are never ``.`` or ``..``: :func:`check_path` enforces that once,
for every driver, so no caller can reach outside the driver's root. ``put_content`` and
``commit`` (or ``move`` of a committed file) are the only ways bytes become visible at a
path, and each is all-or-nothing.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")
_Capability = TypeVar("_Capability")
#: deletes in flight at once in the default ``delete_many``
DELETES_AT_ONCE = 16


class StorageError(Exception):
    """Base of the storage errors."""


class PathNotFoundError(StorageError):
    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path}")
        self.path = path


class StorageFullError(StorageError):
    """The storage has no room left (a full disk, a quota): nothing was made visible."""

    def __init__(self, where: str) -> None:
        super().__init__(f"no space left on the storage at {where}")
        self.where = where


class InvalidPathError(StorageError):
    def __init__(self, path: str) -> None:
        super().__init__(f"invalid storage path: {path[:300]!r}")
        self.path = path


def check_path(path: str) -> str:
    """Return ``path`` if it is a safe driver path, else raise InvalidPathError."""
    if not path.startswith("/") or len(path) > 4096:
        raise InvalidPathError(path)
    if path == "/":
        return path
    for part in path[1:].split("/"):
        if part in ("", ".", "..") or not _COMPONENT.fullmatch(part):
            raise InvalidPathError(path)
    return path


def check_file_path(path: str) -> str:
    """Return ``path`` if it may name a file: any safe driver path but the root."""
    if check_path(path) == "/":
        raise InvalidPathError(path)
    return path


@dataclass(frozen=True)
class WriterState:
    """Where an upload stands, kept by the caller between requests (the ``uploads`` row).

    ``size`` is how many bytes the upload holds; ``driver_state`` is the driver's own,
    opaque to the caller (an object store's multipart upload id and parts; nothing for
    the filesystem). ``WriterState()`` is an upload that holds nothing yet.
    """

    size: int = 0
    driver_state: bytes | None = None


class FileWriter(ABC):
    """Appends to one upload, in order, one write at a time (each awaited before the next).

    A writer ends with :meth:`close`, whose state the caller keeps to resume, commit or
    abort the upload, or with :meth:`abandon`, after which the state it was opened at is
    still the one to go on from.
    """

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes in the upload: the size it was opened at plus what this writer appended."""

    def expect(self, length: int) -> None:  # noqa: B027  # a hint most writers ignore
        """Before the first write: exactly ``length`` more bytes will be written before
        :meth:`close` (a request's declared length). A writer may send them on as they
        come; closing with fewer then fails. Here: nothing to do."""

    @abstractmethod
    async def write(self, data: bytes | memoryview) -> None:
        """Append ``data``. The writer is done with ``data`` when this returns. After a
        failed write, only :meth:`abandon` is left."""

    @abstractmethod
    async def close(self) -> WriterState:
        """Stop writing and keep everything written; the state to keep for the upload."""

    @abstractmethod
    async def abandon(self) -> None:
        """Stop writing and keep nothing this writer appended (a failed chunk). Harmless
        after :meth:`close` or a failed write, and when called twice."""


class StorageDriver(ABC):
    """Byte storage at paths. Every method takes paths that pass :func:`check_path`."""

    name: str

    @abstractmethod
    async def get_content(self, path: str) -> bytes:
        """The whole content of a small file."""

    @abstractmethod
    async def put_content(self, path: str, data: bytes) -> None:
        """Replace a small file's content atomically."""

    @abstractmethod
    def reader(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (default: to the end) from ``offset``."""

    @abstractmethod
    async def writer(
        self, path: str, resume: WriterState | None = None, destination: str | None = None
    ) -> FileWriter:
        """A writer for the upload at ``path``: with ``resume``, the upload that state
        describes, holding exactly ``resume.size`` bytes (anything written past them is
        dropped); without (or with ``WriterState()``), a new, empty upload.

        ``destination`` is where the upload will be committed, when that is known already:
        a driver may write there directly, as long as nothing becomes visible before
        :meth:`commit`. PathNotFoundError when the kept bytes are gone."""

    @abstractmethod
    async def commit(self, path: str, state: WriterState, destination: str) -> None:
        """Make the ``state.size`` bytes of the upload at ``path`` the file at
        ``destination``, durable, all at once, replacing what is there; the upload is then
        gone. ``destination`` may be ``path`` itself: the upload becomes an ordinary file
        where it is. An upload never written (``WriterState()``) commits an empty file.
        PathNotFoundError when the kept bytes are gone."""

    @abstractmethod
    async def abort(self, path: str, state: WriterState) -> None:
        """Discard the upload at ``path``, leaving nothing behind. Harmless when there is
        nothing (never written, already committed or aborted)."""

    @abstractmethod
    async def stat(self, path: str) -> int | None:
        """The size of the file at ``path``; None if there is no file there."""

    @abstractmethod
    async def list(self, path: str) -> list[str]:
        """The full paths of the direct children of a directory (empty if none)."""

    @abstractmethod
    async def move(self, source: str, destination: str) -> None:
        """Move a file, replacing the destination atomically."""

    @abstractmethod
    async def delete(self, path: str) -> None:
        """Delete a file or a whole directory tree; PathNotFoundError if nothing is there."""

    async def delete_many(self, paths: Sequence[str]) -> dict[str, StorageError]:
        """Delete each of ``paths`` as :meth:`delete` does; returns the failures by path
        (nothing at a path is no failure). Here a few deletes at a time; a driver that
        deletes in bulk more cheaply overrides it."""
        failures: dict[str, StorageError] = {}
        gate = asyncio.Semaphore(DELETES_AT_ONCE)

        async def one(path: str) -> None:
            async with gate:
                try:
                    await self.delete(path)
                except PathNotFoundError:
                    pass
                except StorageError as exc:
                    failures[path] = exc

        await asyncio.gather(*(one(path) for path in paths))
        return failures

    async def redirect_url(self, path: str, method: str) -> str | None:
        """A URL the client may fetch directly instead (object stores); None to proxy."""
        return None

    def capability(self, kind: type[_Capability]) -> _Capability | None:
        """This driver as the optional interface ``kind`` (e.g. ``LocalFiles``), or None
        when it has no such power. A wrapper around a driver forwards the question."""
        return self if isinstance(self, kind) else None

    async def walk(self, path: str) -> AsyncIterator[str]:
        """Every file below ``path``, depth first."""
        for child in await self.list(path):
            if await self.stat(child) is not None:
                yield child
            else:
                async for found in self.walk(child):
                    yield found

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources (connections, thread pools)."""
