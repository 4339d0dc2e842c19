"""What every request of the registry port passes through before its handler (request id,
metrics, health's 503, the forwarded-header rewrite), bound to each route's handler when
the route is added instead of run as aiohttp middlewares.

With any middleware at all, aiohttp looks the chain up for every request (a cache keyed
by the handler and the applications) and runs a middleware of its own around it that
sets ``request.app`` (a few µs of a ``GET /v2/``, docs/performance.md). Bound here, the
same middleware functions run in the same order, outermost first, and aiohttp skips its
chain.
Paths no route takes reach :func:`unrouted`, bound like the others, so that their 404 and
405 pass through the same functions too (an ``X-Request-Id``, a count, the 503).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

Front = Callable[[Handler], Handler]
UNROUTED_PATH = "/{unrouted:.*}"


def front(middlewares: Sequence[Middleware]) -> Front:
    """What binds ``middlewares`` (new-style, the first outermost) around a handler."""
    chain = tuple(reversed(middlewares))

    def bind(handler: Handler) -> Handler:
        for middleware in chain:
            handler = functools.partial(middleware, handler=handler)
        return handler

    return bind


def add_unrouted(app: web.Application, bind: Front) -> None:
    """The last route: what aiohttp's router would answer for a path no other route
    takes (404, or 405 with ``Allow`` when a route takes the path with other methods)."""
    resource = app.router.add_resource(UNROUTED_PATH)

    async def unrouted(request: web.Request) -> web.StreamResponse:
        allowed: set[str] = set()
        for other in request.app.router.resources():
            if other is not resource:
                allowed |= (await other.resolve(request))[1]
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound()

    resource.add_route("*", bind(unrouted))
