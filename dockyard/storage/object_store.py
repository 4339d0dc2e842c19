"""What the object-store drivers (GCS, Azure) share: driver paths as object keys under a
root prefix, and the directory operations an object store lacks, built on a listing.

A path ``/a/b`` is the key ``<rootdirectory>/a/b``; a "directory" is a key prefix, there
when some key lies below it. Listings serve only ``list``, ``walk`` and ``delete`` (and
clean-ups): never an upload's progress. Keys hold at most :data:`MAX_KEY` characters
(GCS's 1024 bytes, Azure's 1024 characters); a longer path is invalid for every method.

The key space also holds, under ``<rootdirectory>/.dockyard-parts/``, what a driver keeps
for uploads in progress apart from their paths (GCS's part objects): ``list`` and ``walk``
leave it out, and no driver path reaches it except that name itself.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from dockyard.storage.driver import (
    InvalidPathError,
    PathNotFoundError,
    StorageDriver,
    WriterState,
    check_path,
)

MAX_KEY = 1024
PARTS = ".dockyard-parts"


@dataclass(frozen=True)
class Listed:
    """One entry of a listing: a key, or a common prefix (ending in ``/``)."""

    key: str
    is_prefix: bool = False


def root_prefix(rootdirectory: str) -> str:
    """``rootdirectory`` as a key prefix: ``""`` (the bucket's root) or ``"a/b/"``."""
    stripped = rootdirectory.strip("/")
    return f"{stripped}/" if stripped else ""


class _Kept(Protocol):
    @property
    def size(self) -> int: ...


_State = TypeVar("_State", bound=_Kept)


def kept_state(
    path: str, state: WriterState | None, decode: Callable[[bytes | None], _State]
) -> _State:
    """The driver's own state of an upload (``decode(None)``: nothing kept yet), which
    must hold ``state.size`` bytes; PathNotFoundError for a state it did not write."""
    try:
        kept = decode(None if state is None else state.driver_state)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise PathNotFoundError(path) from None
    if kept.size != (0 if state is None else state.size):
        raise PathNotFoundError(path)
    return kept


class ObjectStoreDriver(StorageDriver):
    """The directory operations of an object-store driver over a few key primitives."""

    def __init__(self, rootdirectory: str) -> None:
        self.prefix = root_prefix(rootdirectory)

    # -- keys -----------------------------------------------------------------------------

    def key(self, path: str) -> str:
        """The object key of a file path (never the root)."""
        check_path(path)
        if path == "/":
            raise InvalidPathError(path)
        key = self.prefix + path[1:]
        if len(key.encode()) > MAX_KEY:
            raise InvalidPathError(path)
        return key

    def _directory(self, path: str) -> str:
        """The key prefix of a directory path (the root included)."""
        check_path(path)
        if path == "/":
            return self.prefix
        return self.key(path) + "/"

    def upload_key(self, path: str, destination: str | None) -> str:
        """The key of an upload's path, its destination checked too."""
        if destination is not None:
            self.key(destination)
        return self.key(path)

    async def same_key_move(self, source: str, destination: str) -> bool:
        """True for a move onto itself (nothing to do); PathNotFoundError if no file."""
        if self.key(source) != self.key(destination):
            return False
        if await self.size_of(self.key(source)) is None:
            raise PathNotFoundError(source)
        return True

    def _path(self, key: str) -> str:
        return "/" + key[len(self.prefix) :].rstrip("/")

    def parts_prefix(self) -> str:
        """Where a driver keeps upload pieces that no path names."""
        return f"{self.prefix}{PARTS}/"

    # -- primitives -----------------------------------------------------------------------

    @abstractmethod
    def list_keys(self, prefix: str, delimiter: bool) -> AsyncIterator[Listed]:
        """Keys starting with ``prefix``; with ``delimiter``, those below a further ``/``
        as one common prefix each."""

    @abstractmethod
    async def delete_key(self, key: str) -> bool:
        """Delete one object; False if it was not there."""

    @abstractmethod
    async def size_of(self, key: str) -> int | None:
        """The size of the object at ``key``; None if there is none."""

    # -- the contract's directory operations ------------------------------------------------

    async def stat(self, path: str) -> int | None:
        if check_path(path) == "/":
            return None
        return await self.size_of(self.key(path))

    async def list(self, path: str) -> list[str]:
        directory = self._directory(path)
        found = set()
        async for entry in self.list_keys(directory, delimiter=True):
            child = self._path(entry.key)
            if child != "/" and child != path:
                found.add(child)
        if path == "/":
            found.discard(f"/{PARTS}")
        return sorted(found)

    async def walk(self, path: str) -> AsyncIterator[str]:
        """Every file below ``path``, depth first, from one flat listing."""
        directory = self._directory(path)
        parts = self.parts_prefix()
        keys = [
            entry.key
            async for entry in self.list_keys(directory, delimiter=False)
            if not entry.key.startswith(parts) and not entry.key.endswith("/")
        ]
        for key in sorted(keys, key=lambda k: k.split("/")):
            yield self._path(key)

    async def delete(self, path: str) -> None:
        key = self.key(path)
        deleted = await self.delete_key(key)
        below = [entry.key async for entry in self.list_keys(key + "/", delimiter=False)]
        for child in below:
            deleted = await self.delete_key(child) or deleted
        if not deleted:
            raise PathNotFoundError(path)
