"""Certificates for the tests of the letsencrypt package, and a TLS handshake in memory."""

from __future__ import annotations

import contextlib
import datetime
import ssl

from cryptography import x509

from dockyard.letsencrypt.cache import Certificate
from tests.security.pki import cert_pem, issue, key_pem, new_key

NOW = datetime.datetime.now(datetime.UTC)


def certificate(
    days: int = 90,
    hosts: tuple[str, ...] = ("registry.example",),
    not_before: datetime.datetime = NOW,
) -> Certificate:
    issued = issue(hosts[0], new_key(), server_names=list(hosts), not_before=not_before, days=days)
    return Certificate(hosts, cert_pem(issued.cert).decode(), key_pem(issued.key).decode())


def handshake(
    server: ssl.SSLContext, protocols: list[str], hellos: list[bytes] | None = None
) -> tuple[x509.Certificate, str | None]:
    """Run a TLS handshake in memory: the certificate served and the ALPN chosen."""
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.set_alpn_protocols(protocols)
    if hellos is not None:
        client._msg_callback = (  # type: ignore[attr-defined]
            lambda _c, direction, _v, _t, kind, data: (
                hellos.append(data) if direction == "write" and kind == 1 else None
            )
        )
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    tls_client = client.wrap_bio(c_in, c_out, server_hostname="registry.example")
    tls_server = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for end in (tls_client, tls_server):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    der = tls_client.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der), tls_client.selected_alpn_protocol()
