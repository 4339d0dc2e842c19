"""Native TLS: versions, cipher suites, mutual TLS, plain HTTP refused, and every real client
logging in with htpasswd and pushing and pulling over TLS, trusting a CA made at run time."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.clients import ClientError, ContainersTool, Ctr, Docker, Skopeo
from tests.e2e.images import Image

from . import flows
from .conftest import PASSWORD, USER, ServerFactory, write_htpasswd
from .harness import SecureServer, raw_exchange
from .pki import Pki, issue, make_pki, new_key

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[SecureServer]:
    """TLS with the test CA, htpasswd with one user."""
    workdir = tmp_path_factory.mktemp("tls-htpasswd")
    users = write_htpasswd(workdir / "htpasswd", {USER: PASSWORD})
    server = SecureServer("dockyard", workdir, pki=pki, credentials=(USER, PASSWORD))
    server.configure(f"auth:\n  htpasswd:\n    realm: Dockyard TLS\n    path: {users}\n")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def endpoint(registry: SecureServer, pki: Pki) -> flows.Endpoint:
    return flows.Endpoint(registry.host, pki.cert_dir)


def tls_client(pki: Pki, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    for name, version in versions.items():
        setattr(context, name, version)
    return context


def get(port: int, context: ssl.SSLContext, path: str = "/v2/") -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


# ---- the TLS endpoint itself -------------------------------------------------------------


def test_https_works_and_plain_http_gets_no_answer(registry: SecureServer, pki: Pki) -> None:
    assert registry.request("GET", "/v2/").status == 200
    r = registry.request("GET", "/v2/", headers={"Authorization": ""})
    assert r.status == 401
    assert r.headers["www-authenticate"] == 'Basic realm="Dockyard TLS"'
    # what a plain-HTTP client sees: the TLS handshake fails and the connection closes,
    # without a single byte of HTTP (nothing is served in the clear)
    answer = raw_exchange(registry.port, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not answer.startswith(b"HTTP/")
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        conn.request("GET", "/v2/", headers={"Authorization": "Basic YWxpY2U6eA=="})
        conn.getresponse()
    conn.close()
    # and a client that does not trust the CA refuses the server
    with pytest.raises(ssl.SSLCertVerificationError):
        get(registry.port, ssl.create_default_context())


def test_large_blobs_and_ranges_cross_tls_intact(registry: SecureServer) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)
    digest = registry.push_blob("tls/big", data)
    assert registry.get_blob("tls/big", digest).body == data
    r = registry.request(
        "GET", f"/v2/tls/big/blobs/{digest}", headers={"Range": "bytes=3000000-4999999"}
    )
    assert r.status == 206
    assert r.body == data[3_000_000:5_000_000]


def test_only_http11_is_offered(registry: SecureServer, pki: Pki) -> None:
    context = tls_client(pki)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", registry.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "http/1.1"


def test_minimum_tls_version(make_server: ServerFactory, pki: Pki) -> None:
    server = make_server(
        "  tls:\n"
        f"    certificate: {pki.server_cert}\n    key: {pki.server_key}\n"
        "    minimumtls: tls1.3\n",
        pki=pki,
        tls=False,
    )
    assert get(server.port, tls_client(pki, minimum_version=ssl.TLSVersion.TLSv1_3)) == 200
    with pytest.raises(ssl.SSLError):
        get(server.port, tls_client(pki, maximum_version=ssl.TLSVersion.TLSv1_2))


def test_default_is_tls12_with_forward_secret_aead_suites(registry: SecureServer, pki: Pki) -> None:
    tls12 = tls_client(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    assert get(registry.port, tls12) == 401
    cbc = tls_client(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA")  # forward secret, but not AEAD
    with pytest.raises(ssl.SSLError):
        get(registry.port, cbc)


def test_cipher_suites(make_server: ServerFactory, pki: Pki) -> None:
    server = make_server(
        "  tls:\n"
        f"    certificate: {pki.server_cert}\n    key: {pki.server_key}\n"
        "    ciphersuites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n",
        pki=pki,
        tls=False,
    )
    allowed = tls_client(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    allowed.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    assert get(server.port, allowed) == 200
    other = tls_client(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    other.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    with pytest.raises(ssl.SSLError):
        get(server.port, other)
    # TLS 1.3 suites are not chosen by the list, as in Go
    assert get(server.port, tls_client(pki, minimum_version=ssl.TLSVersion.TLSv1_3)) == 200


def _mtls_config(pki: Pki, mode: str = "") -> str:
    return (
        "  tls:\n"
        f"    certificate: {pki.server_cert}\n    key: {pki.server_key}\n"
        f"    clientcas: [{pki.ca_file}]\n" + (f"    clientauth: {mode}\n" if mode else "")
    )


def _status(server: SecureServer, client_cert: bool) -> int | str:
    before, server.client_cert = server.client_cert, client_cert
    try:
        return server.request("GET", "/v2/").status
    except (ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected) as exc:
        return type(exc).__name__
    finally:
        server.client_cert = before


def test_mutual_tls_required(
    make_server: ServerFactory, pki: Pki, skopeo: Skopeo, image: Image, repo: str, tmp_path: Path
) -> None:
    server = make_server(_mtls_config(pki), pki=pki, tls=False, client_cert=True)
    assert _status(server, client_cert=True) == 200
    assert _status(server, client_cert=False) != 200
    # a certificate from another CA is refused too
    stranger = make_pki(tmp_path / "stranger")
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(str(stranger.client_cert), str(stranger.client_key))
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
        get(server.port, context)
    # skopeo with a client certificate in its cert dir pushes and pulls; without, it fails
    endpoint = flows.Endpoint(server.host, pki.mtls_cert_dir)
    flows.skopeo_flow(skopeo, endpoint, None, image, repo, tmp_path)
    with pytest.raises(ClientError):
        skopeo("inspect", f"--cert-dir={pki.cert_dir}", f"docker://{endpoint.ref(repo)}")


def test_mutual_tls_if_given(make_server: ServerFactory, pki: Pki, tmp_path: Path) -> None:
    server = make_server(_mtls_config(pki, "verify-client-cert-if-given"), pki=pki, tls=False)
    assert _status(server, client_cert=False) == 200
    assert _status(server, client_cert=True) == 200
    stranger = make_pki(tmp_path / "stranger")
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(str(stranger.client_cert), str(stranger.client_key))
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
        get(server.port, context)


def test_unusable_certificate_stops_startup(tmp_path: Path, pki: Pki) -> None:
    other = issue("other", new_key())
    other_cert, _ = other.write(tmp_path, "other")
    config = tmp_path / "config.yml"
    for certificate, key, expected in (
        (tmp_path / "missing.crt", pki.server_key, "http.tls.certificate: "),
        (other_cert, pki.server_key, "cannot load"),
    ):
        config.write_text(
            "version: 0.1\nstorage:\n  inmemory:\nhttp:\n  addr: 127.0.0.1:0\n"
            f"  tls:\n    certificate: {certificate}\n    key: {key}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        result = subprocess.run(
            [sys.executable, "-m", "dockyard", "serve", str(config)],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert result.returncode == 1
        assert expected in result.stderr


# ---- every real client: log in (htpasswd) and push and pull over TLS ----------------------


def test_skopeo(
    skopeo: Skopeo, endpoint: flows.Endpoint, image: Image, repo: str, tmp_path: Path
) -> None:
    flows.skopeo_flow(skopeo, endpoint, (USER, PASSWORD), image, repo, tmp_path)
    with pytest.raises(ClientError):  # no login, no push
        skopeo("copy", "--quiet", *endpoint.tls("dest-"), image.ref,
               f"docker://{endpoint.ref(repo, 'anon')}")  # fmt: skip


def test_podman(
    podman: ContainersTool, endpoint: flows.Endpoint, image: Image, repo: str, tmp_path: Path
) -> None:
    flows.podman_flow(podman, endpoint, (USER, PASSWORD), image, repo, tmp_path)


def test_podman_wrong_password(
    podman: ContainersTool, endpoint: flows.Endpoint, tmp_path: Path
) -> None:
    authfile = tmp_path / "auth.json"
    authfile.write_text("{}")
    with pytest.raises(ClientError) as caught:
        podman("login", "--authfile", str(authfile), *endpoint.tls(), "-u", USER,
               "--password-stdin", endpoint.host, input="not the password")  # fmt: skip
    assert "invalid username/password" in caught.value.stderr


def test_buildah(
    buildah: ContainersTool, endpoint: flows.Endpoint, repo: str, tmp_path: Path
) -> None:
    flows.buildah_flow(buildah, endpoint, (USER, PASSWORD), repo, tmp_path)


def test_docker(
    docker: Docker,
    skopeo: Skopeo,
    endpoint: flows.Endpoint,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    flows.docker_flow(docker, skopeo, endpoint, (USER, PASSWORD), image, repo, tmp_path)


def test_ctr(ctr: Ctr, endpoint: flows.Endpoint, image: Image, repo: str, tmp_path: Path) -> None:
    flows.ctr_flow(ctr, endpoint, (USER, PASSWORD), image, repo, tmp_path)


def test_oras(endpoint: flows.Endpoint, repo: str, tmp_path: Path) -> None:
    flows.oras_flow(endpoint, (USER, PASSWORD), repo, tmp_path)
