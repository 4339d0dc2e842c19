"""Blob bytes behind one small driver interface (see :mod:`dockyard.storage.driver`)."""

from dockyard.storage.driver import (
    FileWriter,
    InvalidPathError,
    PathNotFoundError,
    StorageDriver,
    WriterState,
)

__all__ = ["FileWriter", "InvalidPathError", "PathNotFoundError", "StorageDriver", "WriterState"]
