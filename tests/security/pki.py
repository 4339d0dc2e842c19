"""A certificate authority made at test time: server, client and token-signing certificates."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_key(kind: str = "ec") -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    curve = {"ec": ec.SECP256R1(), "ec384": ec.SECP384R1(), "ec521": ec.SECP521R1()}[kind]
    return ec.generate_private_key(curve)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Issued:
    key: PrivateKey
    cert: x509.Certificate

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_path.write_bytes(cert_pem(self.cert))
        key_path.write_bytes(key_pem(self.key))
        key_path.chmod(0o600)
        return cert_path, key_path


def issue(
    subject: str,
    key: PrivateKey,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    server_names: list[str] | None = None,
    client: bool = False,
    not_before: datetime.datetime | None = None,
    days: int = 30,
) -> Issued:
    """A certificate for ``key``: self-signed without ``issuer``."""
    now = datetime.datetime.now(datetime.UTC)
    start = not_before or now - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.cert.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if server_names:
        sans: list[x509.GeneralName] = []
        for name in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    signer: CertificateIssuerPrivateKeyTypes = issuer.key if issuer else key
    return Issued(key, builder.sign(signer, hashes.SHA256()))


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as files.

    ``cert_dir`` is a containers-style certificate directory (``ca.crt``, and
    ``client.cert``/``client.key`` for mutual TLS) that skopeo, podman and buildah take with
    ``--cert-dir``, and docker finds under ``/etc/docker/certs.d/<host:port>/``.
    """

    root: Path
    ca: Issued
    server: Issued
    client: Issued

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.root / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.root / "client.key"

    @property
    def cert_dir(self) -> Path:
        """ca.crt only: trust the server, present no client certificate."""
        return self.root / "certs"

    @property
    def mtls_cert_dir(self) -> Path:
        """ca.crt + client.cert + client.key: trust the server and present our certificate."""
        return self.root / "certs-mtls"


def make_pki(root: Path, *, key_kind: str = "ec") -> Pki:
    ca = issue("Dockyard Test CA", new_key(key_kind), ca=True)
    server = issue(
        "127.0.0.1", new_key(key_kind), ca, server_names=["127.0.0.1", "localhost", "::1"]
    )
    client = issue("e2e-client", new_key(key_kind), ca, client=True)
    pki = Pki(root, ca, server, client)
    root.mkdir(parents=True, exist_ok=True)
    pki.ca_file.write_bytes(cert_pem(ca.cert))
    server.write(root, "server")
    client.write(root, "client")
    for directory, with_client in ((pki.cert_dir, False), (pki.mtls_cert_dir, True)):
        directory.mkdir(exist_ok=True)
        (directory / "ca.crt").write_bytes(cert_pem(ca.cert))
        if with_client:
            (directory / "client.cert").write_bytes(cert_pem(client.cert))
            (directory / "client.key").write_bytes(key_pem(client.key))
    return pki


def write_signer(directory: Path, subject: str) -> tuple[Path, Path]:
    """A token-signing key (``signing.key``, mode 600) and its self-signed certificate
    in ``directory``: what ``access.signingkey`` and ``rootcertbundle`` name."""
    issued = issue(subject, new_key("ec"))
    cert, _ = issued.write(directory, "signer")
    key = directory / "signing.key"
    key.write_bytes(key_pem(issued.key))
    key.chmod(0o600)
    return key, cert
