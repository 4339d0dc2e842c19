"""The HTTP-01 responder: answers the CA's ``GET /.well-known/acme-challenge/<token>``
from the cache file, so that whichever worker the CA reaches knows the answer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from dockyard.letsencrypt.cache import CacheFile

CHALLENGE_PATH: Final = "/.well-known/acme-challenge/{token}"
ELSEWHERE: Final = "This port answers ACME HTTP-01 challenges only; the registry is on HTTPS.\n"


def responder_app(cache: CacheFile) -> web.Application:
    async def challenge(request: web.Request) -> web.Response:
        contents = await asyncio.to_thread(cache.read)
        answer = contents.challenges.get(request.match_info["token"])
        if answer is None:
            return web.Response(status=404, text="no such challenge\n")
        return web.Response(text=answer, content_type="application/octet-stream")

    async def elsewhere(_request: web.Request) -> web.Response:
        return web.Response(status=404, text=ELSEWHERE)

    app = web.Application()
    app.router.add_get(CHALLENGE_PATH, challenge)
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    return app


@contextlib.asynccontextmanager
async def answering(
    cache: CacheFile, sock: socket.socket, context: ssl.SSLContext | None = None
) -> AsyncIterator[None]:
    """Serve the responder on (a duplicate of) the bound ``sock`` while the block runs;
    the original stays open for the processes that serve it later. With ``context``
    (TLS-ALPN-01, answered by the context's handshake), over TLS."""
    runner = web.AppRunner(responder_app(cache), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.SockSite(runner, sock.dup(), ssl_context=context).start()
        yield
    finally:
        await runner.cleanup()
