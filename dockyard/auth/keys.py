"""The keys tokens are signed with, found the ways registry:2 and token servers name them.

* ``kid`` in libtrust's format: what Distribution 2.8 computes for every certificate in
  ``rootcertbundle``, and what docker_auth, GitLab, Harbor and Portus put in their tokens:
  the SHA-256 of the public key's DER (SubjectPublicKeyInfo), cut to 240 bits, in base32,
  in twelve groups of four characters joined by ``:``.
* ``kid`` as an RFC 7638 JWK thumbprint (Distribution 3 also indexes root certificates so).
* ``kid`` of a key in a JWKS file (``jwks``).
* ``x5c``: a certificate chain in the token header whose root is in ``rootcertbundle``
  (verified in :mod:`dockyard.auth.chains`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.verification import Store

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


class KeyProblem(Exception):
    """A key or certificate cannot be used; the message is for the log, never secret."""


def spki_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def libtrust_key_id(key: Any) -> str:
    """libtrust's fingerprint of a public key, e.g. ``ABCD:EFGH:...`` (12 groups)."""
    digest = hashlib.sha256(spki_der(key)).digest()[:30]
    text = base64.b32encode(digest).decode("ascii").rstrip("=")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def _b64url_uint(value: int) -> str:
    data = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def jwk_members(key: Any) -> dict[str, str]:
    """The required members of a public key's JWK (RFC 7517/7518/8037)."""
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        return {"e": _b64url_uint(rsa_numbers.e), "kty": "RSA", "n": _b64url_uint(rsa_numbers.n)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVES.get(key.curve.name)
        if curve is None:
            raise KeyProblem(f"unsupported elliptic curve {key.curve.name}")
        size = (key.curve.key_size + 7) // 8
        numbers = key.public_numbers()
        return {
            "crv": curve,
            "kty": "EC",
            "x": _b64url(numbers.x.to_bytes(size, "big")),
            "y": _b64url(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        curve = "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"
        return {"crv": curve, "kty": "OKP", "x": _b64url(raw)}
    raise KeyProblem(f"unsupported key type {type(key).__name__}")


def jwk_thumbprint(key: Any) -> str:
    """RFC 7638: base64url(SHA-256(the required members, sorted, no spaces))."""
    canonical = json.dumps(jwk_members(key), sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def load_certificates(path: str | Path) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; raises KeyProblem naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyProblem(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise KeyProblem(f"{path}: not a PEM certificate bundle: {exc}") from None
    return certificates


def load_jwks(path: str | Path) -> dict[str, PublicKey]:
    """``kid`` -> public key of a JWK set file; keys without ``kid`` are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyProblem(f"{path}: cannot read: {exc}") from None
    try:
        document = json.loads(text)
        entries = document["keys"]
        if not isinstance(entries, list):
            raise TypeError("keys is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyProblem(f"{path}: not a JWK set ({exc})") from None
    keys: dict[str, PublicKey] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("kty") == "oct":
            raise KeyProblem(f"{path}: key {index} is a shared secret (kty oct); not accepted")
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise KeyProblem(f"{path}: key {index} ({entry['kid']!r}) is unusable: {exc}") from None
        if hasattr(key, "private_bytes"):
            key = key.public_key()
        if not isinstance(key, PublicKey):
            raise KeyProblem(f"{path}: key {index} ({entry['kid']!r}) is not a public key")
        keys[entry["kid"]] = key
    return keys


@dataclass
class TrustedKeys:
    """The roots and keys tokens may be signed with, indexed for the token header."""

    roots: list[x509.Certificate] = field(default_factory=list)
    by_kid: dict[str, PublicKey] = field(default_factory=dict)
    _store: Store | None = field(default=None, init=False, repr=False, compare=False)

    def add_key(self, key: PublicKey) -> None:
        self.by_kid[libtrust_key_id(key)] = key
        self.by_kid[jwk_thumbprint(key)] = key

    def add_certificates(self, certificates: Sequence[x509.Certificate]) -> None:
        self._store = None
        for certificate in certificates:
            self.roots.append(certificate)
            key = certificate.public_key()
            if isinstance(key, PublicKey):
                self.add_key(key)

    def __bool__(self) -> bool:
        return bool(self.roots or self.by_kid)

    def trusts(self, key: PublicKey) -> bool:
        der = spki_der(key)
        return any(spki_der(known) == der for known in self.by_kid.values())

    def root_store(self) -> Store:
        """The roots as cryptography's trust store, for :mod:`dockyard.auth.chains`."""
        if not self.roots:
            raise KeyProblem("x5c: rootcertbundle holds no certificate to chain to")
        if self._store is None:
            self._store = Store(self.roots)
        return self._store
