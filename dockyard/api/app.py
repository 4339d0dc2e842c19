"""Builds the aiohttp application around a registry service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.api.context import UrlBuilder
from dockyard.api.dispatch import Dispatcher
from dockyard.api.forwarded import ProxyPolicy, forwarded_middleware
from dockyard.api.front import add_unrouted, front
from dockyard.api.table import DOCKYARD_ROUTES, ROUTES
from dockyard.auth.controller import AccessController
from dockyard.registry.service import Registry

if TYPE_CHECKING:
    from dockyard.auth.issuer import TokenIssuer

REGISTRY_KEY = web.AppKey("registry", Registry)


def build_app(
    registry: Registry,
    urls: UrlBuilder | None = None,
    extra_headers: dict[str, list[str]] | None = None,
    access: AccessController | None = None,
    proxies: ProxyPolicy | None = None,
    token_service: tuple[str, TokenIssuer] | None = None,
    outer_middlewares: Sequence[Middleware] = (),
    root: Handler | None = None,
) -> web.Application:
    """The registry API. ``access`` decides who may do what (default: everyone everything);
    ``proxies`` names the reverse proxies whose ``X-Forwarded-*`` headers are believed;
    ``token_service`` is Dockyard's token endpoint (its path and issuer), if it runs one;
    ``outer_middlewares`` run around everything else (request ids, metrics, health), bound
    to each route's handler (:mod:`dockyard.api.front`); ``root`` answers ``GET /``."""
    urls = urls or UrlBuilder()
    middlewares = list(outer_middlewares)
    if proxies and proxies.trusted:
        middlewares.append(forwarded_middleware(proxies))
    bind = front(middlewares)
    app = web.Application(client_max_size=1024**2)
    app[REGISTRY_KEY] = registry
    dispatcher = Dispatcher(registry, urls, ROUTES, access)
    if token_service is not None:
        # Loaded only when Dockyard runs a token service (JWT and X.509 libraries).
        from dockyard.api.token import TokenEndpoint

        path, issuer = token_service
        app.router.add_route("*", path, bind(TokenEndpoint(issuer).handle))
    app.router.add_route("*", f"{urls.prefix}/v2", bind(dispatcher.handle))
    app.router.add_route("*", f"{urls.prefix}/v2/{{tail:.*}}", bind(dispatcher.handle))
    own = Dispatcher(registry, urls, DOCKYARD_ROUTES, access)
    app.router.add_route("*", f"{urls.prefix}/dockyard/v1/{{tail:.*}}", bind(own.handle))
    if root is not None:
        app.router.add_get("/", bind(root))
    add_unrouted(app, bind)

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
