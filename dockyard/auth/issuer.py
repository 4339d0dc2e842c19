"""Dockyard's own token service: the token endpoint's logic, and the registry side of it.

The service logs users in against an htpasswd file (bcrypt, re-read on change, failed
logins limited per address) and issues the tokens registry:2's token flow expects: a JWT
signed with the service's key, named by its libtrust ``kid`` (so registry:2 itself accepts
them, given the key's certificate in ``rootcertbundle``), with ``iss``, ``sub``, ``aud``,
``exp``, ``nbf``, ``iat``, ``jti`` and the ``access`` claim. The access granted is what the
client asked for (``scope``) and the access rules allow, nothing more; a caller that did
not log in gets what anonymous rules allow (possibly nothing).

On the registry side, :class:`RulesTokenController` verifies these tokens like any others
and also knows the rules: listings show only what the caller may pull. A token without an
access the request needs gets ``401`` (with ``error="insufficient_scope"``) when nobody
logged in, since a login may help; a logged-in user gets ``403 DENIED`` with the same
challenge, as RFC 6750 has it: the message says whether another token would help.
"""

from __future__ import annotations

import datetime
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from dockyard.auth.access import PULL, REPOSITORY, Access, Scope
from dockyard.auth.controller import (
    AuthRequest,
    Identity,
    ListingFilter,
    denied,
    named_login,
    quote,
    too_many_attempts,
    unauthorized,
)
from dockyard.auth.htpasswd import HtpasswdFile
from dockyard.auth.keys import libtrust_key_id
from dockyard.auth.ratelimit import FailedLoginLimiter
from dockyard.auth.rules import AccessRules
from dockyard.auth.token import Realm, TokenController, TokenVerifier
from dockyard.oci import errors

log = logging.getLogger("dockyard.auth")

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def signing_algorithm(key: SigningKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = _EC_ALGORITHMS.get(key.curve.name)
        if algorithm is None:
            raise ValueError(f"unsupported elliptic curve {key.curve.name}")
        return algorithm
    return "EdDSA"


@dataclass(frozen=True)
class TokenRequest:
    """One call of the token endpoint, as the HTTP layer parsed it."""

    client: str
    credentials: tuple[str, str] | None
    service: str | None
    scopes: Sequence[Scope]

    def __repr__(self) -> str:  # never show the password
        user = self.credentials[0] if self.credentials else None
        return f"TokenRequest(client={self.client!r}, user={user!r}, scopes={len(self.scopes)})"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: str
    granted: Sequence[Scope]
    user: str | None = None  # who logged in; None for an anonymous caller

    def body(self) -> dict[str, Any]:
        """The endpoint's JSON answer (Docker's ``token`` and OAuth2's ``access_token``)."""
        return {
            "token": self.token,
            "access_token": self.token,
            "expires_in": self.expires_in,
            "issued_at": self.issued_at,
        }


class TokenIssuer:
    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        service: str,
        users: HtpasswdFile,
        rules: AccessRules,
        expiration: int = 300,
        limiter: FailedLoginLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.algorithm = signing_algorithm(key)
        self.kid = libtrust_key_id(key.public_key())
        self.issuer = issuer
        self.service = service
        self.users = users
        self.rules = rules
        self.expiration = expiration
        self.limiter = limiter or FailedLoginLimiter(0, 0)
        self._clock = clock
        self.challenge = f"Basic realm={quote(f'{service} token service')}"

    async def authenticate(self, request: TokenRequest) -> str | None:
        """The logged-in user, None for an anonymous caller; raise RegistryError."""
        credentials = named_login(request.credentials)
        if credentials is None:  # no login, or an empty one: the anonymous rules apply
            return None
        retry_after = await self.limiter.retry_after(request.client)
        if retry_after:
            raise too_many_attempts(retry_after)
        user, password = credentials
        if not await self.users.verify(user, password):
            await self.limiter.failed(request.client)
            log.info("token service: login failed for user %r from %s", user, request.client)
            raise errors.RegistryError(
                errors.UNAUTHORIZED,
                "incorrect username or password",
                headers={"WWW-Authenticate": self.challenge},
            )
        return user

    async def issue(self, request: TokenRequest) -> IssuedToken:
        if request.service is not None and request.service != self.service:
            raise errors.RegistryError(
                errors.DENIED,
                f"this token service issues tokens for {self.service!r} only",
                detail={"service": request.service[:200]},
            )
        user = await self.authenticate(request)
        granted = self.rules.grant(user, request.scopes)
        now = int(self._clock())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.expiration,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": [scope.claim() for scope in granted],
        }
        token = jwt.encode(
            claims, self.key, algorithm=self.algorithm, headers={"kid": self.kid, "typ": "JWT"}
        )
        log.info(
            "token service: token for %s from %s: %s",
            repr(user) if user else "an anonymous caller",
            request.client,
            " ".join(str(scope) for scope in granted) or "no access",
        )
        issued_at = datetime.datetime.fromtimestamp(now, datetime.UTC)
        return IssuedToken(
            token, self.expiration, issued_at.isoformat().replace("+00:00", "Z"), granted, user
        )


class RulesTokenController(TokenController):
    """Verifies tokens like :class:`TokenController`, and knows the access rules."""

    def __init__(
        self, realm: Realm, service: str, verifier: TokenVerifier, rules: AccessRules
    ) -> None:
        super().__init__(realm, service, verifier)
        self.rules = rules

    def authorize(
        self, identity: Identity, request: AuthRequest, required: Sequence[Access]
    ) -> None:
        missing = [access for access in required if not self.allows(identity, access)]
        if not missing:
            return
        challenge = self.challenge(request, required, "insufficient_scope")
        if identity.name is None:  # logging in may help
            raise unauthorized(challenge, required)
        # A logged-in user: 403 with the challenge (RFC 6750). Clients that follow
        # challenges lazily (oras) fetch a new token on a 403, never on a 401.
        if all(self.rules.permits(identity.name, access) for access in missing):
            message = "the token does not grant this; ask for the scope in WWW-Authenticate"
        else:
            message = None  # no token this service issues allows it
        error = denied(required, message)
        error.headers["WWW-Authenticate"] = challenge
        raise error

    def listing_filter(self, identity: Identity) -> ListingFilter | None:
        if self.rules.is_admin(identity.name):
            return None
        user = identity.name
        return lambda name: self.rules.permits(user, Access(REPOSITORY, name, PULL))

    def pulls_everything(self, identity: Identity) -> bool:
        return self.rules.is_admin(identity.name)
