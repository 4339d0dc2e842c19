"""Dockyard behind a real nginx configured with docs/nginx/dockyard.conf: TLS ends at nginx,
URLs follow what the client used, real clients push and pull, multi-GiB bodies stream."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.api.direct_body import MIN_BODY
from tests.e2e.clients import ContainersTool, Ctr, Docker, Skopeo
from tests.e2e.images import Image

from . import flows
from .conftest import PASSWORD, USER, ServerFactory, write_htpasswd
from .harness import SecureServer, basic_header
from .nginx import Nginx
from .pki import Pki, issue, key_pem, new_key

pytestmark = pytest.mark.e2e

CREDENTIALS = (USER, PASSWORD)
OCTET = "application/octet-stream"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """Dockyard on plain HTTP (loopback), htpasswd, trusting nginx's address."""
    workdir = tmp_path_factory.mktemp("behind-nginx")
    users = write_htpasswd(workdir / "htpasswd", {USER: PASSWORD})
    server = SecureServer("dockyard", workdir, credentials=CREDENTIALS)
    server.configure(
        f"auth:\n  htpasswd:\n    realm: Dockyard\n    path: {users}\n"
        "security:\n  trustedproxies: [127.0.0.1]\n"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nginx(
    registry: SecureServer, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    proxy = Nginx(tmp_path_factory.mktemp("nginx"), registry.port, pki)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def front(nginx: Nginx, pki: Pki, tmp_path: Path) -> SecureServer:
    """Raw HTTPS requests to nginx (not a server we start)."""
    return SecureServer("nginx", tmp_path, port=nginx.port, pki=pki, credentials=CREDENTIALS)


@pytest.fixture
def endpoint(nginx: Nginx, pki: Pki) -> flows.Endpoint:
    return flows.Endpoint(nginx.host, pki.cert_dir)


def test_urls_follow_what_the_client_used(front: SecureServer, nginx: Nginx) -> None:
    r = front.request("GET", "/v2/", headers={"Authorization": ""})
    assert r.status == 401
    assert r.headers["www-authenticate"] == 'Basic realm="Dockyard"'
    r = front.request("POST", "/v2/behind/nginx/blobs/uploads/")
    assert r.status == 202
    assert r.headers["location"].startswith(f"https://{nginx.host}/v2/behind/nginx/blobs/uploads/")
    data = os.urandom(3 * 1024 * 1024)
    digest = front.push_blob("behind/nginx", data)
    assert front.get_blob("behind/nginx", digest).body == data


def test_clients_that_offer_http2_get_it_from_nginx(front: SecureServer, nginx: Nginx) -> None:
    context = front.ssl_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", nginx.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"


def test_skopeo(
    skopeo: Skopeo, endpoint: flows.Endpoint, image: Image, repo: str, tmp_path: Path
) -> None:
    flows.skopeo_flow(skopeo, endpoint, CREDENTIALS, image, repo, tmp_path)


def test_podman(
    podman: ContainersTool, endpoint: flows.Endpoint, image: Image, repo: str, tmp_path: Path
) -> None:
    flows.podman_flow(podman, endpoint, CREDENTIALS, image, repo, tmp_path)


def test_docker(
    docker: Docker,
    skopeo: Skopeo,
    endpoint: flows.Endpoint,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    flows.docker_flow(docker, skopeo, endpoint, CREDENTIALS, image, repo, tmp_path)


def test_ctr(ctr: Ctr, endpoint: flows.Endpoint, image: Image, repo: str, tmp_path: Path) -> None:
    flows.ctr_flow(ctr, endpoint, CREDENTIALS, image, repo, tmp_path)


def test_oras(endpoint: flows.Endpoint, repo: str, tmp_path: Path) -> None:
    flows.oras_flow(endpoint, CREDENTIALS, repo, tmp_path)


GIB = 1024**3
MIB = 1024**2


def test_bodies_taken_off_the_socket_on_kept_alive_connections(
    front: SecureServer, nginx: Nginx
) -> None:
    """Bodies of MIN_BODY and more reach Dockyard with their Content-Length (nginx passes
    it on), so they qualify to be read straight off the socket (api/direct_body.py), after
    which Dockyard closes that upstream connection. Several in a row on one kept-alive
    client connection, each followed by a small request nginx sends on another pooled
    upstream connection: all succeed, the blob is intact, and nginx never meets a
    connection closed under it."""
    repo = "behind/nginx-direct"
    piece = MIN_BODY + 4097
    data = os.urandom(3 * piece)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    auth = {"Authorization": basic_header(*CREDENTIALS)}
    conn = front.connection(60)

    def exchange(method: str, path: str, body: bytes | None = None, **headers: str) -> bytes:
        conn.request(method, path, body=body, headers={**auth, **headers})
        response = conn.getresponse()
        payload = response.read()
        assert response.status in (200, 201, 202), (method, response.status, payload)
        location = response.getheader("Location")
        return location.encode() if location else payload

    try:
        location = exchange("POST", f"/v2/{repo}/blobs/uploads/").decode()
        for start in (0, piece):
            range_header = f"{start}-{start + piece - 1}"
            chunk = data[start : start + piece]
            moved = exchange(
                "PATCH", location, chunk, **{"Content-Type": OCTET, "Content-Range": range_header}
            )
            location = moved.decode()
            assert exchange("GET", "/v2/") == b"{}"
        sep = "&" if "?" in location else "?"
        exchange(
            "PUT", f"{location}{sep}digest={digest}", data[2 * piece :], **{"Content-Type": OCTET}
        )
        assert exchange("GET", f"/v2/{repo}/blobs/{digest}") == data
    finally:
        conn.close()
    log = (nginx.workdir / "error.log").read_text(errors="replace")
    assert "upstream prematurely closed" not in log and "while reading upstream" not in log


def test_multi_gib_upload_streams_through(
    registry: SecureServer, nginx: Nginx, pki: Pki, front: SecureServer
) -> None:
    """A 2.25 GiB chunked PATCH: Dockyard has most of it on disk while the client is still
    sending (nginx neither limits nor buffers the body), and the blob is intact."""
    size = 2 * GIB + GIB // 4
    block = os.urandom(MIB)
    repo = "behind/nginx-big"
    r = front.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert r.status == 202
    location = "/" + r.headers["location"].split("/", 3)[3]
    uploads = registry.store / "docker" / "registry" / "v2" / "repositories" / repo / "_uploads"
    seen_on_disk: list[int] = []
    hasher = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for index in range(size // MIB):
            if index == size // MIB - 64:  # 64 MiB before the end of the body
                seen_on_disk.append(sum(f.stat().st_size for f in uploads.rglob("data")))
                seen_on_disk.append(sum(1 for _ in nginx.body_temp.rglob("*") if _.is_file()))
            chunk = block[:-8] + index.to_bytes(8, "big")
            hasher.update(chunk)
            yield chunk

    conn = http.client.HTTPSConnection(
        "127.0.0.1", nginx.port, timeout=600, context=front.ssl_context()
    )
    try:
        conn.request(
            "PATCH",
            location,
            body=body(),
            headers={
                "Authorization": basic_header(*CREDENTIALS),
                "Content-Type": "application/octet-stream",
            },
            encode_chunked=True,
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 202, response.status
        location = "/" + response.getheader("Location", "").split("/", 3)[3]
    finally:
        conn.close()
    on_disk, spooled = seen_on_disk
    assert on_disk >= 1 * GIB, f"only {on_disk} bytes had reached Dockyard: nginx buffered"
    assert spooled == 0, "nginx spooled the request body to its disk"
    digest = "sha256:" + hasher.hexdigest()
    sep = "&" if "?" in location else "?"
    r = front.request("PUT", f"{location}{sep}digest={digest}", timeout=600)
    assert r.status == 201, r.body
    r = front.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert r.status == 200
    assert int(r.headers["content-length"]) == size
    # read it back through nginx: the right bytes at the far end
    r = front.request(
        "GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={size - MIB}-{size - 1}"}
    )
    assert r.status == 206
    assert r.body == block[:-8] + (size // MIB - 1).to_bytes(8, "big")
    front.request("DELETE", f"/v2/{repo}/blobs/{digest}")


def test_token_service_behind_nginx(
    make_server: ServerFactory,
    pki: Pki,
    skopeo: Skopeo,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    """The realm Dockyard announces through nginx is nginx's https URL, and the flow works."""
    from .test_token_service_live import PASSWORDS, SERVICE, token_service_config

    issued = issue("dockyard token signer", new_key("ec"))
    signing_key = tmp_path / "signing.key"
    signing_key.write_bytes(key_pem(issued.key))
    server = make_server(
        token_service_config(tmp_path, signing_key) + "security:\n  trustedproxies: [127.0.0.1]\n"
    )
    proxy = Nginx(tmp_path / "nginx", server.port, pki)
    proxy.start()
    try:
        front = SecureServer("nginx", tmp_path, port=proxy.port, pki=pki)
        r = front.request("GET", "/v2/")
        assert r.status == 401
        assert r.headers["www-authenticate"] == (
            f'Bearer realm="https://{proxy.host}/auth/token",service="{SERVICE}"'
        )
        endpoint = flows.Endpoint(proxy.host, pki.cert_dir)
        flows.skopeo_flow(
            skopeo, endpoint, ("alice", PASSWORDS["alice"]), image, f"team/{repo}", tmp_path
        )
    finally:
        proxy.stop()
