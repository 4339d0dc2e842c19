"""The request body an upload reads: chunks, each handed back once the reader is done.

A producer may hand out views of buffers that it fills again: ``dockyard.api.direct_body``
receives large bodies from the socket straight into a few reusable buffers. The contract
keeps each side free of the other's numbers (how many buffers there are, how many chunks
a reader holds): the reader calls :meth:`Body.done` with every chunk it took, once it
needs it no more (a copy it made is its own), and the producer fills a buffer again only
after that. A producer of ``bytes`` has nothing to do.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol


class Body(Protocol):
    def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        """The chunks, in order (iterated once)."""
        ...

    def done(self, chunk: bytes | memoryview) -> None:
        """The reader needs ``chunk`` no more: its buffer may be filled again."""
        ...


class IterableBody:
    """A body of chunks that nobody fills again (``bytes``): ``done`` has nothing to do."""

    def __init__(self, chunks: AsyncIterable[bytes | memoryview]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        return aiter(self._chunks)

    def done(self, chunk: bytes | memoryview) -> None:
        pass
