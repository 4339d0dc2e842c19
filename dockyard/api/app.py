"""Builds the aiohttp application around a registry service."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.context import UrlBuilder
from dockyard.api.dispatch import Dispatcher
from dockyard.api.table import ROUTES
from dockyard.registry.service import Registry

REGISTRY_KEY = web.AppKey("registry", Registry)


def build_app(
    registry: Registry,
    urls: UrlBuilder | None = None,
    extra_headers: dict[str, list[str]] | None = None,
) -> web.Application:
    urls = urls or UrlBuilder()
    app = web.Application(client_max_size=1024**2)
    app[REGISTRY_KEY] = registry
    dispatcher = Dispatcher(registry, urls, ROUTES)
    app.router.add_route("*", f"{urls.prefix}/v2", dispatcher.handle)
    app.router.add_route("*", f"{urls.prefix}/v2/{{tail:.*}}", dispatcher.handle)

    if extra_headers:
        headers = {name: ", ".join(values) for name, values in extra_headers.items()}

        async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
            for name, value in headers.items():
                response.headers.setdefault(name, value)

        app.on_response_prepare.append(add_headers)

    async def close_registry(_app: web.Application) -> None:
        await registry.close()

    app.on_cleanup.append(close_registry)
    return app
