"""Wiring of metrics, health checks, request ids and the debug server (``http.debug``,
``health``), kept out of ``app.py``.

``serve`` makes a :class:`MonitoringPlan` in the parent, before anything imports the
metrics library and before forking: the private directory of the workers' metric files
and the debug server's socket (served by worker 0, the maintenance worker). Each worker
then measures its own registry (:func:`measured_registry`) and runs its own health checks,
as each registry:2 process does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from sqlalchemy import text

from dockyard.api.forwarded import ProxyPolicy
from dockyard.api.request_id import request_id_middleware
from dockyard.config import Config
from dockyard.metadata.engine import Database
from dockyard.metadata.store import MetadataStore
from dockyard.observability.health import (
    Check,
    HealthChecks,
    file_probe,
    http_probe,
    tcp_probe,
    unavailable_middleware,
)
from dockyard.observability.multiprocess import prepare_directory, remove_directory, worker_died
from dockyard.registry.protocols import UseCases
from dockyard.registry.service import Registry, default_use_cases
from dockyard.registry.settings import RegistrySettings
from dockyard.startup import listen
from dockyard.storage.driver import StorageDriver

log = logging.getLogger("dockyard")


@dataclass
class MonitoringPlan:
    """What the parent makes once for every worker."""

    metrics_directory: str | None = None
    debug_socket: socket.socket | None = None
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def prepare(cls, config: Config) -> MonitoringPlan:
        """Raises StartupError when the debug address cannot be bound."""
        debug = config.http.debug
        sock = listen(*debug.bind(), key="http.debug.addr") if debug.enabled else None
        directory = prepare_directory() if debug.metrics else None
        if sock is not None:
            host, port = debug.bind()
            log.info(
                "debug server on %s:%d (health%s)",
                host,
                port,
                f", metrics at {debug.prometheus.path}, worker files in {directory}"
                if directory
                else "",
            )
        return cls(directory, sock)

    def worker_died(self, pid: int) -> None:
        if self.metrics_directory is not None:
            worker_died(pid)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.debug_socket is not None:
            self.debug_socket.close()
        if self.metrics_directory is not None:
            remove_directory(self.metrics_directory)


def measured_registry(
    engine: Database,
    metadata: MetadataStore,
    storage: StorageDriver,
    settings: RegistrySettings,
    wrap: Callable[[UseCases], UseCases] = lambda use_cases: use_cases,
) -> Registry:
    """A registry whose storage, database, uploads and caches feed the metrics; ``wrap``
    adds the wrappers that go inside the measured ones (immutable tags)."""
    from dockyard.observability.database_metrics import instrument
    from dockyard.observability.storage_metrics import MeasuredDriver
    from dockyard.observability.use_case_metrics import MeasuredUploads, count_cache_lookups

    instrument(engine)
    count_cache_lookups(metadata.tag_list_cache)
    measured = MeasuredDriver(storage)
    plain = default_use_cases(metadata, measured, settings)
    use_cases = wrap(plain.wrapped(uploads=MeasuredUploads(plain.uploads)))
    return Registry(metadata, measured, settings, use_cases)


def route_classifier(prefix: str) -> Callable[[str], str]:
    """The ``handler`` label of a path: its route's name, as Distribution spells it.

    Read from the path's last segments (``…/manifests/<ref>``, ``…/blobs/uploads/<id>``),
    not by matching the route table again: its lazy name patterns cost about 20 µs on a
    blob path, this about 1 µs. ``tests/test_monitoring.py`` checks that both agree.
    """
    api = prefix + "/v2"

    def classify(path: str) -> str:
        if not path.startswith(api):
            return "other"
        rest = path[len(api) :]
        if rest in ("", "/"):
            return "base"
        if rest == "/_catalog":
            return "catalog"
        parts = rest.rsplit("/", 3)
        if len(parts) < 3:
            return "other"
        if parts[-2:] == ["tags", "list"]:
            return "tags"
        if parts[-2] == "uploads" and parts[-3] == "blobs":
            return "blob_upload" if parts[-1] == "" else "blob_upload_chunk"
        if parts[-1] == "uploads" and parts[-2] == "blobs":
            return "blob_upload"
        return _LAST_SEGMENT_ROUTES.get(parts[-2], "other")

    return classify


_LAST_SEGMENT_ROUTES = {"manifests": "manifest", "blobs": "blob", "referrers": "referrers"}


def _seconds(value: Any) -> float | None:
    """A Go timeout: zero means none."""
    seconds = float(value.total_seconds())
    return seconds or None


def _database_probe(engine: Database, timeout: float | None) -> Callable[[], Any]:
    async def probe() -> None:
        async with asyncio.timeout(timeout), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return probe


def _storage_probe(storage: StorageDriver) -> Callable[[], Any]:
    async def probe() -> None:
        await storage.stat("/")  # any error fails; "/" missing is fine (the backend answered)

    return probe


def health_checks(config: Config, registry: Registry) -> HealthChecks | None:
    """The checks ``health`` configures, or None when there are none."""
    health = config.health
    checks: list[Check] = []
    driver = health.storagedriver
    if driver.enabled:
        checks.append(
            Check(
                f"storagedriver_{config.storage.driver}",
                _storage_probe(registry.storage),
                driver.interval.total_seconds(),
                driver.threshold,
            )
        )
    for item in health.file:
        checks.append(Check(item.file, file_probe(item.file), item.interval.total_seconds()))
    for http in health.http:
        probe = http_probe(http.uri, http.statuscode, _seconds(http.timeout), http.headers)
        checks.append(Check(http.uri, probe, http.interval.total_seconds(), http.threshold))
    for tcp in health.tcp:
        probe = tcp_probe(tcp.addr, _seconds(tcp.timeout))
        checks.append(Check(tcp.addr, probe, tcp.interval.total_seconds(), tcp.threshold))
    database = health.database
    if database.enabled:
        probe = _database_probe(registry.metadata.engine, _seconds(database.timeout))
        checks.append(
            Check("database", probe, database.interval.total_seconds(), database.threshold)
        )
    return HealthChecks(checks) if checks else None


def middlewares(
    config: Config, proxies: ProxyPolicy, checks: HealthChecks | None
) -> list[Middleware]:
    """The outermost middlewares of the registry port, in order: the request id, the HTTP
    metrics (when on), the 503 while a health check fails. ``build_app`` binds them to
    every route's handler (:mod:`dockyard.api.front`): aiohttp runs no chain of its own."""
    found: list[Middleware] = [request_id_middleware(proxies)]
    if config.http.debug.metrics:
        from dockyard.observability.http_metrics import metrics_middleware

        found.append(metrics_middleware(route_classifier(config.http.prefix)))
    if checks is not None:
        found.append(unavailable_middleware(checks))
    return found


async def alive(_request: web.Request) -> web.Response:
    """registry:2 answers ``GET /`` with an empty 200 (503 while a health check fails)."""
    return web.Response(headers={"Cache-Control": "no-cache"})


def attach_monitoring(app: web.Application, config: Config, checks: HealthChecks | None) -> None:
    """The health checks' schedule and the metrics' flushing, on ``app`` (``GET /`` is
    :func:`alive`, given to ``build_app``)."""
    if checks is not None:
        app.cleanup_ctx.append(checks.running)
    if config.http.debug.metrics:
        from dockyard.observability.batch import flushing

        app.cleanup_ctx.append(flushing)


def debug_app(config: Config, checks: HealthChecks | None) -> web.Application:
    from dockyard.observability.debug_server import build_debug_app

    debug = config.http.debug
    return build_debug_app(checks, debug.prometheus.path if debug.metrics else None)
