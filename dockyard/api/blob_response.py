"""Serving blob bytes: sendfile from a local file, or a stream from any driver.

aiohttp's ``FileResponse`` relies on ``loop.sendfile``, which uvloop does not implement, so
it would fall back to reading and writing every chunk through Python. Large local blobs go
out with ``os.sendfile`` instead, run in a thread of a dedicated pool that waits for the
socket with ``select`` (the event loop keeps serving meanwhile); small ones are read in one
piece: on the event loop when the page cache holds them (a thread hop costs more than the
copy, and a small image is pulled as a train of such requests), else in a thread. Ranges
are parsed by :mod:`dockyard.oci.ranges`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from dockyard.api.client_gone import ClientGoneError
from dockyard.api.readahead import ReadAhead
from dockyard.oci.ranges import ByteRange, RangeNotSatisfiable, parse_range

SMALL_BLOB = 1024 * 1024
SENDFILE_CHUNK = 16 * 1024 * 1024
IDLE_TIMEOUT = 120.0
_sendfile_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="sendfile")


def _select_range(
    request: web.Request, size: int, headers: dict[str, str]
) -> tuple[ByteRange, int] | web.Response:
    """The bytes to send and the status, or a 416 response."""
    whole = ByteRange(0, size - 1)
    value = request.headers.get("Range")
    if not value or size == 0:
        return whole, 200
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range != headers.get("ETag"):
        return whole, 200
    try:
        parsed = parse_range(value, size)
    except RangeNotSatisfiable:
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if parsed is None:
        return whole, 200
    headers["Content-Range"] = f"bytes {parsed.start}-{parsed.end}/{size}"
    return parsed, 206


def _send_all(socket_fd: int, file_fd: int, offset: int, count: int) -> None:
    """Blocking ``sendfile`` of ``count`` bytes to a non-blocking socket, with the file's
    reads started ahead of it (a blob not yet in the page cache is not read piecemeal)."""
    ahead = ReadAhead(file_fd, offset, offset + count)
    while count > 0:
        ahead.at(offset)
        try:
            sent = os.sendfile(socket_fd, file_fd, offset, min(count, SENDFILE_CHUNK))
        except BlockingIOError:
            sent = -1
        if sent == 0:
            raise TruncatedBlobError("file ended before the blob's size")
        if sent < 0:
            _, writable, _ = select.select([], [socket_fd], [], IDLE_TIMEOUT)
            if not writable:
                raise TimeoutError("client stopped reading")
            continue
        offset += sent
        count -= sent


def _read_ahead(fd: int, ahead: ReadAhead, offset: int, length: int) -> bytes:
    ahead.at(offset)
    return os.pread(fd, length, offset)


@contextlib.contextmanager
def cut_short_on_failure(request: web.Request) -> Iterator[None]:
    """Once a response has begun, a failure must not end it in a way that looks complete
    (an error response written after the first bytes would read as the body's rest): the
    connection is cut, so the client sees a body shorter than its ``Content-Length``."""
    try:
        yield
    except BaseException:
        if request.transport is not None:
            request.transport.abort()
        raise


class TruncatedBlobError(Exception):
    """The stored bytes ended before the blob's size: a fault of the storage, not of the
    client, so it is not a ConnectionError (those mean the client went away)."""


class BytesMissingError(Exception):
    """The file of a blob the database knows is not there (nothing was sent yet)."""


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise BytesMissingError(str(path)) from None


_NOWAIT = getattr(os, "RWF_NOWAIT", None)


def read_cached(path: Path, offset: int, length: int) -> bytearray | None:
    """The bytes if the page cache holds them all, else None. ``RWF_NOWAIT`` makes the read
    fail rather than wait for the disk, so this may run on the event loop (the ``open`` of
    a blob file finds its directory entries cached, as the ``HEAD`` path's ``stat`` does)."""
    if _NOWAIT is None:
        return None
    fd = _open(path)
    try:
        buffer = bytearray(length)
        try:
            got = os.preadv(fd, [buffer], offset, _NOWAIT)
        except (BlockingIOError, OSError):
            return None
        return buffer if got == length else None
    finally:
        os.close(fd)


def _read_small(path: Path, offset: int, length: int) -> bytes:
    fd = _open(path)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


async def send_local_file(
    request: web.Request, path: Path, size: int, headers: dict[str, str]
) -> web.StreamResponse:
    """Serve ``size`` bytes of a local file. The file is opened before anything is sent,
    so a missing file raises BytesMissingError while an error response is still possible."""
    chosen = _select_range(request, size, headers)
    if isinstance(chosen, web.Response):
        return chosen
    selected, status = chosen
    length = max(selected.length, 0)
    if length <= SMALL_BLOB:  # from the cache on the loop, else one thread hop
        cached = read_cached(path, selected.start, length)
        if cached is not None:
            return web.Response(status=status, body=cached, headers=headers)
        body = await asyncio.to_thread(_read_small, path, selected.start, length)
        return web.Response(status=status, body=body, headers=headers)
    fd = await asyncio.to_thread(_open, path)
    try:
        with cut_short_on_failure(request):  # the file is open: nothing fails before the body
            if _is_tls(request):
                # sendfile writes to the raw socket and would bypass TLS: stream via the transport
                return await _stream_file(request, fd, selected, status, headers)
            return await _sendfile(request, fd, selected, status, headers)
    finally:
        os.close(fd)


async def _sendfile(
    request: web.Request, fd: int, selected: ByteRange, status: int, headers: dict[str, str]
) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = selected.length
    writer = await response.prepare(request)
    transport = request.transport
    socket = transport.get_extra_info("socket") if transport is not None else None
    if transport is None or socket is None or writer is None:
        raise ConnectionResetError("connection lost before the blob was sent")
    # The headers must be on the wire before sendfile writes to the socket directly.
    writer.send_headers()
    for _ in range(1000):
        if transport.get_write_buffer_size() == 0:
            break
        await writer.drain()
        await asyncio.sleep(0.001)
    # The thread writes to a duplicate of the socket's descriptor: when the client goes
    # away, the event loop closes the original, and its number may be reused at once by
    # the next connection accepted, which must never receive this blob's bytes.
    socket_fd = os.dup(socket.fileno())
    try:
        await asyncio.get_running_loop().run_in_executor(
            _sendfile_pool, _send_all, socket_fd, fd, selected.start, selected.length
        )
    except OSError as exc:
        raise ClientGoneError(f"sending the blob failed: {exc}") from exc
    finally:
        os.close(socket_fd)
    await response.write_eof()
    return response


def _is_tls(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and transport.get_extra_info("sslcontext") is not None


async def _stream_file(
    request: web.Request, fd: int, selected: ByteRange, status: int, headers: dict[str, str]
) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = selected.length
    await response.prepare(request)
    offset, remaining = selected.start, selected.length
    ahead = ReadAhead(fd, offset, offset + remaining)
    while remaining > 0:
        chunk = await asyncio.to_thread(_read_ahead, fd, ahead, offset, min(remaining, SMALL_BLOB))
        if not chunk:
            raise TruncatedBlobError("file ended before the blob's size")
        await response.write(chunk)
        offset += len(chunk)
        remaining -= len(chunk)
    await response.write_eof()
    return response


async def send_stream(
    request: web.Request,
    size: int,
    headers: dict[str, str],
    open_stream: Callable[[int, int], AsyncIterator[bytes]],
) -> web.StreamResponse:
    """Serve from a driver's reader (no local file). The first piece is read before the
    response starts, so that a driver's PathNotFoundError can still become a 404."""
    chosen = _select_range(request, size, headers)
    if isinstance(chosen, web.Response):
        return chosen
    selected, status = chosen
    pieces = open_stream(selected.start, selected.length) if selected.length > 0 else None
    first = await anext(pieces, b"") if pieces is not None else b""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = max(selected.length, 0)
    await response.prepare(request)
    with cut_short_on_failure(request):
        if pieces is not None:
            await response.write(first)
            sent = len(first)
            async for chunk in pieces:
                await response.write(chunk)
                sent += len(chunk)
            if sent != selected.length:
                raise TruncatedBlobError(f"storage gave {sent} of {selected.length} bytes")
        await response.write_eof()
    return response
