"""``GET /dockyard/v1/usage`` and ``GET /dockyard/v1/usage/<name>``: storage usage."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.context import Call
from dockyard.api.listing import json_response


async def registry_usage(request: web.Request, call: Call) -> web.StreamResponse:
    return json_response(await call.registry.usage.registry(call.visible))


async def repository_usage(request: web.Request, call: Call) -> web.StreamResponse:
    return json_response(await call.registry.usage.repository(call.name))
