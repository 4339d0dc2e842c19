"""What every handler receives besides the request: the service, the URL builder, the match."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from dockyard.api.direct_body import direct_body
from dockyard.auth.access import Access
from dockyard.oci import errors
from dockyard.registry.service import Registry
from dockyard.registry.uploads import Body, IncompleteBodyError


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


async def body_stream(request: web.Request) -> Body:
    """The request body in chunks; a body cut short raises IncompleteBodyError.

    A large plain-TCP body is received straight into reusable buffers (see
    :mod:`dockyard.api.direct_body`): each chunk is then valid only until the iterator
    has been advanced a few more times (``IN_FLIGHT + 1``)."""
    chunks = direct_body(request) or request.content.iter_any()
    try:
        async for chunk in chunks:
            yield chunk
    except (aiohttp.ClientPayloadError, aiohttp.http_exceptions.HttpProcessingError) as exc:
        raise IncompleteBodyError(str(exc)) from exc


async def read_limited(request: web.Request, limit: int, error: errors.ErrorCode) -> bytes:
    """Read a whole (small) body, refusing more than ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise errors.RegistryError(
            error, f"body of {declared} bytes exceeds the limit of {limit} bytes"
        )
    parts: list[bytes] = []
    total = 0
    async for chunk in body_stream(request):
        total += len(chunk)
        if total > limit:
            raise errors.RegistryError(error, f"body exceeds the limit of {limit} bytes")
        parts.append(bytes(chunk))  # a view would be reused; bytes(bytes) is no copy
    return b"".join(parts)
