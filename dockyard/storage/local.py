"""The optional powers of a driver whose files are on a local filesystem.

A caller asks for them with ``storage.capability(LocalFiles)``; the base contract
(:mod:`dockyard.storage.driver`) never assumes them, so an object store needs none.
What a local driver does inside its writers (``O_DIRECT`` for page-aligned buffers, page
cache recycling, several writes in flight: :mod:`dockyard.storage.filesystem_writer`)
needs no asking: a writer takes any buffer, and is done with it when ``write`` returns.
"""

from __future__ import annotations

from pathlib import Path


class LocalFiles:
    """A driver with local files subclasses this and implements every method. (Not an
    ABC: ``capability(LocalFiles)`` needs a class it can be given.)"""

    def local_path(self, path: str) -> Path:
        """The local file of a committed driver path, e.g. to serve it with sendfile;
        InvalidPathError for a path that fails the driver's checks."""
        raise NotImplementedError

    def upload_file(self, path: str) -> Path:
        """The local file the upload at ``path`` is written to while it runs: every byte
        that a :class:`~dockyard.storage.driver.FileWriter`'s ``write`` returned for can be
        read there (the pull-through cache reads a download behind its writer)."""
        raise NotImplementedError
