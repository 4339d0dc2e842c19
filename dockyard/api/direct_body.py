"""Large request bodies received straight from the socket into reusable, aligned buffers.

aiohttp hands a body over as many small ``bytes`` objects: the event loop copies each read
into a new object, the HTTP parser copies it again, and gathering the pieces into a buffer
worth a thread hand-off copies them once more. For a multi-gigabyte blob those copies
cost as much CPU as hashing it. For a plain-TCP request with a large ``Content-Length``
the connection is switched, for the rest of the body, to a buffered protocol that lets the
event loop ``recv`` into 4 MiB buffers; each full buffer is handed to the consumer as it
is (no copy) while the next ones fill.

The price: aiohttp's parser never sees those bytes, so the connection cannot carry another
request. The response says ``Connection: close`` (see :func:`takes_over`) and the
connection closes after it; for a body of many megabytes the reconnect costs nothing.
A body refused before it is read to its end is read on and dropped first (for a bounded
time), so that the close does not reset the connection under the client's answer.

The consumer hands each chunk back with :meth:`DirectBody.done` once it needs it no more
(:class:`dockyard.registry.body.Body`); only then is its buffer filled again, by this body
or, after the body is closed, by another one. How many buffers a body gets, and how many
one process lends in all, is set in :mod:`dockyard.api.buffers`.
"""

from __future__ import annotations

import asyncio
import mmap
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator

from aiohttp import web

from dockyard.api.buffers import BUFFER_SIZE, BodyBuffers
from dockyard.registry.uploads import IncompleteBodyError

# Bodies at least this large are taken over; smaller ones are not worth a reconnect.
MIN_BODY = 8 * 1024 * 1024
# How long the rest of a body left unread (a refused request) is read and dropped before the
# answer goes out; aiohttp lingers as long on the bodies it parses.
LINGER_SECONDS = 10.0


class DirectBody(asyncio.BufferedProtocol):
    """Takes the connection's reads until ``remaining`` bytes have arrived.

    Its buffers come from the process's pool (:mod:`dockyard.api.buffers`): one at
    first, more while the pool lends them; with none free, reading pauses until the
    consumer hands one back. Flow control and connection loss are passed on to the
    original protocol, so that aiohttp still writes the response and notices a closed
    connection."""

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
        self._buffers = BodyBuffers()
        first = self._buffers.first()
        self._filling: mmap.mmap | None = first
        self._view = memoryview(first)
        self._filled = len(head)
        self._view[: len(head)] = head
        self._ready: deque[tuple[mmap.mmap, int]] = deque()
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._scratch = bytearray(64 * 1024)
        self._closed = False
        self._dropped: asyncio.Future[None] | None = None

    # -- the protocol side (event loop callbacks) ------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._filling is None or self._remaining == 0:
            return memoryview(self._scratch)  # past the body, or paused: discarded
        end = min(BUFFER_SIZE, self._filled + self._remaining)
        return self._view[self._filled : end]

    def buffer_updated(self, nbytes: int) -> None:
        if self._dropped is not None:
            self._remaining = max(0, self._remaining - nbytes)
            if self._remaining == 0:
                self._settle(self._dropped)
            return
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
        following = self._buffers.next() if self._remaining else None
        self._fill(following)
        if following is None and self._remaining:
            self._transport.pause_reading()
        self._wake()

    def _fill(self, buffer: mmap.mmap | None) -> None:
        self._filling = buffer
        self._view = memoryview(buffer) if buffer is not None else memoryview(self._scratch)

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
        if self._dropped is not None:
            self._settle(self._dropped)

    @staticmethod
    def _settle(future: asyncio.Future[None]) -> None:
        if not future.done():
            future.set_result(None)

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
                buffer, length = self._ready.popleft()
                yield self._buffers.hand(buffer, length)
        finally:
            self.close()

    def done(self, chunk: bytes | memoryview) -> None:
        """The consumer needs ``chunk`` no more: its buffer may be filled again."""
        buffer = self._buffers.handed_back(chunk)
        if buffer is None:
            return
        if self._filling is None and self._remaining:
            self._fill(buffer)
            self._transport.resume_reading()
        else:
            self._buffers.returned(buffer)

    def close(self) -> None:
        """Return the buffers, once nothing can write into them any more; one the
        consumer still holds goes back when it is done with it."""
        if self._closed:
            return
        self._closed = True
        if self._remaining and self._error is None:
            # The body was not read to its end (a refused request): the rest is read into
            # scratch space and dropped, so that the client, still sending, is not reset
            # before it reads the answer (see :func:`finish`).
            self._dropped = asyncio.get_running_loop().create_future()
            self._transport.resume_reading()
        self._fill(None)
        self._buffers.close()

    async def drop_rest(self, seconds: float) -> None:
        """Wait until the rest of a body left unread has been dropped, for at most
        ``seconds``; then the connection is closed if bytes are still coming."""
        if self._dropped is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._dropped), seconds)
        except TimeoutError:
            self._transport.close()


_KEY = web.RequestKey("dockyard.direct_body", DirectBody)


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
    receiver = DirectBody(request.protocol, transport, head, length - len(head))
    request[_KEY] = receiver
    transport.set_protocol(receiver)
    transport.resume_reading()
    return receiver


async def _ordinary(request: web.Request, head: bytes) -> AsyncGenerator[bytes]:
    yield head
    async for chunk in request.content.iter_any():
        yield chunk


def takes_over(request: web.Request) -> bool:
    """Whether the body of ``request`` was taken over: its response must close the
    connection. Asked of every request: one without a body is answered without looking
    the key up (a miss raises and catches a KeyError inside the mapping, about 1 µs)."""
    return request.body_exists and _KEY in request


async def finish(request: web.Request) -> None:
    """Before the answer to a taken-over request goes out: drop what is left of its body,
    for at most :data:`LINGER_SECONDS`. Closing a socket with unread bytes resets the
    connection, and the client would lose the answer (a 404 for an unknown upload)."""
    receiver = request.get(_KEY)
    if receiver is not None:
        await receiver.drop_rest(LINGER_SECONDS)
