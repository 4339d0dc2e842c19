"""The storage-driver contract: a dozen operations on opaque files, nothing about digests.

Paths are absolute, slash-separated strings (``/docker/registry/v2/...``) whose components
use ``[A-Za-z0-9._-]`` and are never ``.`` or ``..``: :func:`check_path` enforces that once,
for every driver, so no caller can reach outside the driver's root.

The contract fits an object store with neither rename nor append: ``move`` may copy then
delete, and a ``FileWriter`` may be a resumable multipart upload. ``put_content`` and
``FileWriter.commit`` followed by ``move`` are the only ways bytes become visible at a path,
and each is all-or-nothing.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")


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


class FileWriter(ABC):
    """Writes one file in sequence; may be closed and reopened with ``append=True``."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes in the file so far, including what earlier writers appended."""

    @abstractmethod
    async def write(self, data: bytes | memoryview) -> None:
        """Append ``data``. Several writes may be in flight at once: each lands where the
        file ended when it was called, and ``size`` counts it from then on."""

    @abstractmethod
    async def truncate(self, size: int) -> None:
        """Drop everything after the first ``size`` bytes (undo a failed chunk)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop writing, keeping the data for a later append."""

    @abstractmethod
    async def commit(self) -> None:
        """Make everything written durable; no more writes follow."""

    @abstractmethod
    async def cancel(self) -> None:
        """Discard the file."""


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
    async def writer(self, path: str, append: bool = False) -> FileWriter:
        """A writer at ``path``; with ``append`` it continues an existing file."""

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

    def local_path(self, path: str) -> Path | None:
        """A local filesystem path to serve with sendfile, when the driver has one."""
        return None

    async def redirect_url(self, path: str, method: str) -> str | None:
        """A URL the client may fetch directly instead (object stores); None to proxy."""
        return None

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
