"""x5c chains under RFC 5280 path validation: what token servers make still verifies, and
chains the former hand-written walk accepted (it checked signatures, dates and the cA bit
only) are refused."""

from __future__ import annotations

import base64
import datetime
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.auth.keys import TrustedKeys
from dockyard.auth.token import TokenRejected, TokenVerifier
from tests.auth.test_token import ISSUER, SERVICE, claims, sign
from tests.security.pki import PrivateKey, new_key


def der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def verifier_for(*roots: x509.Certificate) -> TokenVerifier:
    trusted = TrustedKeys()
    trusted.add_certificates(list(roots))
    return TokenVerifier(ISSUER, SERVICE, trusted)


def token_for(key: PrivateKey, *chain: x509.Certificate) -> str:
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    return sign(key, algorithm, claims(), x5c=[der_b64(cert) for cert in chain])


def _usage(*, sign: bool = False, cert_sign: bool = False, encipher: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def certificate(
    subject: str,
    key: PrivateKey,
    issuer: tuple[x509.Certificate, PrivateKey] | None = None,
    *extensions: x509.ExtensionType,
) -> x509.Certificate:
    """A certificate with exactly ``extensions`` (critical), self-signed without issuer."""
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def ca(path_length: int | None = None) -> x509.BasicConstraints:
    return x509.BasicConstraints(ca=True, path_length=path_length)


def refused(verifier: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(TokenRejected, match="does not chain") as caught:
        verifier.verify(token)
    assert reason in str(caught.value)


# ---- what token servers make ------------------------------------------------------------


class Made:
    """Certificates made with the openssl command, the way token server guides make them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def run(self, *args: str) -> None:
        subprocess.run(["openssl", *args], cwd=self.directory, check=True, capture_output=True)

    def request(self, name: str) -> None:
        """``name``.key (P-256) and a signing request for it."""
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        files = ["-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"]
        self.run("req", "-new", *new_key, *files)

    def root(self, name: str) -> None:
        """``openssl req -x509``: self-signed, version 3, basicConstraints CA:TRUE."""
        files = ["-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}"]
        self.run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", *files)

    def signed(self, name: str, issuer: str, *extfile: str) -> None:
        """``openssl x509 -req``: version 1 unless extensions are given."""
        extensions = ["-extfile", extfile[0]] if extfile else []
        by = ["-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key", "-set_serial", "7"]
        files = ["-in", f"{name}.csr", "-out", f"{name}.pem"]
        self.run("x509", "-req", *by, "-days", "2", *extensions, *files)

    def load(self, name: str) -> tuple[x509.Certificate, PrivateKey]:
        cert = x509.load_pem_x509_certificate((self.directory / f"{name}.pem").read_bytes())
        key = serialization.load_pem_private_key(
            (self.directory / f"{name}.key").read_bytes(), None
        )
        assert isinstance(key, PrivateKey)
        return cert, key

    def extensions(self, name: str, text: str) -> str:
        (self.directory / f"{name}.ext").write_text(text)
        return f"{name}.ext"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    made = Made(tmp_path_factory.mktemp("openssl"))
    made.root("root")
    made.request("signer")
    made.signed("signer", "root")
    tls = made.extensions(
        "tls",
        "subjectAltName=DNS:auth.example.com\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n",
    )
    made.request("tls")
    made.signed("tls", "root", tls)
    made.request("middle")
    made.signed("middle", "root", made.extensions("ca", "basicConstraints=critical,CA:TRUE\n"))
    made.request("deep")
    made.signed("deep", "middle")
    made.request("v1root")  # self-signed, version 1: no extensions, so no CA
    files = ["-in", "v1root.csr", "-out", "v1root.pem"]
    made.run("x509", "-req", "-signkey", "v1root.key", "-days", "2", *files)
    made.request("under_v1")
    made.signed("under_v1", "v1root")
    return made


def test_what_openssl_makes_for_token_servers(made: Made) -> None:
    root, root_key = made.load("root")
    signer, signer_key = made.load("signer")
    tls, tls_key = made.load("tls")
    assert signer.version == x509.Version.v1
    verifier = verifier_for(root)
    assert verifier.verify(token_for(signer_key, signer))
    assert verifier.verify(token_for(signer_key, signer, root))  # the root sent along
    assert verifier.verify(token_for(tls_key, tls))  # a TLS certificate reused for tokens
    # the self-signed CA certificate of the bundle signing tokens itself
    assert verifier.verify(token_for(root_key, root))


def test_version1_signers(made: Made) -> None:
    root, _ = made.load("root")
    middle, _ = made.load("middle")
    deep, deep_key = made.load("deep")
    v1root, v1root_key = made.load("v1root")
    under_v1, under_v1_key = made.load("under_v1")
    # in the bundle itself, as registry:2 accepts it
    assert verifier_for(v1root).verify(token_for(v1root_key, v1root))
    # signed by a bundle certificate that is no CA
    refused(verifier_for(v1root), token_for(under_v1_key, under_v1), "not a CA")
    # below an intermediate: only a direct signature by the bundle is accepted
    refused(verifier_for(root), token_for(deep_key, deep, middle), "version 1")


def test_a_chain_through_an_intermediate() -> None:
    root_key, middle_key, leaf_key = new_key("ec"), new_key("ec"), new_key("ec")
    root = certificate("root", root_key, None, ca(1), _usage(cert_sign=True))
    middle = certificate("middle", middle_key, (root, root_key), ca(0))
    leaf = certificate("leaf", leaf_key, (middle, middle_key), _usage(sign=True))
    assert verifier_for(root).verify(token_for(leaf_key, leaf, middle))


def test_an_issuer_without_basic_constraints() -> None:
    """Refused before too: an issuer must say it is a CA."""
    root_key, middle_key, leaf_key = new_key("ec"), new_key("ec"), new_key("ec")
    root = certificate("root", root_key, None, ca())
    middle = certificate("middle", middle_key, (root, root_key))
    leaf = certificate("leaf", leaf_key, (middle, middle_key))
    refused(verifier_for(root), token_for(leaf_key, leaf, middle), "basicConstraints")


# ---- what the walk accepted and path validation refuses -----------------------------------


def test_a_path_longer_than_the_root_allows() -> None:
    root_key, middle_key, leaf_key = new_key("ec"), new_key("ec"), new_key("ec")
    root = certificate("root", root_key, None, ca(0))  # may issue end entities only
    middle = certificate("middle", middle_key, (root, root_key), ca())
    leaf = certificate("leaf", leaf_key, (middle, middle_key))
    refused(verifier_for(root), token_for(leaf_key, leaf, middle), "path length")


def test_an_issuer_whose_key_usage_does_not_sign_certificates() -> None:
    root_key, middle_key, leaf_key = new_key("ec"), new_key("ec"), new_key("ec")
    root = certificate("root", root_key, None, ca())
    middle = certificate("middle", middle_key, (root, root_key), ca(), _usage(sign=True))
    leaf = certificate("leaf", leaf_key, (middle, middle_key))
    refused(verifier_for(root), token_for(leaf_key, leaf, middle), "keyCertSign")


def test_a_signer_whose_key_usage_does_not_sign() -> None:
    root_key, leaf_key = new_key("ec"), new_key("ec")
    root = certificate("root", root_key, None, ca())
    leaf = certificate("leaf", leaf_key, (root, root_key), _usage(encipher=True))
    refused(verifier_for(root), token_for(leaf_key, leaf), "digitalSignature")


def test_a_signer_outside_the_issuers_name_constraints() -> None:
    root_key, middle_key, leaf_key = new_key("ec"), new_key("ec"), new_key("ec")
    root = certificate("root", root_key, None, ca())
    team_only = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("team.example.com")], excluded_subtrees=None
    )
    middle = certificate("middle", middle_key, (root, root_key), ca(), team_only)
    outside = x509.SubjectAlternativeName([x509.DNSName("auth.elsewhere.example")])
    leaf = certificate("leaf", leaf_key, (middle, middle_key), outside)
    refused(verifier_for(root), token_for(leaf_key, leaf, middle), "name constraints")
    inside = x509.SubjectAlternativeName([x509.DNSName("auth.team.example.com")])
    allowed = certificate("leaf", leaf_key, (middle, middle_key), inside)
    assert verifier_for(root).verify(token_for(leaf_key, allowed, middle))


def test_extended_key_usage_is_not_checked_as_in_registry2() -> None:
    root_key, leaf_key = new_key("ec"), new_key("ec")
    root = certificate("root", root_key, None, ca())
    code_signing = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING])
    leaf = certificate("leaf", leaf_key, (root, root_key), code_signing)
    assert verifier_for(root).verify(token_for(leaf_key, leaf))


def test_an_x5c_without_any_root_configured() -> None:
    leaf_key = new_key("ec")
    leaf = certificate("leaf", leaf_key)
    with pytest.raises(TokenRejected, match="rootcertbundle holds no certificate"):
        verifier_for().verify(token_for(leaf_key, leaf))
