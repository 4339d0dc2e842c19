"""Reading Distribution's layout through a storage driver, for ``dockyard import`` and
``dockyard export``: the repository directories, link files, and where a path really is.

:mod:`dockyard.storage.paths` builds the paths; this module walks and reads them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from dockyard.oci.names import MAX_NAME_LENGTH
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFoundError, StorageDriver
from dockyard.storage.local import LocalFiles

#: How many link files or blob stats are in flight at once (object stores are slow per call).
CONCURRENCY = 32
#: A link file holds one digest; anything much longer is not a link.
MAX_LINK_BYTES = 1024

_T = TypeVar("_T")


def basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def location(storage: StorageDriver, path: str) -> str:
    """Where ``path`` is, for a message: the local file for a local driver (the absolute
    path under ``rootdirectory``), else the driver path and the driver's name."""
    local = storage.capability(LocalFiles)
    if local is not None and path != "/":
        return str(local.local_path(path))
    return f"{path} (in the {storage.name} storage)"


async def read_link(storage: StorageDriver, path: str) -> str | None:
    """The text of a link file, stripped; None when there is none (deleted content), and
    ``""`` for a file too long to be a link."""
    try:
        size = await storage.stat(path)
        if size is None:
            return None
        if size > MAX_LINK_BYTES:
            return ""
        data = await storage.get_content(path)
    except PathNotFoundError:
        return None
    return data.decode("ascii", errors="replace").strip()


async def gather_bounded(awaitables: Iterable[Awaitable[_T]], limit: int = CONCURRENCY) -> list[_T]:
    """Await all of ``awaitables``, at most ``limit`` at a time; results in their order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(awaitable: Awaitable[_T]) -> _T:
        async with semaphore:
            return await awaitable

    return list(await asyncio.gather(*map(one, awaitables)))


@dataclass(frozen=True)
class FoundRepository:
    """A directory of the repositories tree that holds registry:2's ``_`` directories."""

    name: str
    has_manifests: bool
    has_layers: bool
    has_uploads: bool

    @property
    def holds_content(self) -> bool:
        """False for a directory with only ``_uploads``: unfinished uploads, no content."""
        return self.has_manifests or self.has_layers


async def find_repositories(
    list_directory: Callable[[str], Awaitable[list[str]]], too_deep: Callable[[str], None]
) -> list[FoundRepository]:
    """Every directory under the repositories root holding ``_manifests``, ``_layers`` or
    ``_uploads``, by name; names may nest (``team/app`` and ``team/app/api``).

    ``list_directory`` lists a driver directory (reporting its own errors); ``too_deep``
    receives the driver path of each directory too deep to be a repository name.
    """
    found: list[FoundRepository] = []
    pending: list[tuple[str, str]] = [(paths.repositories_root(), "")]
    while pending:
        directory, name = pending.pop()
        children = {basename(child): child for child in await list_directory(directory)}
        markers = [f"_{kind}" in children for kind in ("manifests", "layers", "uploads")]
        if name and any(markers):
            found.append(FoundRepository(name, *markers))
        for base, child in children.items():
            if base.startswith("_"):
                continue
            child_name = f"{name}/{base}" if name else base
            if len(child_name) > MAX_NAME_LENGTH:
                too_deep(child)
                continue
            pending.append((child, child_name))
    return sorted(found, key=lambda repository: repository.name)
