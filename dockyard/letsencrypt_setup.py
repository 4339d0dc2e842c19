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
from dockyard.letsencrypt.alpn import ChallengeSwitch
from dockyard.letsencrypt.cache import CacheError, CacheFile, Certificate
from dockyard.letsencrypt.issuer import IssueError
from dockyard.letsencrypt.manager import LEASE, CertificateManager, Reloader, keep_renewed
from dockyard.letsencrypt.responder import answering
from dockyard.metadata.engine import Database
from dockyard.metadata.leases import Leases
from dockyard.startup import StartupError, listen
from dockyard.tls import TlsError, load_certificate, server_context


@dataclass
class LetsEncrypt:
    """What the workers share: the manager, the bound HTTP-01 socket, and the certificate
    the parent started with."""

    manager: CertificateManager
    http_sock: socket.socket | None
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
    bind = section.http_bind()
    sock = None if bind is None else listen(*bind, key="http.tls.letsencrypt.httpaddr")
    manager = CertificateManager(
        cache, section.directoryurl, tuple(section.hosts), section.email, http01=sock is not None
    )
    return LetsEncrypt(manager, sock)


def start_letsencrypt(
    letsencrypt: LetsEncrypt, context: ssl.SSLContext, sock: socket.socket
) -> Certificate:
    """Obtain (or take from the cache) the certificate and load it into ``context``, which
    answers TLS-ALPN-01 challenges from then on (``sock``: the TLS port, for the start)."""
    manager = letsencrypt.manager
    http_sock = letsencrypt.http_sock
    if http_sock is None:
        ChallengeSwitch(lambda: manager.cache.read().challenges, _challenge_context).install(
            context
        )

    def responder() -> contextlib.AbstractAsyncContextManager[None]:
        if http_sock is None:
            return answering(manager.cache, sock, context)
        return answering(manager.cache, http_sock)

    try:
        certificate = manager.at_start(responder)
        load_certificate(context, certificate.chain_pem, certificate.key_pem)
    except (IssueError, CacheError, TlsError) as exc:
        raise StartupError(
            f"http.tls.letsencrypt: no certificate for {', '.join(manager.hosts)} "
            f"from {manager.directory_url}: {exc}"
        ) from None
    letsencrypt.serving = certificate
    return certificate


def _challenge_context(certificate_pem: str, key_pem: str) -> ssl.SSLContext:
    context = server_context(None, None, minimum="tls1.2")
    load_certificate(context, certificate_pem, key_pem)
    return context


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
        if letsencrypt.http_sock is None:  # TLS-ALPN-01: the TLS port's handshakes answer
            yield
        else:
            async with answering(manager.cache, letsencrypt.http_sock):
                yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
