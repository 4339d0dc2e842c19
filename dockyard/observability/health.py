"""Health checks as registry:2 runs them: each probe periodic, with an optional threshold.

A check starts healthy and is first probed one ``interval`` after start (Distribution's
ticker). With ``threshold`` N > 0 it fails once N probes in a row have failed; with 0, a
single failed probe fails it; one success heals it. :class:`HealthChecks` holds them all:
``failures()`` is what ``/debug/health`` shows (check name → error), and
:func:`unavailable_middleware` answers 503 UNAVAILABLE on the registry port while any
check fails, as registry:2's ``health.Handler`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.oci import errors

log = logging.getLogger("dockyard.health")
Probe = Callable[[], Awaitable[None]]  # raises (any exception) when unhealthy


@dataclass
class Check:
    name: str
    probe: Probe
    interval: float
    threshold: int = 0
    failed_in_a_row: int = field(default=0, init=False)
    error: str | None = field(default=None, init=False)

    @property
    def failing(self) -> bool:
        return self.error is not None and self.failed_in_a_row >= self.threshold

    def update(self, error: str | None) -> None:
        if error is None:
            self.failed_in_a_row = 0
        elif self.failed_in_a_row < self.threshold:
            self.failed_in_a_row += 1
        self.error = error


class HealthChecks:
    def __init__(self, checks: list[Check]) -> None:
        names = [check.name for check in checks]
        if len(set(names)) != len(names):
            raise ValueError("two health checks have the same name")
        self.checks = checks
        self.failing = False  # any check failing: read on every request, so kept ready

    def failures(self) -> dict[str, str]:
        return {c.name: c.error for c in self.checks if c.failing and c.error is not None}

    async def probe(self, check: Check) -> None:
        """Run ``check`` once and record its result."""
        try:
            await check.probe()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            if not check.error:
                log.warning("health check %s failed: %s", check.name, message)
            check.update(message)
        else:
            if check.error:
                log.info("health check %s passes again", check.name)
            check.update(None)
        self.failing = any(c.failing for c in self.checks)

    async def _repeat(self, check: Check) -> None:
        while True:
            await asyncio.sleep(check.interval)
            await self.probe(check)

    async def running(self, _app: web.Application) -> AsyncIterator[None]:
        """An aiohttp cleanup context that probes every check while the app runs."""
        tasks = [asyncio.create_task(self._repeat(check)) for check in self.checks]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def file_probe(path: str) -> Probe:
    """Fails while ``path`` exists: a file that takes the replica out of rotation."""
    absolute = os.path.abspath(path)

    async def probe() -> None:
        try:
            os.stat(absolute)
        except FileNotFoundError:
            return
        raise RuntimeError("file exists")

    return probe


def tcp_probe(addr: str, timeout: float | None) -> Probe:
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")

    async def probe() -> None:
        try:
            async with asyncio.timeout(timeout):
                _reader, writer = await asyncio.open_connection(host, int(port))
        except (OSError, TimeoutError) as exc:
            raise RuntimeError(f"{addr}: connection failed: {exc or 'timeout'}") from None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    return probe


def http_probe(
    uri: str, status: int, timeout: float | None, headers: dict[str, list[str]]
) -> Probe:
    """A ``HEAD`` of ``uri`` must answer ``status``."""
    import aiohttp

    sent = [(name, value) for name, values in headers.items() for value in values]

    async def probe() -> None:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=client_timeout) as session,
                session.head(uri, headers=sent, allow_redirects=False) as response,
            ):
                got = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RuntimeError(f"{uri}: error while checking: {exc or 'timeout'}") from None
        if got != status:
            raise RuntimeError(f"{uri}: downstream service returned unexpected status: {got}")

    return probe


UNAVAILABLE_DETAIL = "health check failed: please see /debug/health"


def unavailable_middleware(checks: HealthChecks) -> Middleware:
    body = errors.RegistryError(errors.UNAVAILABLE, detail=UNAVAILABLE_DETAIL).json_bytes()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if checks.failing:
            return web.Response(
                status=503,
                body=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        return await handler(request)

    return middleware
