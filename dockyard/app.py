"""Wiring: configuration → storage driver, metadata store, registry service, web server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import re
import signal
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import uvloop
from aiohttp import web

from dockyard.allocator import tune_malloc
from dockyard.api.access_log import AccessLogger
from dockyard.api.app import build_app
from dockyard.api.context import UrlBuilder
from dockyard.api.drain import CUT_OFF_SECONDS, drain
from dockyard.api.forwarded import ProxyPolicy, parse_networks
from dockyard.config import Config, format_duration
from dockyard.config.proxy import expiry_rules
from dockyard.config.retention import retention_policy
from dockyard.database import in_process_database, prepare_schema, shown_url
from dockyard.gc.report import GcReport
from dockyard.gc.schedule import ScheduledCollection
from dockyard.gc.sessions import PushSessions
from dockyard.metadata.engine import PoolSettings, create_engine, migrate
from dockyard.metadata.failed_logins import DatabaseFailures
from dockyard.metadata.generation import NotifiedGeneration, WriteGeneration
from dockyard.metadata.invalidation import WriteListener
from dockyard.metadata.leases import Leases
from dockyard.metadata.store import MetadataStore
from dockyard.monitoring import (
    MonitoringPlan,
    alive,
    attach_monitoring,
    debug_app,
    health_checks,
    measured_registry,
)
from dockyard.monitoring import middlewares as monitoring_middlewares
from dockyard.notify.observer import NotificationObserver
from dockyard.notify.recorder import GC_ACTOR, RETENTION_ACTOR
from dockyard.notify_setup import Notifications, job_recording, with_notifications
from dockyard.observability.health import HealthChecks
from dockyard.oci.manifest import UrlPolicy
from dockyard.proxy.wrappers import StaleCounter, proxied
from dockyard.proxy_setup import proxy_routes
from dockyard.registry.blob_mover import BlobMover, grace_after
from dockyard.registry.protocols import UseCases
from dockyard.registry.service import Registry, default_use_cases
from dockyard.registry.settings import RegistrySettings
from dockyard.replication_setup import with_replication
from dockyard.retention.apply import scheduled_retention
from dockyard.retention.immutable import with_immutable_tags
from dockyard.security import Security, make_login_limiter, make_security, make_ssl_context
from dockyard.startup import check_storage_root, listen
from dockyard.storage.deferred import DeferredCopies
from dockyard.storage_setup import make_storage
from dockyard.supervisor import RestartPolicy, Supervisor

if TYPE_CHECKING:
    from dockyard.letsencrypt_setup import LetsEncrypt

log = logging.getLogger("dockyard")


def make_settings(config: Config) -> RegistrySettings:
    return RegistrySettings(
        delete_enabled=config.storage.delete.enabled,
        read_only=config.storage.maintenance.readonly.enabled,
        manifest_max_bytes=config.limits.manifestmaxbytes,
        url_policy=_url_policy(config),
        catalog_max_entries=config.catalog.maxentries,
    )


def _url_policy(config: Config) -> UrlPolicy:
    """Foreign-layer URLs, as registry:2 judges them: with validation on, only URLs that
    ``allow`` matches and ``deny`` does not (an empty ``allow`` admits none)."""
    if config.validation.disabled:
        return UrlPolicy()
    urls = config.validation.manifests.urls
    return UrlPolicy(
        allow=tuple(re.compile(p) for p in urls.allow),
        deny=tuple(re.compile(p) for p in urls.deny),
    )


async def prepare_database(config: Config) -> None:
    """Before any worker serves: migrate the schema once, or check that it is the code's
    (``database.migrate``); raises SchemaError, naming the command to run."""
    await prepare_schema(config)


def pool_settings(config: Config) -> PoolSettings:
    pool = config.database.pool
    return PoolSettings(
        size=pool.size,
        overflow=pool.overflow,
        timeout=pool.timeout.total_seconds(),
        recycle=pool.recycle.total_seconds(),
    )


async def open_registry(config: Config, migrate_first: bool = False) -> Registry:
    url = config.database_url()
    engine = create_engine(url, pool_settings(config))
    if migrate_first:
        await migrate(engine)
    generation = WriteGeneration.for_database(url, config.database.readcache)
    metadata = MetadataStore(engine, generation)
    storage, settings = make_storage(config), make_settings(config)
    policy = config.immutabletags.policy()
    routes = proxy_routes(config.proxy) if config.proxy.enabled else None
    sessions = PushSessions(metadata, config.gc.reviewafter)

    def protect(use_cases: UseCases) -> UseCases:
        # The pull-through cache sits right on the plain use cases (docs/mirror.md).
        if routes is not None:
            use_cases = proxied(
                use_cases,
                routes,
                settings,
                Leases(engine),
                stale_counter(config),
                storage,
            )
        # A HEAD that finds a blob keeps it through the review delay, and what a push
        # wanted stays while it goes on (docs/garbage-collection.md); tags that rules
        # protect cannot move.
        use_cases = use_cases.wrapped(
            blobs=sessions.blobs(use_cases.blobs),
            uploads=sessions.uploads(use_cases.uploads),
            manifests=sessions.manifests(use_cases.manifests),
        )
        return with_immutable_tags(use_cases, metadata, policy)

    if config.http.debug.metrics:
        registry = measured_registry(engine, metadata, storage, settings, protect)
    else:
        registry = Registry(
            metadata, storage, settings, protect(default_use_cases(metadata, storage, settings))
        )
    registry.proxy = routes
    registry.on_close.append(sessions.close)
    return registry


def stale_counter(config: Config) -> StaleCounter:
    """What counts a stale answer: the metric when metrics are on (imported only then)."""
    if not config.http.debug.metrics:
        return lambda upstream, kind: None
    from dockyard.observability.metrics import PROXY_STALE

    return lambda upstream, kind: PROXY_STALE.labels(upstream=upstream, kind=kind).inc()


@contextlib.asynccontextmanager
async def shared_across_replicas(registry: Registry, security: Security) -> AsyncIterator[None]:
    """On PostgreSQL, what one worker shares with every replica through the database: the
    read caches' invalidation (a listener, while the worker runs) and the failed-login
    counts. Nothing to do on SQLite (one host: shared memory and a file)."""
    engine = registry.metadata.engine
    generation = registry.metadata.generation
    if engine.dialect.name != "postgresql":
        yield
        return
    if security.limiter is not None:
        security.limiter.count_in(DatabaseFailures(engine))  # type: ignore[arg-type]
    if not isinstance(generation, NotifiedGeneration):
        yield
        return
    listener = WriteListener(engine, generation)  # type: ignore[arg-type]
    await listener.start()
    try:
        yield
    finally:
        await listener.stop()


def _notification_observer(config: Config) -> NotificationObserver | None:
    """The metrics' counter of notification deliveries, when metrics are on (imported
    only then: the metrics library must not load before ``serve`` names its directory)."""
    if not config.http.debug.metrics:
        return None
    from dockyard.observability import feeds

    feeds.endpoints_configured([e.name for e in config.notifications.endpoints if not e.disabled])
    return feeds.NotificationCounter()


def gc_job(
    config: Config, registry: Registry, notifications: Notifications | None = None
) -> ScheduledCollection:
    """The scheduled collection of ``gc.enabled``. Jobs that must run before each
    collection, under its lease, go in ``before`` (retention rules); what observes each
    run's report goes in ``observers`` (metrics)."""
    job = ScheduledCollection(
        registry.metadata,
        registry.storage,
        Leases(registry.metadata.engine),
        interval=config.gc.interval,
        review_after=config.gc.reviewafter,
        delete_untagged=config.gc.deleteuntagged,
    )
    policy = retention_policy(config.retention, config.immutabletags, expiry_rules(config.proxy))
    count = config.http.debug.metrics

    async def retention() -> None:
        with job_recording(notifications, RETENTION_ACTOR):
            report = await scheduled_retention(registry.metadata, policy)
        if count and report is not None:
            from dockyard.observability import feeds

            feeds.retention_finished(report.deleted_tags)

    def counted(report: GcReport) -> None:
        from dockyard.observability import feeds

        feeds.gc_finished(report.manifests_removed, report.blobs_removed, report.bytes_freed)

    job.before.append(retention)
    if count:
        job.observers.append(counted)
    job.around = lambda: job_recording(notifications, GC_ACTOR)
    return job


