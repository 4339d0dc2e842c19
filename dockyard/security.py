"""Security set-up: the access controller (``auth``), Dockyard's token service
(``access``), the failed-login limiter and the TLS context (``http.tls``).

All of it reads the files the configuration names once, before the server binds: an
unusable file stops startup with a ConfigError naming its key, instead of failing at the
first request. What only token authentication needs (JWT, X.509, signing keys) lives in
:mod:`dockyard.token_setup` and is imported only when ``auth.token`` is configured.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard.auth.controller import AccessController, OpenAccess
from dockyard.auth.ratelimit import FailedLoginLimiter, secret_key
from dockyard.config import Config, ConfigError
from dockyard.tls import TlsError, server_context

if TYPE_CHECKING:
    from dockyard.auth.htpasswd import HtpasswdFile
    from dockyard.auth.issuer import TokenIssuer


@dataclass(frozen=True)
class Security:
    """The access controller, and the token endpoint (path, issuer) when Dockyard runs one."""

    controller: AccessController
    token_service: tuple[str, TokenIssuer] | None = None
    limiter: FailedLoginLimiter | None = None


def make_login_limiter(config: Config) -> FailedLoginLimiter:
    """The failed-login limiter; build it before forking workers so that they share it.

    Its buckets are keyed with ``http.secret`` when set, so that replicas counting in one
    database put a client in the same bucket; otherwise with a random key."""
    failed = config.security.failedlogins
    secret = config.http.secret
    key = secret_key(secret) if secret else None
    if config.http.debug.metrics:  # counts failures and refusals too
        from dockyard.observability.use_case_metrics import CountedLoginLimiter

        return CountedLoginLimiter(failed.limit, failed.window.total_seconds(), key=key)
    return FailedLoginLimiter(failed.limit, failed.window.total_seconds(), key=key)


def make_security(config: Config, limiter: FailedLoginLimiter | None = None) -> Security:
    """What ``auth`` and ``access`` ask for; raises ConfigError when a file is unusable."""
    limiter = limiter or make_login_limiter(config)
    htpasswd = config.auth.htpasswd
    if htpasswd is not None:
        from dockyard.auth.htpasswd import HtpasswdController

        users = htpasswd_file(htpasswd.path, "auth.htpasswd.path")
        return Security(HtpasswdController(htpasswd.realm, users, limiter), limiter=limiter)
    if config.auth.token is None:
        return Security(OpenAccess())
    from dockyard.token_setup import token_security

    issuers_users = (
        htpasswd_file(config.access.htpasswd or "", "access.htpasswd")
        if config.access.enabled
        else None
    )
    found = token_security(config, limiter, issuers_users)
    return Security(found.controller, found.token_service, limiter if found.token_service else None)


def htpasswd_file(path: str, key: str) -> HtpasswdFile:
    """The htpasswd file at ``path``, checked readable; ConfigError naming ``key`` if not."""
    from dockyard.auth.htpasswd import HtpasswdError, HtpasswdFile

    users = HtpasswdFile(path)
    try:
        users.check_readable()
    except HtpasswdError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return users


def make_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context (``http.tls``), or None for plain HTTP."""
    tls = config.http.tls
    if not tls.enabled:
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
