"""A real webhook receiver for the tests: an aiohttp server on 127.0.0.1 that keeps what
it is sent, and can answer with an error, or be stopped and started again on its port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.e2e.server import free_port

WAIT = 20.0


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(json.loads(self.body)["events"])

    @property
    def event(self) -> dict[str, Any]:
        (only,) = self.events
        return only


@dataclass
class Receiver:
    """POSTs to ``url`` are kept in ``received`` (when answered 2xx) and all counted in
    ``attempts``; ``status`` is the answer."""

    port: int = field(default_factory=free_port)
    status: int = 200
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    _runner: web.AppRunner | None = None
    _posted: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self._take)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        self._posted.set()
        if 200 <= self.status < 300:
            self.received.append(Received(dict(request.headers), body))
        return web.Response(status=self.status)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r.event for r in self.received]

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` events, once they came (within :data:`WAIT` seconds: a guard
        against hanging, not a timing check)."""
        await self.wait_until(lambda: len(self.received) >= count, f"{count} events")
        return self.events[:count]

    async def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not condition():
                    self._posted.clear()
                    await self._posted.wait()
        except TimeoutError:
            got = [(e["action"], e["target"]) for e in self.events]
            raise AssertionError(f"still waiting for {what}; got {got}") from None
