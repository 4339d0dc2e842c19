"""Wiring: configuration → storage driver, metadata store, registry service, web server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import re
import signal
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import make_url

from dockyard.api.access_log import AccessLogger
from dockyard.api.app import build_app
from dockyard.api.context import UrlBuilder
from dockyard.api.forwarded import ProxyPolicy, parse_networks
from dockyard.auth.controller import AccessController, OpenAccess
from dockyard.auth.htpasswd import HtpasswdController, HtpasswdError, HtpasswdFile
from dockyard.auth.issuer import RulesTokenController, SigningKey, TokenIssuer
from dockyard.auth.keys import KeyProblem, TrustedKeys, load_certificates, load_jwks
from dockyard.auth.ratelimit import FailedLoginLimiter
from dockyard.auth.rules import AccessRules, Rule, RuleError
from dockyard.auth.token import ASYMMETRIC_ALGORITHMS, Realm, TokenController, TokenVerifier
from dockyard.config import AccessConfig, Config, ConfigError, TokenAuthConfig
from dockyard.importer import ImportReport, import_store
from dockyard.metadata.engine import create_engine, current_revision, migrate
from dockyard.metadata.generation import WriteGeneration
from dockyard.metadata.store import MetadataStore
from dockyard.oci.manifest import UrlPolicy
from dockyard.registry.service import Registry
from dockyard.registry.settings import RegistrySettings
from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.tls import TlsError, server_context

log = logging.getLogger("dockyard")


def make_storage(config: Config) -> StorageDriver:
    if config.storage.driver == "inmemory":
        return InMemoryDriver()
    return FilesystemDriver(Path(config.storage.filesystem.rootdirectory))


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
    """Create or upgrade the schema once, before any worker serves."""
    engine = create_engine(config.database_url())
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def open_registry(config: Config, migrate_first: bool = False) -> Registry:
    url = config.database_url()
    engine = create_engine(url)
    if migrate_first:
        await migrate(engine)
    metadata = MetadataStore(engine, WriteGeneration.for_database(url))
    return Registry(metadata, make_storage(config), make_settings(config))


# --------------------------------------------------------------------------------------
# Security: the access controller (auth), Dockyard's token service (access), the
# failed-login limiter, the TLS context (http.tls). All of it reads files the config
# names, once before the server binds: an unusable file stops startup with a ConfigError
# naming its key, instead of failing at the first request.


@dataclass(frozen=True)
class Security:
    """The access controller, and the token endpoint (path, issuer) when Dockyard runs one."""

    controller: AccessController
    token_service: tuple[str, TokenIssuer] | None = None


def make_login_limiter(config: Config) -> FailedLoginLimiter:
    """The failed-login limiter; build it before forking workers so that they share it."""
    failed = config.security.failedlogins
    return FailedLoginLimiter(failed.limit, failed.window.total_seconds())


def make_security(config: Config, limiter: FailedLoginLimiter | None = None) -> Security:
    """What ``auth`` and ``access`` ask for; raises ConfigError when a file is unusable."""
    limiter = limiter or make_login_limiter(config)
    htpasswd = config.auth.htpasswd
    if htpasswd is not None:
        users = _htpasswd(htpasswd.path, "auth.htpasswd.path")
        return Security(HtpasswdController(htpasswd.realm, users, limiter))
    token = config.auth.token
    if token is None:
        return Security(OpenAccess())
    realm = token_realm(token)
    if not config.access.enabled:
        return Security(TokenController(realm, token.service, make_token_verifier(token)))
    access = config.access
    key = load_signing_key(access)
    rules = make_rules(access)
    own = TrustedKeys()
    own.add_key(key.public_key())
    verifier = make_token_verifier(token, own)
    issuer = TokenIssuer(
        key,
        issuer=token.issuer,
        service=token.service,
        users=_htpasswd(access.htpasswd or "", "access.htpasswd"),
        rules=rules,
        expiration=int(access.expiration.total_seconds()),
        limiter=limiter,
    )
    controller = RulesTokenController(realm, token.service, verifier, rules)
    return Security(controller, (config.token_endpoint_path(), issuer))


def _htpasswd(path: str, key: str) -> HtpasswdFile:
    users = HtpasswdFile(path)
    try:
        users.check_readable()
    except HtpasswdError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return users


def token_realm(token: TokenAuthConfig) -> Realm:
    if token.autoredirect:
        return Realm(path=token.autoredirectpath)
    if token.realm.startswith("/"):
        return Realm(path=token.realm)
    return Realm(url=token.realm)


def make_token_verifier(
    token: TokenAuthConfig, own_keys: TrustedKeys | None = None
) -> TokenVerifier:
    """Trust the certificates of ``rootcertbundle``, the keys of ``jwks``, and ``own_keys``."""
    trusted = own_keys or TrustedKeys()
    if token.rootcertbundle:
        try:
            trusted.add_certificates(load_certificates(token.rootcertbundle))
        except KeyProblem as exc:
            raise ConfigError(f"auth.token.rootcertbundle: {exc}") from None
    if token.jwks:
        try:
            trusted.by_kid.update(load_jwks(token.jwks))
        except KeyProblem as exc:
            raise ConfigError(f"auth.token.jwks: {exc}") from None
    if not trusted:
        raise ConfigError("auth.token: rootcertbundle and jwks hold no key to verify tokens with")
    algorithms = token.signingalgorithms or ASYMMETRIC_ALGORITHMS
    return TokenVerifier(token.issuer, token.service, trusted, algorithms)


def load_signing_key(access: AccessConfig) -> SigningKey:
    path = Path(access.signingkey or "")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"access.signingkey: {path}: cannot read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"access.signingkey: {path}: not an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, SigningKey):
        raise ConfigError(
            f"access.signingkey: {path}: a {type(key).__name__} cannot sign tokens "
            "(use RSA, EC P-256/P-384/P-521 or Ed25519)"
        )
    return key


def make_rules(access: AccessConfig) -> AccessRules:
    try:
        rules = [
            Rule.build(r.repositories, r.actions, r.users, r.groups, r.anonymous)
            for r in access.rules
        ]
        return AccessRules(rules, access.groups, access.admins.users, access.admins.groups)
    except RuleError as exc:
        raise ConfigError(f"access.rules: {exc}") from None


def make_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context (``http.tls``), or None for plain HTTP."""
    tls = config.http.tls
    if not tls.enabled or tls.certificate is None or tls.key is None:
        return None
    try:
        return server_context(
            tls.certificate,
            tls.key,
            minimum=tls.minimumtls,
            cipher_suites=tls.ciphersuites,
            client_cas=tls.clientcas,
            client_auth=tls.clientauth,
        )
    except TlsError as exc:
        raise ConfigError(str(exc)) from None


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
    if maintenance and purging.enabled and not config.storage.maintenance.readonly.enabled:
        app.cleanup_ctx.append(
            _upload_purger(registry, purging.age, purging.interval, purging.dryrun)
        )
    return app


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
        task = asyncio.create_task(purge_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def _bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class Prepared:
    """What ``serve`` makes once, before forking, for every worker: the failed-login counts
    they share, and the TLS context (loaded once, so a bad file stops startup)."""

    limiter: FailedLoginLimiter
    ssl_context: ssl.SSLContext | None


def prepare(config: Config) -> Prepared:
    """Build the shared parts; raises ConfigError when a file the config names is unusable."""
    limiter = make_login_limiter(config)
    make_security(config, limiter)
    return Prepared(limiter, make_ssl_context(config))


async def _serve(config: Config, sock: socket.socket, maintenance: bool, shared: Prepared) -> None:
    registry = await open_registry(config)
    app = make_web_app(config, registry, maintenance, make_security(config, shared.limiter))
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger,
        access_log=None if config.log.accesslog.disabled else logging.getLogger("dockyard.access"),
        handle_signals=False,
    )
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=shared.ssl_context)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when its parent dies, so that a killed parent never
    leaves workers serving the port unsupervised."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _run_worker(config: Config, sock: socket.socket, maintenance: bool, shared: Prepared) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    asyncio.run(_serve(config, sock, maintenance, shared))


