"""The access-controller contract the API layer calls for every request.

A controller answers two questions, in this order:

1. :meth:`AccessController.authenticate` — who is calling? It returns an
   :class:`Identity` (possibly anonymous) or raises the wire error the client must see:
   ``401 UNAUTHORIZED`` with a ``WWW-Authenticate`` challenge, or ``429 TOOMANYREQUESTS``
   with ``Retry-After`` when the caller's address failed to log in too often.
2. :meth:`AccessController.authorize` — may that identity do everything the request needs?
   It returns, or raises ``401`` (a token without the scope: the client fetches a better
   one) or ``403 DENIED``.

:meth:`AccessController.allows` answers the same question for one access without raising;
handlers use it for optional access (the source of a cross-repository mount), and
:meth:`AccessController.listing_filter` gives the predicate that hides repositories the
caller may not pull from ``/v2/_catalog``.

Controllers raise :class:`dockyard.oci.errors.RegistryError`, so the API renders their
failures like any other wire error. Nothing here reads HTTP objects: the API layer builds
an :class:`AuthRequest` from what it trusts of the request.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dockyard.auth.access import Access, AccessSet
from dockyard.oci import errors


@dataclass(frozen=True)
class AuthRequest:
    """What access control may know of a request.

    ``client`` is the caller's address (taken from ``X-Forwarded-For`` only when the peer is
    a trusted proxy); ``base_url`` is ``scheme://host`` as the client reached the registry,
    for challenges that point back at it. ``repr`` hides the Authorization value.
    """

    authorization: str | None
    client: str
    base_url: str

    def __repr__(self) -> str:
        shown = "<hidden>" if self.authorization else None
        return f"AuthRequest(authorization={shown}, client={self.client!r})"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. ``name`` None is anonymous; ``grants`` is what a token
    carries (None when the controller decides access itself)."""

    name: str | None
    grants: AccessSet | None = None

    @property
    def anonymous(self) -> bool:
        return self.name is None


ANONYMOUS = Identity(None)

ListingFilter = Callable[[str], bool]


class AccessController(ABC):
    """Decides who calls and what they may do. See the module docstring."""

    @abstractmethod
    async def authenticate(self, request: AuthRequest, required: Sequence[Access]) -> Identity:
        """The caller's identity; raise RegistryError (401 with a challenge, or 429)."""

    @abstractmethod
    def authorize(
        self, identity: Identity, request: AuthRequest, required: Sequence[Access]
    ) -> None:
        """Return if ``identity`` may do all of ``required``; raise RegistryError (401/403)."""

    @abstractmethod
    def allows(self, identity: Identity, access: Access) -> bool:
        """Whether ``identity`` may do ``access`` (no side effects, never raises)."""

    def listing_filter(self, identity: Identity) -> ListingFilter | None:
        """Which repositories ``identity`` sees in listings; None shows every repository."""
        return None

    def pulls_everything(self, identity: Identity) -> bool:
        """Whether ``identity`` may pull every repository (e.g. mount a blob by digest alone)."""
        return False


class OpenAccess(AccessController):
    """No authentication configured: everyone may do everything (registry:2 without auth)."""

    async def authenticate(self, request: AuthRequest, required: Sequence[Access]) -> Identity:
        return ANONYMOUS

    def authorize(
        self, identity: Identity, request: AuthRequest, required: Sequence[Access]
    ) -> None:
        return None

    def allows(self, identity: Identity, access: Access) -> bool:
        return True

    def pulls_everything(self, identity: Identity) -> bool:
        return True


# --------------------------------------------------------------------------------------
# Helpers shared by the controllers


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    """The (user, password) of a ``Basic`` Authorization value, or None."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def named_login(credentials: tuple[str, str] | None) -> tuple[str, str] | None:
    """``credentials`` when they name a user; None when there are none or the user is empty.

    containers/image (skopeo, podman, buildah) answers a Basic challenge with ``Basic Og==``
    (no user, no password) when it has no login: that is an anonymous request, never a
    failed login (counting it would lock the address out after a few anonymous pulls).
    """
    if credentials is None or not credentials[0]:
        return None
    return credentials


def parse_bearer(authorization: str | None) -> str | None:
    """The token of a ``Bearer`` Authorization value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def quote(value: str) -> str:
    """A quoted-string for a challenge parameter (RFC 9110 section 5.6.4)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def unauthorized(
    challenge: str, required: Sequence[Access], message: str | None = None
) -> errors.RegistryError:
    """registry:2's 401: UNAUTHORIZED with the required access as detail, and a challenge."""
    detail = [access.as_record() for access in required] or None
    return errors.RegistryError(
        errors.UNAUTHORIZED, message, detail=detail, headers={"WWW-Authenticate": challenge}
    )


def denied(required: Sequence[Access], message: str | None = None) -> errors.RegistryError:
    detail = [access.as_record() for access in required] or None
    return errors.RegistryError(errors.DENIED, message, detail=detail)


def too_many_attempts(retry_after: int) -> errors.RegistryError:
    return errors.RegistryError(
        errors.TOOMANYREQUESTS,
        "too many failed logins from this address; retry later",
        detail={"retryAfterSeconds": retry_after},
        headers={"Retry-After": str(retry_after)},
    )
