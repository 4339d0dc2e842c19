"""Wiring of ``http.tls.letsencrypt``: checks and binds before forking, obtains the
certificate in ``serve``'s parent, and runs the responder, the reloader and (in one
worker) the renewal in each worker. Imported only when the section is on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from dockyard.config import Config, ConfigError
from dockyard.letsencrypt.cache import CacheError, CacheFile, Certificate
from dockyard.letsencrypt.issuer import IssueError
from dockyard.letsencrypt.manager import LEASE, CertificateManager, Reloader, keep_renewed
from dockyard.letsencrypt.responder import answering
from dockyard.metadata.engine import Database
from dockyard.metadata.leases import Leases
from dockyard.startup import StartupError, listen
from dockyard.tls import TlsError, load_certificate


@dataclass
class LetsEncrypt:
    """What the workers share: the manager, the bound HTTP-01 socket, and the certificate
    the parent started with."""

    manager: CertificateManager
    http_sock: socket.socket
    serving: Certificate | None = None


def prepare_letsencrypt(config: Config) -> LetsEncrypt:
    """Check the cache file and bind ``httpaddr``; ConfigError or StartupError if not."""
    section = config.http.tls.letsencrypt
    assert section.cachefile is not None
    cache = CacheFile(section.cachefile)
    try:
        cache.read()
    except CacheError as exc:
        raise ConfigError(f"http.tls.letsencrypt.cachefile: {exc}") from None
    host, port = section.http_bind()
    sock = listen(host, port, key="http.tls.letsencrypt.httpaddr")
    manager = CertificateManager(cache, section.directoryurl, tuple(section.hosts), section.email)
    return LetsEncrypt(manager, sock)


def start_letsencrypt(letsencrypt: LetsEncrypt, context: ssl.SSLContext) -> Certificate:
    """Obtain (or take from the cache) the certificate and load it into ``context``."""
    manager = letsencrypt.manager
    try:
        certificate = manager.at_start(lambda: answering(manager.cache, letsencrypt.http_sock))
        load_certificate(context, certificate.chain_pem, certificate.key_pem)
    except (IssueError, CacheError, TlsError) as exc:
        raise StartupError(
            f"http.tls.letsencrypt: no certificate for {', '.join(manager.hosts)} "
            f"from {manager.directory_url}: {exc}"
        ) from None
    letsencrypt.serving = certificate
    return certificate


@contextlib.asynccontextmanager
async def letsencrypt_in_worker(
    letsencrypt: LetsEncrypt, context: ssl.SSLContext, engine: Database, renew: bool
) -> AsyncIterator[None]:
    """Answer challenges and reload renewed certificates here; with ``renew``, also renew."""
    manager = letsencrypt.manager

    def load(certificate: Certificate) -> None:
        load_certificate(context, certificate.chain_pem, certificate.key_pem)

    reloader = Reloader(load, manager.cache, letsencrypt.serving)
    leases = Leases(engine)
    tasks = [asyncio.create_task(reloader.watch())]
    if renew:
        tasks.append(asyncio.create_task(keep_renewed(manager, lambda: leases.hold(LEASE))))
    try:
        async with answering(manager.cache, letsencrypt.http_sock):
            yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