def make_web_app(
    config: Config,
    registry: Registry,
    maintenance: bool = True,
    security: Security | None = None,
    checks: HealthChecks | None = None,
) -> web.Application:
    """The application; ``maintenance`` adds the background upload purger (one worker).
    ``checks``, the health checks, run while the application does."""
    urls = UrlBuilder(
        prefix=config.http.prefix, host=config.http.host, relative=config.http.relativeurls
    )
    proxies = ProxyPolicy(parse_networks(config.security.trustedproxies))
    security = security or make_security(config)
    replication = with_replication(config, registry)
    notifications = with_notifications(config, registry, _notification_observer(config))
    app = build_app(
        registry,
        urls,
        config.http.headers,
        access=security.controller,
        proxies=proxies,
        token_service=security.token_service,
        outer_middlewares=monitoring_middlewares(config, proxies, checks),
        root=alive,
    )
    if notifications is not None:
        app.cleanup_ctx.append(notifications.deliver)
    if replication is not None:
        app.cleanup_ctx.append(replication.run)
    attach_monitoring(app, config, checks)
    purging = config.storage.maintenance.uploadpurging
    read_only = config.storage.maintenance.readonly.enabled
    if maintenance and purging.enabled and not read_only:
        app.cleanup_ctx.append(
            _upload_purger(registry, purging.age, purging.interval, purging.dryrun)
        )
    if maintenance and config.gc.enabled and not read_only:
        app.cleanup_ctx.append(_background(gc_job(config, registry, notifications)))
    if registry.storage.capability(DeferredCopies) is not None and not read_only:
        app.cleanup_ctx.append(_blob_mover(config, registry))
    return app


