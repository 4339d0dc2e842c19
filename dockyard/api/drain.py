"""Stopping a worker gently: the requests in flight finish (``http.draintimeout``).

aiohttp's own graceful stop first marks every connection closing and only then waits for
the handlers, but a connection marked closing drops the rest of a request body, so an
upload in the middle of its body would wait for bytes that never come and be cut off at
the timeout. The drain here comes first: stop accepting, close each connection as soon
as it is between requests, and wait until none is left or the time is up. aiohttp's
cleanup then deals with whatever remains.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

#: how often the open connections are looked at while draining
POLL_SECONDS = 0.05
#: aiohttp's shutdown timeout after the drain: what is still running is cancelled after
#: this long (a timeout of 0 would mean no limit to aiohttp)
CUT_OFF_SECONDS = 0.1


def busy(connection: RequestHandler) -> bool:
    """Whether a request is being served on ``connection`` (aiohttp keeps no public flag
    for it; without the attribute every connection counts as idle, and the stop is
    aiohttp's own)."""
    return bool(getattr(connection, "_request_in_progress", False))


async def drain(runner: web.BaseRunner, seconds: float) -> None:
    """Stop accepting connections, then close each one once it has no request in progress,
    until none is open or ``seconds`` have passed."""
    for site in list(runner.sites):
        await site.stop()
    server = runner.server
    if server is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while server.connections and loop.time() < deadline:
        for connection in server.connections:
            if not busy(connection):
                connection.close()
        await asyncio.sleep(POLL_SECONDS)