def _run_child(
    parent: int, config: Config, sock: socket.socket, maintenance: bool, shared: Prepared
) -> None:
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        return
    _run_worker(config, sock, maintenance, shared)


def serve(config: Config, workers: int) -> None:
    """Migrate, bind, and serve with ``workers`` processes sharing one listening socket."""
    shared = prepare(config)  # before binding and forking: bad files stop us here
    asyncio.run(prepare_database(config))
    host, port = config.http.bind()
    sock = _bind_socket(host, port)
    log.info(
        "dockyard listening on %s:%d (%d worker%s, storage %s, database %s)",
        host,
        port,
        workers,
        "" if workers == 1 else "s",
        config.storage.driver,
        _redact(config.database_url()).replace("sqlite+aiosqlite:", "sqlite:"),
    )
    if shared.ssl_context is not None:
        tls = config.http.tls
        clients = f", client certificates: {tls.clientauth or 'required'}" if tls.clientcas else ""
        log.info("TLS on: %s or newer%s", tls.minimumtls, clients)
    if workers <= 1:
        _run_worker(config, sock, True, shared)
        return
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(
            target=_run_child, args=(os.getpid(), config, sock, i == 0, shared), daemon=True
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


async def run_import(config: Config, *, dry_run: bool = False) -> ImportReport:
    """``dockyard import``: the registry:2 store ``config`` points at, into its database."""
    if config.storage.driver == "inmemory":
        report = ImportReport(dry_run=dry_run)
        report.problems.append(
            "storage driver inmemory holds no registry:2 store: nothing to import"
        )
        return report
    if not dry_run:
        registry = await open_registry(config, migrate_first=True)
        try:
            return await import_store(registry.metadata, registry.storage, dry_run=False)
        finally:
            await registry.close()
    storage = make_storage(config)
    metadata = await _existing_database(config.database_url())
    try:
        return await import_store(metadata, storage, dry_run=True)
    finally:
        if metadata is not None:
            await metadata.close()
        await storage.close()


async def _existing_database(url: str) -> MetadataStore | None:
    """The database at ``url`` if it exists and has a schema; None otherwise.

    A dry run reads what is already imported, but must not create a database to do so.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not await asyncio.to_thread(Path(database).is_file):
            return None
    engine = create_engine(url)
    if await current_revision(engine) is None:
        await engine.dispose()
        return None
    return MetadataStore(engine)
