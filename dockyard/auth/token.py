"""Token authentication as registry:2 does it: the Docker token flow, verified here.

A client without a token gets ``401`` and a challenge
``Bearer realm="<token endpoint>",service="<service>",scope="repository:<name>:pull"``;
it asks the token endpoint for a token, then repeats the request with
``Authorization: Bearer <JWT>``. The JWT is accepted only if:

* its ``alg`` is one of the accepted signing algorithms (never ``none``, never HMAC);
* it is signed by a trusted key, named by an ``x5c`` chain to ``rootcertbundle`` (RFC 5280
  path validation: :mod:`dockyard.auth.chains`), by a ``jwk`` that is trusted or carries
  such a chain, or by a ``kid`` (libtrust format, RFC 7638 thumbprint, or a key of
  ``jwks``);
* ``iss`` is the configured issuer and ``aud`` contains the configured service;
* ``exp`` (required) and ``nbf`` (if present) hold, with Distribution's 60 s of leeway.

Then every access the request needs must be in the token's ``access`` claim; if not, the
answer is ``401`` with ``error="insufficient_scope"`` and the scope needed, so the client
fetches a better token (registry:2's behaviour).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt

from dockyard.auth.access import Access, AccessSet, scopes_of
from dockyard.auth.algorithms import ASYMMETRIC_ALGORITHMS
from dockyard.auth.chains import chain_key
from dockyard.auth.controller import (
    AccessController,
    AuthRequest,
    Identity,
    parse_bearer,
    quote,
    unauthorized,
)
from dockyard.auth.keys import KeyProblem, PublicKey, TrustedKeys, spki_der

log = logging.getLogger("dockyard.auth")

LEEWAY_SECONDS: Final = 60
# A token is a header, claims and a signature of a few KiB at most; refuse megabytes unread.
MAX_TOKEN_LENGTH: Final = 16 * 1024


class TokenRejected(Exception):
    """Why a token was refused, for the log (never contains the token)."""


@dataclass(frozen=True)
class Realm:
    """Where clients get tokens: a fixed URL, or a path on the host the client used
    (Distribution's ``autoredirect``, or a realm that starts with ``/``)."""

    url: str | None = None
    path: str | None = None

    def for_request(self, request: AuthRequest) -> str:
        if self.url is not None:
            return self.url
        return f"{request.base_url}{self.path or '/auth/token'}"


class TokenVerifier:
    def __init__(
        self,
        issuer: str,
        service: str,
        trusted: TrustedKeys,
        algorithms: Sequence[str] = ASYMMETRIC_ALGORITHMS,
        leeway: int = LEEWAY_SECONDS,
    ) -> None:
        unknown = set(algorithms) - set(ASYMMETRIC_ALGORITHMS)
        if unknown:
            raise ValueError(f"unsupported signing algorithms: {', '.join(sorted(unknown))}")
        self.issuer = issuer
        self.service = service
        self.trusted = trusted
        self.algorithms = tuple(algorithms)
        self.leeway = leeway

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raise TokenRejected."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected(f"token of {len(token)} bytes is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"malformed token: {exc}") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise TokenRejected(f"signing algorithm {algorithm!r} is not accepted")
        key = self._signing_key(header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self.service,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"{type(exc).__name__}: {exc}") from None
        return claims

    def _signing_key(self, header: dict[str, Any]) -> PublicKey:
        try:
            if header.get("x5c") is not None:
                return chain_key(header["x5c"], self.trusted)
            if header.get("jwk") is not None:
                return self._embedded_key(header["jwk"])
            kid = header.get("kid")
            if isinstance(kid, str) and kid:
                key = self.trusted.by_kid.get(kid)
                if key is None:
                    raise TokenRejected(f"signed by an untrusted key (kid {kid!r})")
                return key
        except KeyProblem as exc:
            raise TokenRejected(str(exc)) from None
        raise TokenRejected("the token names no signing key (x5c, jwk or kid)")

    def _embedded_key(self, jwk: object) -> PublicKey:
        if not isinstance(jwk, dict):
            raise TokenRejected("jwk header is not an object")
        try:
            key = jwt.PyJWK(jwk).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise TokenRejected(f"jwk header is unusable: {exc}") from None
        if not isinstance(key, PublicKey):
            raise TokenRejected("jwk header is not a public key")
        if self.trusted.trusts(key):
            return key
        if "x5c" in jwk:
            leaf = chain_key(jwk["x5c"], self.trusted)
            if spki_der(leaf) == spki_der(key):
                return key
            raise TokenRejected("jwk header does not match its x5c certificate")
        raise TokenRejected("jwk header names an untrusted key without a certificate chain")


class TokenController(AccessController):
    """``auth.token``: Bearer tokens from a token server, verified as registry:2 does."""

    def __init__(self, realm: Realm, service: str, verifier: TokenVerifier) -> None:
        self.realm = realm
        self.service = service
        self.verifier = verifier

    def challenge(
        self, request: AuthRequest, required: Sequence[Access], error: str | None = None
    ) -> str:
        parts = [
            f"Bearer realm={quote(self.realm.for_request(request))}",
            f"service={quote(self.service)}",
        ]
        scope = " ".join(str(s) for s in scopes_of(required))
        if scope:
            parts.append(f"scope={quote(scope)}")
        if error:
            parts.append(f"error={quote(error)}")
        return ",".join(parts)

    async def authenticate(self, request: AuthRequest, required: Sequence[Access]) -> Identity:
        token = parse_bearer(request.authorization)
        if token is None:
            raise unauthorized(self.challenge(request, required), required)
        try:
            claims = self.verifier.verify(token)
        except TokenRejected as exc:
            log.info("token refused from %s: %s", request.client, exc)
            raise unauthorized(
                self.challenge(request, required, "invalid_token"), required
            ) from None
        subject = claims.get("sub")
        name = subject if isinstance(subject, str) and subject else None
        return Identity(name, AccessSet.from_claim(claims.get("access")))

    def authorize(
        self, identity: Identity, request: AuthRequest, required: Sequence[Access]
    ) -> None:
        if not all(self.allows(identity, access) for access in required):
            raise unauthorized(self.challenge(request, required, "insufficient_scope"), required)

    def allows(self, identity: Identity, access: Access) -> bool:
        return identity.grants is not None and identity.grants.allows(access)
