"""Wiring: configuration → storage driver, metadata store, registry service, web server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

import uvloop
from aiohttp import web

from dockyard.api.access_log import AccessLogger
from dockyard.api.app import build_app
from dockyard.api.context import UrlBuilder
from dockyard.api.forwarded import ProxyPolicy, parse_networks
from dockyard.config import Config, format_duration
from dockyard.database import in_process_database, prepare_schema, shown_url
from dockyard.gc.review import HeadKeepsBlobs
from dockyard.gc.schedule import ScheduledCollection
from dockyard.metadata.engine import create_engine, migrate
from dockyard.metadata.generation import WriteGeneration
from dockyard.metadata.leases import Leases
from dockyard.metadata.store import MetadataStore
from dockyard.oci.manifest import UrlPolicy
from dockyard.registry.service import Registry, default_use_cases
from dockyard.registry.settings import RegistrySettings
from dockyard.security import Security, make_login_limiter, make_security, make_ssl_context
from dockyard.startup import check_storage_root, listen
from dockyard.storage.driver import StorageDriver
from dockyard.storage.factory import create_driver
from dockyard.supervisor import Supervisor

log = logging.getLogger("dockyard")


def make_storage(config: Config) -> StorageDriver:
    return create_driver(config.storage.driver, config.storage.parameters)


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


async def open_registry(config: Config, migrate_first: bool = False) -> Registry:
    url = config.database_url()
    engine = create_engine(url)
    if migrate_first:
        await migrate(engine)
    metadata = MetadataStore(engine, WriteGeneration.for_database(url))
    storage, settings = make_storage(config), make_settings(config)
    use_cases = default_use_cases(metadata, storage, settings)
    # A HEAD that finds a blob keeps it through the review delay (docs/garbage-collection.md).
    keeping = HeadKeepsBlobs(use_cases.blobs, metadata, config.gc.reviewafter)
    return Registry(metadata, storage, settings, use_cases.wrapped(blobs=keeping))


def gc_job(config: Config, registry: Registry) -> ScheduledCollection:
    """The scheduled collection of ``gc.enabled``. Jobs that must run before each
    collection, under its lease, go in ``before`` (retention rules); what observes each
    run's report goes in ``observers`` (metrics)."""
    return ScheduledCollection(
        registry.metadata,
        registry.storage,
        Leases(registry.metadata.engine),
        interval=config.gc.interval,
        review_after=config.gc.reviewafter,
        delete_untagged=config.gc.deleteuntagged,
    )


def make_web_app(
    config: Config,
    registry: Registry,
    maintenance: bool = True,
    security: Security | None = None,
) -> web.Application:
    """The application; ``maintenance`` adds the background upload purger (one worker)."""
    urls = UrlBuilder(
        prefix=config.http.prefix, host=config.http.host, relative=config.http.relativeurls
    )
    proxies = ProxyPolicy(parse_networks(config.security.trustedproxies))
    security = security or make_security(config)
    app = build_app(
        registry,
        urls,
        config.http.headers,
        access=security.controller,
        proxies=proxies,
        token_service=security.token_service,
    )
    purging = config.storage.maintenance.uploadpurging
    read_only = config.storage.maintenance.readonly.enabled
    if maintenance and purging.enabled and not read_only:
        app.cleanup_ctx.append(
            _upload_purger(registry, purging.age, purging.interval, purging.dryrun)
        )
    if maintenance and config.gc.enabled and not read_only:
        app.cleanup_ctx.append(_background(gc_job(config, registry)))
    return app


def _background(job: ScheduledCollection) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(_app: web.Application) -> AsyncIterator[None]:
        log.info(
            "garbage collection running in this worker (pid %d): every %s, review delay %s%s",
            os.getpid(),
            format_duration(job.interval),
            format_duration(job.review_after),
            ", deleting untagged manifests" if job.delete_untagged else "",
        )
        task = asyncio.create_task(job.run_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def _upload_purger(
    registry: Registry, age: timedelta, interval: timedelta, dry_run: bool
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def purge_forever() -> None:
        while True:
            try:
                purged = await registry.uploads.purge(age, dry_run)
                if purged:
                    verb = "found (dry run)" if dry_run else "deleted"
                    log.info("upload purge: %d stale uploads %s", len(purged), verb)
            except Exception:
                log.exception("upload purge failed")
            await asyncio.sleep(max(interval.total_seconds(), 1.0))

    async def context(_app: web.Application) -> AsyncIterator[None]:
        log.info(
            "upload purger running in this worker (pid %d): uploads older than %s, every %s%s",
            os.getpid(),
            format_duration(age),
            format_duration(interval),
            " (dry run)" if dry_run else "",
        )
        task = asyncio.create_task(purge_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


@dataclass(frozen=True)
class Prepared:
    """What ``serve`` makes once, before forking, for every worker: the access control
    (with the failed-login counts the workers share) and the TLS context. Both are loaded
    once, so a bad file stops startup, and what loading logs (htpasswd entries that are not
    bcrypt) is logged once per serve, not once per worker."""

    security: Security
    ssl_context: ssl.SSLContext | None


def prepare(config: Config) -> Prepared:
    """Build the shared parts; raises ConfigError when a file the config names is unusable."""
    return Prepared(make_security(config, make_login_limiter(config)), make_ssl_context(config))


@dataclass(frozen=True)
class _Worker:
    """One serving process: the shared socket and parts; ``maintenance`` runs the upload
    purger here; ``migrate_first`` creates the schema of an in-memory database here."""

    config: Config
    sock: socket.socket
    shared: Prepared
    maintenance: bool
    migrate_first: bool = False

    def run(self) -> None:
        uvloop.install()
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        config = self.config
        registry = await open_registry(config, migrate_first=self.migrate_first)
        app = make_web_app(config, registry, self.maintenance, self.shared.security)
        access_log = None if config.log.accesslog.disabled else logging.getLogger("dockyard.access")
        runner = web.AppRunner(
            app, access_log_class=AccessLogger, access_log=access_log, handle_signals=False
        )
        await runner.setup()
        site = web.SockSite(runner, self.sock, ssl_context=self.shared.ssl_context)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await runner.cleanup()


def serve(config: Config, workers: int) -> int:
    """Check, bind, migrate, and serve; returns the exit status.

    ``workers`` forked processes share the listening socket under a :class:`Supervisor`
    that restarts the ones that die; worker 0 runs the upload purger. Inmemory storage
    lives in one process, so this process serves it itself (and creates the schema of an
    in-memory database there). Raises StartupError or ConfigError before any change
    when the port, the storage directory or a file the config names is unusable.
    """
    shared = prepare(config)  # before binding and forking: bad files stop us here
    # An in-memory database lives in the process that serves it: its schema is made there,
    # and no worker can be forked to share it (nor can inmemory storage be shared).
    embedded = in_process_database(config.database_url())
    in_process = config.storage.in_process or embedded
    if config.storage.local_root is not None:
        check_storage_root(config.storage.local_root)
    host, port = config.http.bind()
    sock = listen(host, port)  # before migrating: a port in use changes nothing
    if in_process:
        workers = 1
    if not embedded:
        asyncio.run(prepare_database(config))
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
        _Worker(config, sock, shared, maintenance=True, migrate_first=embedded).run()
        return 0

    def run_worker(index: int) -> None:
        _Worker(config, sock, shared, maintenance=index == 0).run()

    return Supervisor(workers, run_worker).run()
