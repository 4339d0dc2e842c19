"""The API's routes as data: one table feeds the dispatcher and the API coverage docs.

Repository names contain slashes, so the table is matched against the path below the
prefix with anchored regexes, in order (upload routes before the blob route, whose digest
segment would otherwise swallow ``uploads``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from dockyard.api.context import Call

Handler = Callable[["web.Request", "Call"], Awaitable["web.StreamResponse"]]


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    handlers: dict[str, Handler]
    summary: str


def route(name: str, pattern: str, summary: str, **handlers: Handler) -> Route:
    methods = {method.upper(): handler for method, handler in handlers.items()}
    if "GET" in methods and "HEAD" not in methods:
        methods["HEAD"] = methods["GET"]
    return Route(name, re.compile(pattern), methods, summary)


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


def match(routes: list[Route], path: str) -> Match | None:
    for candidate in routes:
        found = candidate.pattern.fullmatch(path)
        if found is not None:
            return Match(candidate, found.groupdict())
    return None
