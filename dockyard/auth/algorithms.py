"""The JWT signing algorithms Dockyard accepts for tokens: asymmetric ones only (an HMAC
secret shared with every verifier could mint tokens). A module of its own, so that the
configuration can name them without loading the JWT and X.509 libraries."""

from __future__ import annotations

from typing import Final

ASYMMETRIC_ALGORITHMS: Final = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
