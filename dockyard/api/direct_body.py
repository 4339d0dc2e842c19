"""Large request bodies received straight from the socket into reusable, aligned buffers.

aiohttp hands a body over as many small ``bytes`` objects: the event loop copies each read
into a new object, the HTTP parser copies it again, and gathering the pieces into a buffer
worth a thread hand-off copies them once more. For a multi-gigabyte blob those copies
cost as much CPU as hashing it. For a plain-TCP request with a large ``Content-Length``
the connection is switched, for the rest of the body, to a buffered protocol that lets the
event loop ``recv`` into 4 MiB buffers; each full buffer is handed to the consumer as it
is (no copy) while the next ones fill. The buffers are page-aligned (``mmap``), so that a
driver that can write them with ``O_DIRECT`` does (the filesystem driver).

The price: aiohttp's parser never sees those bytes, so the connection cannot carry another
request. The response says ``Connection: close`` (see :func:`takes_over`) and the
connection closes after it; for a body of many megabytes the reconnect costs nothing.

The consumer hands each chunk back with :meth:`DirectBody.done` once it needs it no more
(:class:`dockyard.registry.body.Body`); only then is its buffer filled again, by this body
or, after the body is closed, by another one.
"""

from __future__ import annotations

import asyncio
import mmap
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator

from aiohttp import web

from dockyard.registry.uploads import IncompleteBodyError

BUFFER_SIZE = 4 * 1024 * 1024
# Some held by the consumer (hashed, written), the others receiving meanwhile: reading
# waits for the consumer only when the disk is the slower side.
BUFFERS = 4
# Bodies at least this large are taken over; smaller ones are not worth a reconnect.
MIN_BODY = 8 * 1024 * 1024
_KEY = web.RequestKey("dockyard.direct_body", bool)
# Free buffers kept per process for the next upload: mapping fresh memory costs more
# than the copies it saves when it happens per request.
_POOL_LIMIT = BUFFERS
_pool: list[mmap.mmap] = []


def _take_buffer() -> mmap.mmap:
    return _pool.pop() if _pool else mmap.mmap(-1, BUFFER_SIZE)


def _give_back(buffer: mmap.mmap) -> None:
    if len(_pool) < _POOL_LIMIT:
        _pool.append(buffer)


