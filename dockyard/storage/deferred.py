"""The optional power of a driver whose commit can leave the bytes where they were written.

On an object store a chunked upload is written at the upload's own path, and putting it
at the blob's path is a server-side copy that costs the store as much as writing it
(SeaweedFS: 3.9-4.7 s per GiB). A driver with this power completes the upload in place and
lets the caller make the copy later (:mod:`dockyard.registry.blob_mover`); the database
says where the bytes are until then.
"""

from __future__ import annotations

import asyncio

from dockyard.storage.driver import WriterState


class DeferredCopies:
    """A driver that can defer a commit's copy subclasses this. (Not an ABC: ``capability``
    needs a class it can be given.)"""

    #: Whether commits are deferred (a driver may have the power but the key off; the mover
    #: still finishes the copies it finds).
    defers_copies: bool = False
    _moves_waiting: asyncio.Event | None = None

    async def commit_in_place(self, path: str, state: WriterState, destination: str) -> str:
        """Commit the upload at ``path`` like ``commit`` does, but without copying it to
        ``destination``: the path that now holds the bytes (``destination`` itself when the
        upload was written there)."""
        raise NotImplementedError

    async def copy(self, source: str, destination: str) -> None:
        """Copy the file ``source`` to ``destination`` (any size); the source stays."""
        raise NotImplementedError

    def moves_waiting(self) -> asyncio.Event:
        """Set by a deferred commit in this process: wakes the mover."""
        if self._moves_waiting is None:
            self._moves_waiting = asyncio.Event()
        return self._moves_waiting
