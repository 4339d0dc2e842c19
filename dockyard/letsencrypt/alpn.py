"""The TLS-ALPN-01 challenge (RFC 8737) on the registry's own TLS port, as registry:2's
autocert answers it.

The CA connects with the SNI name being validated and offers exactly one ALPN protocol,
``acme-tls/1``; it must get a self-signed certificate for that name carrying the SHA-256
of the key authorization in the critical ``acmeIdentifier`` extension. Every other client
gets the registry's certificate as usual.

Python's ``ssl`` picks the certificate before it lets anyone see the client's ALPN list, so
:class:`ChallengeSwitch` reads the list from the ClientHello itself, through CPython's
``SSLContext._msg_callback`` (the hook behind ``ssl`` message tracing, present since 3.8),
and swaps the connection to a challenge context in the SNI callback, which runs later in
the same handshake and is where Python lets a server change the context.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import ssl
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACME_TLS_ALPN: Final = "acme-tls/1"
# id-pe-acmeIdentifier (RFC 8737, section 6.1)
ACME_IDENTIFIER: Final = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
# The key under which a pending answer is kept in the cache's ``challenges``.
KEY_PREFIX: Final = "tls-alpn-01:"
_CLIENT_HELLO: Final = 1
_ALPN_EXTENSION: Final = 16

log = logging.getLogger("dockyard.letsencrypt")


def answer_key(host: str) -> str:
    return KEY_PREFIX + host


def offered_protocols(message: bytes) -> tuple[str, ...]:
    """The ALPN protocols of a ClientHello handshake message (with its 4-byte header);
    () when it has none or cannot be read."""
    try:
        if message[0] != _CLIENT_HELLO:
            return ()
        at = 4 + 2 + 32  # header, legacy_version, random
        at += 1 + message[at]  # session id
        at += 2 + int.from_bytes(message[at : at + 2], "big")  # cipher suites
        at += 1 + message[at]  # compression methods
        end = at + 2 + int.from_bytes(message[at : at + 2], "big")
        at += 2
        while at + 4 <= end:
            kind = int.from_bytes(message[at : at + 2], "big")
            size = int.from_bytes(message[at + 2 : at + 4], "big")
            body = message[at + 4 : at + 4 + size]
            if kind == _ALPN_EXTENSION:
                names, pos = [], 2
                while pos < len(body):
                    length = body[pos]
                    names.append(body[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
                    pos += 1 + length
                return tuple(names)
            at += 4 + size
    except IndexError:
        pass
    return ()


def challenge_certificate(host: str, key_authorization: str) -> tuple[str, str]:
    """The self-signed (certificate PEM, key PEM) that proves ``key_authorization``."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        # the extension's value is the DER OCTET STRING of the digest
        .add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER, bytes([0x04, len(digest)]) + digest),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem


class ChallengeSwitch:
    """Installed on the server's context: a connection offering only ``acme-tls/1`` for a
    host with a pending answer (from ``answers``) is handed a challenge context, made by
    ``make_context(certificate PEM, key PEM)``; every other one goes on unchanged."""

    def __init__(
        self,
        answers: Callable[[], Mapping[str, str]],
        make_context: Callable[[str, str], ssl.SSLContext],
    ) -> None:
        self._answers = answers
        self._make_context = make_context
        self._validating: weakref.WeakSet[Any] = weakref.WeakSet()
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}

    def install(self, context: ssl.SSLContext) -> None:
        context._msg_callback = self._on_message  # type: ignore[attr-defined]
        context.sni_callback = self._on_server_name

    def _on_message(
        self, conn: Any, direction: str, _version: Any, _type: Any, msg_type: Any, data: bytes
    ) -> None:
        hello = direction == "read" and msg_type == _CLIENT_HELLO
        if hello and offered_protocols(data) == (ACME_TLS_ALPN,):
            self._validating.add(conn)

    def _on_server_name(
        self, conn: ssl.SSLObject | ssl.SSLSocket, name: str | None, _context: ssl.SSLContext
    ) -> None:
        if conn not in self._validating or name is None:
            return None
        host = name.lower()
        try:
            answer = self._answers().get(answer_key(host))
        except Exception as exc:  # a damaged cache: answer nothing, never break TLS
            log.error("TLS-ALPN-01 challenge for %s: %s", host, exc)
            return None
        if answer is None:
            return None
        context = self._contexts.get((host, answer))
        if context is None:
            context = self._make_context(*challenge_certificate(host, answer))
            context.set_alpn_protocols([ACME_TLS_ALPN])
            self._contexts = {(host, answer): context}  # only the latest is worth keeping
        conn.context = context
        return None