class DirectBody(asyncio.BufferedProtocol):
    """Takes the connection's reads until ``remaining`` bytes have arrived.

    Flow control and connection loss are passed on to the original protocol, so that
    aiohttp still writes the response and notices a closed connection."""

    def __init__(
        self,
        original: asyncio.BaseProtocol,
        transport: asyncio.Transport,
        head: bytes,
        remaining: int,
    ) -> None:
        self._original = original
        self._transport = transport
        self._remaining = remaining
        self._buffers = [_take_buffer() for _ in range(BUFFERS)]
        self._views = [memoryview(b) for b in self._buffers]
        self._free = deque(range(1, BUFFERS))
        self._filling: int | None = 0
        self._filled = len(head)
        self._views[0][: len(head)] = head
        self._ready: deque[tuple[int, int]] = deque()
        self._handed: set[int] = set()  # the buffers the consumer holds
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._scratch = bytearray(64 * 1024)
        self._closed = False

    # -- the protocol side (event loop callbacks) ------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._filling is None or self._remaining == 0:
            return memoryview(self._scratch)  # past the body, or paused: discarded
        view = self._views[self._filling]
        end = min(BUFFER_SIZE, self._filled + self._remaining)
        return view[self._filled : end]

    def buffer_updated(self, nbytes: int) -> None:
        if self._filling is None or self._remaining == 0:
            return
        self._filled += nbytes
        self._remaining -= nbytes
        if self._filled == BUFFER_SIZE or self._remaining == 0:
            self._publish()

    def _publish(self) -> None:
        assert self._filling is not None
        self._ready.append((self._filling, self._filled))
        self._filled = 0
        if self._remaining and self._free:
            self._filling = self._free.popleft()
        else:
            self._filling = None
            if self._remaining:
                self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        if self._remaining:
            self._fail(IncompleteBodyError(f"connection closed with {self._remaining} bytes to go"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._remaining:
            self._fail(IncompleteBodyError(f"connection lost with {self._remaining} bytes to go"))
        self._original.connection_lost(exc)

    def pause_writing(self) -> None:
        self._original.pause_writing()

    def resume_writing(self) -> None:
        self._original.resume_writing()

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the consumer side ------------------------------------------------------------------

    async def chunks(self) -> AsyncGenerator[memoryview]:
        try:
            while True:
                if not self._ready:
                    if self._remaining == 0 and self._filling is None and self._filled == 0:
                        return  # the whole body was handed over
                    if self._error is not None:
                        raise self._error
                    self._waiter = asyncio.get_running_loop().create_future()
                    await self._waiter
                    self._waiter = None
                    continue
                index, length = self._ready.popleft()
                self._handed.add(index)
                yield self._views[index][:length]
        finally:
            self._close()

    def done(self, chunk: bytes | memoryview) -> None:
        """The consumer needs ``chunk`` no more: its buffer may be filled again."""
        index = next((i for i, buffer in enumerate(self._buffers) if _view_of(chunk, buffer)), None)
        if index is None or index not in self._handed:
            return
        self._handed.discard(index)
        if self._closed:
            _give_back(self._buffers[index])
        else:
            self._release(index)

    def _release(self, index: int) -> None:
        if self._filling is None and self._remaining:
            self._filling = index
            self._transport.resume_reading()
        else:
            self._free.append(index)

    def _close(self) -> None:
        """Return the buffers, once nothing can write into them any more; one the
        consumer still holds goes back when it is done with it."""
        if self._closed:
            return
        self._closed = True
        if self._remaining:
            # The body was not read to its end: the connection is useless; stop its reads
            # before the buffers go back.
            self._filling = None
            self._transport.close()
        for index, buffer in enumerate(self._buffers):
            if index not in self._handed:
                _give_back(buffer)


def _view_of(chunk: bytes | memoryview, buffer: mmap.mmap) -> bool:
    return isinstance(chunk, memoryview) and chunk.obj is buffer


def _eligible(request: web.Request) -> int | None:
    """The body bytes still to come when ``request`` may be taken over, else None."""
    length = request.content_length
    if length is None or length < MIN_BODY or "Transfer-Encoding" in request.headers:
        return None
    transport = request.transport
    if transport is None or transport.get_extra_info("sslcontext") is not None:
        return None
    if transport.is_closing() or not isinstance(request.protocol, asyncio.Protocol):
        return None
    content = request.content
    if content.exception() is not None or content.is_eof():
        return None
    return length


def direct_body(request: web.Request) -> DirectBody | AsyncIterator[bytes] | None:
    """Take over the rest of ``request``'s body, or None when it does not qualify (and,
    rarely, what was already taken out of the parser, followed by the rest from it)."""
    length = _eligible(request)
    if length is None:
        return None
    transport = request.transport
    assert transport is not None
    head = request.content.read_nowait(BUFFER_SIZE)
    more = request.content.read_nowait()
    if more or len(head) >= length:
        # Not seen in practice (aiohttp buffers far less than a buffer's worth): keep
        # the ordinary path, after what was already taken out of it.
        return _ordinary(request, head + more)
    # From here on the parser is bypassed; it must not wait for the rest, nor linger.
    request.content.feed_eof()
    request[_KEY] = True
    receiver = DirectBody(request.protocol, transport, head, length - len(head))
    transport.set_protocol(receiver)
    transport.resume_reading()
    return receiver


async def _ordinary(request: web.Request, head: bytes) -> AsyncGenerator[bytes]:
    yield head
    async for chunk in request.content.iter_any():
        yield chunk


def takes_over(request: web.Request) -> bool:
    """Whether the body of ``request`` was taken over: its response must close the
    connection."""
    return bool(request.get(_KEY, False))