def _blob_mover(
    config: Config, registry: Registry
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The mover of deferred copies, in every worker (one at a time holds its lease): a
    deferred commit wakes its own worker's at once."""
    mover = BlobMover(
        registry.metadata,
        registry.storage,
        Leases(registry.metadata.engine),
        grace_after(config.storage.redirect.expiry),
    )

    return _while_serving(mover.run_forever)


def _while_serving(
    job: Callable[[], Coroutine[Any, Any, None]], started: Callable[[], None] = lambda: None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An application context running ``job`` as a task while the application runs
    (``started`` is called first, e.g. to log it)."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        started()
        task = asyncio.create_task(job())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def _background(job: ScheduledCollection) -> Callable[[web.Application], AsyncIterator[None]]:
    def started() -> None:
        log.info(
            "garbage collection running in this worker (pid %d): every %s, review delay %s%s",
            os.getpid(),
            format_duration(job.interval),
            format_duration(job.review_after),
            ", deleting untagged manifests" if job.delete_untagged else "",
        )

    return _while_serving(job.run_forever, started)


def _upload_purger(
    registry: Registry, age: timedelta, interval: timedelta, dry_run: bool
) -> Callable[[web.Application], AsyncIterator[None]]:
    leases = Leases(registry.metadata.engine)

    async def purge_once() -> None:
        async with leases.hold("upload-purge") as held:
            if not held:
                log.info("upload purge: another worker or replica is purging; skipped")
                return
            purged = await registry.uploads.purge(age, dry_run)
            if purged:
                verb = "found (dry run)" if dry_run else "deleted"
                log.info("upload purge: %d stale uploads %s", len(purged), verb)

    async def purge_forever() -> None:
        while True:
            try:
                await purge_once()
            except Exception:
                log.exception("upload purge failed")
            await asyncio.sleep(max(interval.total_seconds(), 1.0))

    def started() -> None:
        log.info(
            "upload purger running in this worker (pid %d): uploads older than %s, every %s%s",
            os.getpid(),
            format_duration(age),
            format_duration(interval),
            " (dry run)" if dry_run else "",
        )

    return _while_serving(purge_forever, started)


@dataclass(frozen=True)
class Prepared:
    """What ``serve`` makes once, before forking, for every worker: the access control
    (with the failed-login counts the workers share) and the TLS context. Both are loaded
    once, so a bad file stops startup, and what loading logs (htpasswd entries that are not
    bcrypt) is logged once per serve, not once per worker."""

    security: Security
    ssl_context: ssl.SSLContext | None
    letsencrypt: LetsEncrypt | None = None


def prepare(config: Config) -> Prepared:
    """Build the shared parts; raises ConfigError when a file the config names is unusable
    (StartupError when the ACME challenge port cannot be bound)."""
    security = make_security(config, make_login_limiter(config))
    letsencrypt = None
    if config.http.tls.letsencrypt.enabled:
        from dockyard.letsencrypt_setup import prepare_letsencrypt

        letsencrypt = prepare_letsencrypt(config)
    return Prepared(security, make_ssl_context(config), letsencrypt)


@dataclass(frozen=True)
class _Worker:
    """One serving process: the shared socket and parts; ``maintenance`` runs the upload
    purger here; ``migrate_first`` creates the schema of an in-memory database here."""

    config: Config
    sock: socket.socket
    shared: Prepared
    maintenance: bool
    migrate_first: bool = False
    debug_socket: socket.socket | None = None  # the debug server's, on one worker

    def run(self) -> None:
        uvloop.install()
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        config = self.config
        registry = await open_registry(config, migrate_first=self.migrate_first)
        async with shared_across_replicas(registry, self.shared.security):
            await self._serve_app(config, registry)

    async def _serve_app(self, config: Config, registry: Registry) -> None:
        checks = health_checks(config, registry)
        app = make_web_app(config, registry, self.maintenance, self.shared.security, checks)
        access_log = None if config.log.accesslog.disabled else logging.getLogger("dockyard.access")
        runner = web.AppRunner(
            app,
            access_log_class=AccessLogger,
            access_log=access_log,
            handle_signals=False,
            shutdown_timeout=CUT_OFF_SECONDS,
        )
        await runner.setup()
        site = web.SockSite(runner, self.sock, ssl_context=self.shared.ssl_context)
        await site.start()
        debug_runner = None
        if self.debug_socket is not None:
            debug_runner = web.AppRunner(debug_app(config, checks), handle_signals=False)
            await debug_runner.setup()
            await web.SockSite(debug_runner, self.debug_socket).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with self._letsencrypt(registry):
            await stop.wait()
        await drain(runner, config.http.drain_timeout().total_seconds())
        if debug_runner is not None:
            await debug_runner.cleanup()
        await runner.cleanup()

    def _letsencrypt(self, registry: Registry) -> contextlib.AbstractAsyncContextManager[None]:
        """With ``http.tls.letsencrypt``: the challenge responder and certificate reloads
        (the renewal too, in the maintenance worker)."""
        letsencrypt, context = self.shared.letsencrypt, self.shared.ssl_context
        if letsencrypt is None or context is None:
            return contextlib.nullcontext()
        from dockyard.letsencrypt_setup import letsencrypt_in_worker

        engine = registry.metadata.engine
        return letsencrypt_in_worker(letsencrypt, context, engine, renew=self.maintenance)


def warm_up(config: Config, shared: Prepared) -> None:
    """Run once in the parent, before forking, what each worker runs as it starts: open
    the registry and build its application, then drop both.

    The first calls of a function write to it (Python specialises its code objects as they
    warm up) and to what it touches. Done in each worker only, those writes copy pages
    the workers would otherwise share with the parent; done here first, fewer are copied
    (about 2 MiB less PSS for a default tree, docs/performance.md#idle-footprint).

    With metrics on too (the debug server's application and the scrape's module
    included): the metric children made here stay in the parent's value files at 0 (each
    worker writes its own files from its first update on), and what the warm-up measured
    is dropped, not flushed by every worker (82.8 -> 77.6 MiB PSS for a default tree)."""

    async def warm() -> None:
        registry = await open_registry(config)
        try:
            checks = health_checks(config, registry)
            make_web_app(config, registry, False, shared.security, checks)
            if config.http.debug.enabled:
                debug_app(config, checks)
        finally:
            await registry.metadata.engine.dispose()

    asyncio.run(warm())
    if config.http.debug.metrics:
        from dockyard.observability import batch

        importlib.import_module("prometheus_client.multiprocess")  # what a scrape reads with
        batch.drop_pending()


def serve(config: Config, workers: int) -> int:
    """Check, bind, migrate, and serve; returns the exit status.

    ``workers`` forked processes share the listening socket under a :class:`Supervisor`
    that restarts the ones that die; worker 0 runs the upload purger. Inmemory storage
    lives in one process, so this process serves it itself (and creates the schema of an
    in-memory database there). Raises StartupError or ConfigError before any change
    when the port, the storage directory or a file the config names is unusable.
    """
    # First: the metrics' directory is named before anything imports the metrics library.
    monitor = MonitoringPlan.prepare(config)
    try:
        return _serve(config, workers, monitor)
    finally:
        monitor.close()


def _serve(config: Config, workers: int, monitor: MonitoringPlan) -> int:
    shared = prepare(config)  # before binding and forking: bad files stop us here
    tune_malloc()  # before forking: the workers inherit it
    # An in-memory database lives in the process that serves it: its schema is made there,
    # and no worker can be forked to share it (nor can inmemory storage be shared).
    embedded = in_process_database(config.database_url())
    in_process = config.storage.in_process or embedded
    if config.storage.local_root is not None:
        check_storage_root(config.storage.local_root)
    host, port = config.http.bind()
    sock = listen(host, port)  # before migrating: a port in use changes nothing
    if shared.letsencrypt is not None and shared.ssl_context is not None:
        from dockyard.letsencrypt_setup import start_letsencrypt

        start_letsencrypt(shared.letsencrypt, shared.ssl_context, sock)
    if in_process:
        workers = 1
    if not embedded:
        asyncio.run(prepare_database(config))
    if config.database_url().startswith("postgresql") and not config.http.secret:
        log.warning(
            "http.secret is not set: generated a random one. Replicas that share this "
            "database then count failed logins apart (each allows security.failedlogins."
            "limit); set the same http.secret on every replica"
        )
    log.info(
        "dockyard listening on %s:%d (%d worker%s, storage %s, database %s)",
        host,
        port,
        workers,
        "" if workers == 1 else "s",
        config.storage.driver,
        shown_url(config.database_url()),
    )
    if shared.ssl_context is not None:
        tls = config.http.tls
        clients = f", client certificates: {tls.clientauth or 'required'}" if tls.clientcas else ""
        log.info("TLS on: %s or newer%s", tls.minimumtls, clients)
    if in_process:
        held = "inmemory storage" if config.storage.in_process else "an in-memory database"
        log.info(
            "%s: served by 1 worker, this process, which holds the data "
            "(no worker is forked, and none is restarted)",
            held,
        )
        _Worker(
            config, sock, shared, True, migrate_first=embedded, debug_socket=monitor.debug_socket
        ).run()
        return 0

    def run_worker(index: int) -> None:
        debug = monitor.debug_socket if index == 0 else None
        _Worker(config, sock, shared, maintenance=index == 0, debug_socket=debug).run()

    config.storage.parameters.preload()
    warm_up(config, shared)
    gc.freeze()  # what the parent built stays out of the workers' collections: no copy-on-write
    # Workers get the drain, and a margin for closing their database and storage, before
    # the parent kills them.
    policy = RestartPolicy(stop_timeout=config.http.drain_timeout().total_seconds() + 10)
    return Supervisor(workers, run_worker, policy, on_exit=monitor.worker_died).run()
