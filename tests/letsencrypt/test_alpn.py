"""TLS-ALPN-01 on the TLS port: the ClientHello's ALPN list as OpenSSL sends it, the
challenge certificate of RFC 8737, and the switch of only the CA's handshakes to it."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from dockyard.letsencrypt.alpn import (
    ACME_IDENTIFIER,
    ChallengeSwitch,
    answer_key,
    challenge_certificate,
    offered_protocols,
)
from dockyard.tls import load_certificate, server_context

from .certificates import certificate, handshake


def test_offered_protocols_of_a_real_client_hello() -> None:
    hellos: list[bytes] = []
    context = server_context(None, None)
    served = certificate()
    load_certificate(context, served.chain_pem, served.key_pem)
    handshake(context, ["acme-tls/1"], hellos)
    handshake(context, ["h2", "http/1.1"], hellos)
    assert [offered_protocols(hello) for hello in hellos] == [("acme-tls/1",), ("h2", "http/1.1")]


@given(st.binary(max_size=300))
def test_offered_protocols_never_fails_on_garbage(data: bytes) -> None:
    assert isinstance(offered_protocols(b"\x01" + data), tuple)


def test_challenge_certificate_carries_the_key_authorization_digest() -> None:
    cert_pem, _key = challenge_certificate("registry.example", "token.thumbprint")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    extension = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    assert extension.critical
    digest = hashlib.sha256(b"token.thumbprint").digest()
    assert extension.value.public_bytes() == b"\x04\x20" + digest
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["registry.example"]


def test_only_the_cas_handshake_gets_the_challenge_certificate(tmp_path: Path) -> None:
    served = certificate()
    context = server_context(None, None)
    load_certificate(context, served.chain_pem, served.key_pem)
    answers = {answer_key("registry.example"): "token.thumbprint"}

    def make_context(cert_pem: str, key_pem: str) -> ssl.SSLContext:
        challenge = server_context(None, None)
        load_certificate(challenge, cert_pem, key_pem)
        return challenge

    ChallengeSwitch(lambda: answers, make_context).install(context)
    cert, protocol = handshake(context, ["acme-tls/1"])
    assert protocol == "acme-tls/1"
    assert cert.extensions.get_extension_for_oid(ACME_IDENTIFIER).critical
    # a client offering acme-tls/1 among others, or HTTP only, gets the registry's
    for protocols in (["http/1.1"], ["acme-tls/1", "http/1.1"]):
        cert, protocol = handshake(context, protocols)
        assert cert.serial_number == served.serial
    # and so does the CA once nothing is pending
    answers.clear()
    assert handshake(context, ["acme-tls/1"])[0].serial_number == served.serial
