"""What every handler receives besides the request: the service, the URL builder, the match."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from dockyard.api.buffers import BUFFER_SIZE
from dockyard.api.direct_body import DirectBody, direct_body
from dockyard.api.gather import GatheredBody, SmallBody
from dockyard.auth.access import Access
from dockyard.oci import errors
from dockyard.registry.service import Registry
from dockyard.registry.uploads import IncompleteBodyError


@dataclass(frozen=True)
class UrlBuilder:
    """Builds the URLs of ``Location`` headers from ``http.host``, ``prefix`` and
    ``relativeurls``, as registry:2 does."""

    prefix: str = ""
    host: str | None = None
    relative: bool = False

    def build(self, request: web.Request, path: str) -> str:
        full = f"{self.prefix}{path}"
        if self.relative:
            return full
        base = self.host.rstrip("/") if self.host else f"{request.scheme}://{request.host}"
        return f"{base}{full}"


def _allow_all(_access: Access) -> bool:
    return True


@dataclass(frozen=True)
class Call:
    """One matched request: the service, the URL builder, the path parameters, and what
    access control decided about the caller (``allows`` one more access, ``visible``
    filters listings; ``pulls_everything`` when the caller may pull every repository)."""

    registry: Registry
    urls: UrlBuilder
    params: dict[str, str]
    allows: Callable[[Access], bool] = _allow_all
    visible: Callable[[str], bool] | None = None
    pulls_everything: bool = True

    @property
    def name(self) -> str:
        return self.params["name"]


class RequestBody:
    """The body of ``request`` as an upload reads it (:class:`~dockyard.registry.body.Body`),
    in chunks of a few MiB; a body cut short raises IncompleteBodyError. Use it with
    ``async with``: leaving gives its buffers back.

    A large plain-TCP body is received straight into reusable buffers (see
    :mod:`dockyard.api.direct_body`), each filled again once the reader hands its chunk
    back. Any other body comes through aiohttp's parser, its pieces copied into buffers of
    the same pool, or joined when it is declared smaller than one
    (:mod:`dockyard.api.gather`)."""

    def __init__(self, request: web.Request) -> None:
        taken = direct_body(request)
        self._source: DirectBody | GatheredBody | SmallBody
        if isinstance(taken, DirectBody):
            self._source = taken
        else:
            length = request.content_length
            small = length is not None and length < BUFFER_SIZE
            pieces: AsyncIterator[bytes]
            if small and taken is None and length:
                pieces = _whole(request.content, length)
            else:
                pieces = taken or request.content.iter_any()
            self._source = SmallBody(pieces) if small else GatheredBody(pieces)
        self._chunks: AsyncGenerator[bytes | memoryview] = self._source.chunks()

    async def __aenter__(self) -> RequestBody:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._chunks.aclose()
        self._source.close()  # also when the chunks were never read (aclose skips them)

    def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes | memoryview]:
        try:
            async for chunk in self._chunks:
                yield chunk
        except (
            aiohttp.ClientPayloadError,
            aiohttp.http_exceptions.HttpProcessingError,
            asyncio.IncompleteReadError,
        ) as exc:
            raise IncompleteBodyError(str(exc)) from exc

    def done(self, chunk: bytes | memoryview) -> None:
        self._source.done(chunk)


async def _whole(content: aiohttp.StreamReader, length: int) -> AsyncGenerator[bytes]:
    """A small body of known length as one chunk, read at once (a blob pushed in one
    request, a manifest): fewer steps per piece than joining them as they come."""
    yield await content.readexactly(length)


async def read_limited(request: web.Request, limit: int, error: errors.ErrorCode) -> bytes:
    """Read a whole (small) body, refusing more than ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise errors.RegistryError(
            error, f"body of {declared} bytes exceeds the limit of {limit} bytes"
        )
    parts: list[bytes] = []
    total = 0
    async with RequestBody(request) as body:
        async for chunk in body:
            total += len(chunk)
            if total > limit:
                raise errors.RegistryError(error, f"body exceeds the limit of {limit} bytes")
            parts.append(bytes(chunk))  # a view would be reused; bytes(bytes) is no copy
            body.done(chunk)
    return b"".join(parts)
