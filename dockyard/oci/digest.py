"""Content digests (``algorithm:hex``) as the OCI image spec defines them.

Grammar (image-spec descriptor.md)::

    digest     ::= algorithm ":" encoded
    algorithm  ::= algorithm-component (algorithm-separator algorithm-component)*
    algorithm-component ::= [a-z0-9]+
    algorithm-separator ::= [+._-]
    encoded    ::= [a-zA-Z0-9=_-]+

Registries support the registered algorithms only: sha256 (64 lowercase hex) and sha512
(128 lowercase hex). Anything else is refused, so no unverifiable digest is ever stored.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from dockyard.oci import errors

_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+")


class Hasher(Protocol):
    """What hashlib's hash objects offer; lets callers hash incrementally."""

    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True, order=True)
class Digest:
    """A validated digest of a supported algorithm."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse and validate ``text``; raise DIGEST_INVALID with the reason otherwise."""
        if len(text) > 256 or not _GRAMMAR.fullmatch(text):
            raise errors.RegistryError(
                errors.DIGEST_INVALID, "invalid digest format", detail={"digest": text[:300]}
            )
        algorithm, encoded = text.split(":", 1)
        expected = HEX_LENGTH.get(algorithm)
        if expected is None:
            raise errors.RegistryError(
                errors.DIGEST_INVALID,
                f"unsupported digest algorithm {algorithm!r} (supported: sha256, sha512)",
                detail={"digest": text},
            )
        if len(encoded) != expected or not _HEX.fullmatch(encoded):
            raise errors.RegistryError(
                errors.DIGEST_INVALID,
                f"{algorithm} digest must be {expected} lowercase hex characters",
                detail={"digest": text},
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> Hasher:
        """A fresh hasher of this digest's algorithm."""
        return new_hasher(self.algorithm)


def new_hasher(algorithm: str = "sha256") -> Hasher:
    return hashlib.new(algorithm)


def is_digest(reference: str) -> bool:
    """Whether a manifest reference is a digest (contains ':') rather than a tag."""
    return ":" in reference
