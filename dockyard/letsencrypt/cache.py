"""The cache file of ``http.tls.letsencrypt.cachefile``: the ACME account key, the
certificate with its key, and the HTTP-01 answers being validated right now.

One JSON document, written whole to a temporary file beside it (mode 0600), flushed and
renamed over the old one, so a reader sees the old or the new file and never half of one.
It holds private keys: a file that others may read, that is not JSON or that is not
Dockyard's is refused with an error saying what to do, never rewritten or half-used.

registry:2 keeps an autocert *directory* at that path; when ``cachefile`` names a
directory, Dockyard keeps its file inside it (:data:`FILE_IN_DIRECTORY`), beside
registry:2's files, which it leaves alone.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

FORMAT: Final = "dockyard-letsencrypt-cache"
VERSION: Final = 1
FILE_IN_DIRECTORY: Final = "dockyard-letsencrypt.json"
# Renew when this much of the lifetime is left (and at the latest 30 days before expiry).
RENEW_FRACTION: Final = 1 / 3
RENEW_BEFORE: Final = datetime.timedelta(days=30)


class CacheError(Exception):
    """The cache file cannot be used; the message names it and what to do."""


@dataclass(frozen=True)
class Certificate:
    """A certificate chain (leaf first) with its private key, both PEM."""

    hosts: tuple[str, ...]
    chain_pem: str
    key_pem: str

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.chain_pem.encode())

    @property
    def not_after(self) -> datetime.datetime:
        return self.leaf.not_valid_after_utc

    @property
    def serial(self) -> int:
        return self.leaf.serial_number

    def renew_at(self) -> datetime.datetime:
        """When to obtain the next one: a third of the lifetime before expiry, or 30 days
        before it for long-lived certificates."""
        leaf = self.leaf
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        return leaf.not_valid_after_utc - min(lifetime * RENEW_FRACTION, RENEW_BEFORE)

    def covers(self, hosts: tuple[str, ...]) -> bool:
        return set(hosts) <= set(self.hosts)

    def valid(self, now: datetime.datetime) -> bool:
        return now < self.not_after


@dataclass(frozen=True)
class CacheContents:
    account_key_pem: str | None = None
    account_uri: str | None = None
    certificate: Certificate | None = None
    #: token -> key authorization, for the HTTP-01 challenges being validated
    challenges: Mapping[str, str] = field(default_factory=dict)


class CacheFile:
    """The cache at ``path`` (a file, or a directory holding :data:`FILE_IN_DIRECTORY`)."""

    def __init__(self, path: str | Path) -> None:
        given = Path(path)
        self.path = given / FILE_IN_DIRECTORY if given.is_dir() else given

    def stamp(self) -> tuple[int, int, int] | None:
        """What changes when the file is replaced: (inode, mtime, size); None if missing."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def read(self) -> CacheContents:
        """The contents (empty when there is no file yet); CacheError when unusable."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return CacheContents()
        except OSError as exc:
            raise CacheError(f"{self.path}: cannot read: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise CacheError(f"{self.path}: not a regular file")
            if mode & 0o077:
                raise CacheError(
                    f"{self.path}: others may read it (mode {stat.S_IMODE(mode):04o}) and it "
                    "holds private keys: chmod 600 it, or remove it to start afresh"
                )
            raw = file.read()
        return _parse(raw, self.path)

    def write(self, contents: CacheContents) -> None:
        """Replace the file atomically with ``contents`` (mode 0600)."""
        document = json.dumps(_document(contents), indent=1).encode()
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:  # mkstemp makes it 0600
                file.write(document)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _document(contents: CacheContents) -> dict[str, Any]:
    certificate = contents.certificate
    return {
        "format": FORMAT,
        "version": VERSION,
        "account": {"key": contents.account_key_pem, "uri": contents.account_uri},
        "certificate": None
        if certificate is None
        else {
            "hosts": list(certificate.hosts),
            "chain": certificate.chain_pem,
            "key": certificate.key_pem,
        },
        "challenges": dict(contents.challenges),
    }


def _parse(raw: bytes, path: Path) -> CacheContents:
    foreign = (
        f"{path}: not a Dockyard Let's Encrypt cache file; point "
        "http.tls.letsencrypt.cachefile at another path, or remove the file to start afresh"
    )
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CacheError(foreign) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CacheError(foreign)
    if data.get("version") != VERSION:
        raise CacheError(
            f"{path}: cache version {data.get('version')!r} is not {VERSION}, written by "
            "another Dockyard version; remove the file to start afresh"
        )
    try:
        account = data["account"]
        certificate = data["certificate"]
        contents = CacheContents(
            account_key_pem=_optional_text(account["key"]),
            account_uri=_optional_text(account["uri"]),
            certificate=None if certificate is None else _certificate(certificate),
            challenges={str(k): str(v) for k, v in dict(data["challenges"]).items()},
        )
        if contents.account_key_pem is not None:
            serialization.load_pem_private_key(contents.account_key_pem.encode(), None)
    except (KeyError, TypeError, ValueError) as exc:
        raise CacheError(
            f"{path}: damaged ({type(exc).__name__}: {exc}); remove the file to start afresh"
        ) from None
    return contents


def _optional_text(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _certificate(data: Mapping[str, Any]) -> Certificate:
    certificate = Certificate(
        hosts=tuple(str(host) for host in data["hosts"]),
        chain_pem=str(data["chain"]),
        key_pem=str(data["key"]),
    )
    certificate.leaf  # noqa: B018 (parses the chain: a damaged one raises ValueError here)
    serialization.load_pem_private_key(certificate.key_pem.encode(), None)
    return certificate
