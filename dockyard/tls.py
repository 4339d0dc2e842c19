"""The server's TLS context from Distribution's ``http.tls`` keys.

Distribution names cipher suites as Go does (the IANA names); OpenSSL has its own names
for the same suites, so :data:`CIPHER_SUITES` maps one to the other. As in Go, TLS 1.3
suites are always enabled and cannot be chosen: naming them is accepted and changes
nothing. The default (no ``ciphersuites``) is Distribution's: forward-secret AEAD suites
only.

Client certificates (``clientcas``) are verified against the given CAs: required by
default (``require-and-verify-client-cert``, what registry:2 does) or, with
``verify-client-cert-if-given``, only checked when the client sends one.

Only HTTP/1.1 is offered in ALPN: aiohttp does not serve HTTP/2. Put nginx in front (see
``docs/nginx.md``) to give clients HTTP/2.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from typing import Final

# Go / IANA name -> OpenSSL name (TLS 1.0-1.2 suites).
CIPHER_SUITES: Final[Mapping[str, str]] = {
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    # Go's older spellings of the two ChaCha20 suites
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_SUITES: Final = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)
# Distribution's default list (TLS 1.2 part).
DEFAULT_SUITES: Final = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
)
MINIMUM_VERSIONS: Final[Mapping[str, ssl.TLSVersion]] = {
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH_MODES: Final[Mapping[str, ssl.VerifyMode]] = {
    "require-and-verify-client-cert": ssl.CERT_REQUIRED,
    "verify-client-cert-if-given": ssl.CERT_OPTIONAL,
}


class TlsError(Exception):
    """The TLS settings cannot be used; the message names the key and the file."""


def is_known_suite(name: str) -> bool:
    return name in CIPHER_SUITES or name in TLS13_SUITES


def server_context(
    certificate: str | None,
    key: str | None,
    *,
    minimum: str = "tls1.2",
    cipher_suites: Sequence[str] = (),
    client_cas: Sequence[str] = (),
    client_auth: str | None = None,
) -> ssl.SSLContext:
    """An SSL context for the server; raises TlsError naming what could not be loaded.

    Without ``certificate`` and ``key`` none is loaded: the caller loads one with
    :func:`load_certificate` (certificates from Let's Encrypt)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSIONS[minimum]
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    if certificate is not None and key is not None:
        _load_files(context, certificate, key)
    suites = [CIPHER_SUITES[name] for name in cipher_suites if name in CIPHER_SUITES]
    if not cipher_suites:
        suites = [CIPHER_SUITES[name] for name in DEFAULT_SUITES]
    if suites:
        try:
            context.set_ciphers(":".join(dict.fromkeys(suites)))
        except ssl.SSLError:
            raise TlsError(
                "http.tls.ciphersuites: OpenSSL offers none of these suites "
                f"({', '.join(cipher_suites)})"
            ) from None
    if client_cas:
        for path in client_cas:
            try:
                context.load_verify_locations(cafile=path)
            except (ssl.SSLError, OSError) as exc:
                raise TlsError(f"http.tls.clientcas: cannot load {path}: {exc}") from None
        context.verify_mode = CLIENT_AUTH_MODES[client_auth or "require-and-verify-client-cert"]
    context.set_alpn_protocols(["http/1.1"])
    return context


def _load_files(context: ssl.SSLContext, certificate: str, key: str) -> None:
    for name, path in (("http.tls.certificate", certificate), ("http.tls.key", key)):
        if not os.path.isfile(path):
            raise TlsError(f"{name}: {path}: no such file")
    try:
        context.load_cert_chain(certificate, key)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(
            f"http.tls.certificate / http.tls.key: cannot load {certificate} with {key}: {exc}"
        ) from None


def load_certificate(context: ssl.SSLContext, chain_pem: str, key_pem: str) -> None:
    """Make ``context`` serve this certificate chain and key (PEM text) to new connections.

    OpenSSL loads only from files: they are written to a private temporary directory and
    removed at once. Connections already open keep the certificate they started with.
    """
    with tempfile.TemporaryDirectory(prefix="dockyard-tls-") as directory:  # mode 0700
        chain, key = os.path.join(directory, "chain.pem"), os.path.join(directory, "key.pem")
        for path, text in ((chain, chain_pem), (key, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(text)
        try:
            context.load_cert_chain(chain, key)
        except ssl.SSLError as exc:
            raise TlsError(f"cannot load the certificate: {exc}") from None
