"""``http.tls.letsencrypt`` against a real ACME server (pebble): Dockyard obtains a
certificate at start by answering HTTP-01, curl and skopeo trust it through pebble's root
and push and pull over TLS, every worker serves the renewed certificate without a restart,
a restart reuses the cache, and the failures (CA down, wrong host, damaged cache) stop
``serve`` with one clear line, or serve the cached certificate while it is valid."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from dockyard.letsencrypt.cache import CacheFile
from tests.e2e.clients import Skopeo
from tests.e2e.images import Image
from tests.e2e.server import free_port, wait_for, write_config
from tests.pebble import Pebble

from . import flows
from .harness import SecureServer

pytestmark = pytest.mark.e2e

HOST = "localhost"  # resolves to 127.0.0.1 here, for pebble as for the clients
# pebble validates on fixed ports: every server of the module runs on these (one at a time)
TLS_PORT, HTTP01_PORT = free_port(), free_port()


@dataclass
class AcmeServer(SecureServer):
    """A Dockyard on ``localhost:PORT`` whose certificate comes from ``pebble``."""

    pebble: Pebble | None = None
    workers: int = 2

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def cachefile(self) -> Path:
        return self.workdir / "letsencrypt.json"

    def configure_acme(
        self, *, hosts: str = HOST, directory: str | None = None, http01: bool = False
    ) -> None:
        """registry:2's keys (TLS-ALPN-01 on the TLS port); ``http01``: HTTP-01 instead."""
        assert self.pebble is not None
        httpaddr = f"      httpaddr: 127.0.0.1:{self.pebble.http_port}\n" if http01 else ""
        self.store.mkdir(parents=True, exist_ok=True)
        write_config(
            self.config,
            store=self.store,
            port=self.port,
            extra=(
                "  tls:\n    letsencrypt:\n"
                f"      cachefile: {self.cachefile}\n      email: ops@example.com\n"
                f"      hosts: [{hosts}]\n"
                f"      directoryurl: {directory or self.pebble.directory_url}\n"
                f"{httpaddr}serve:\n  workers: {self.workers}\n"
            ),
        )
        self.env = {"REQUESTS_CA_BUNDLE": str(self.pebble.https_ca)}

    def trusted(self) -> ssl.SSLContext:
        assert self.pebble is not None
        return ssl.create_default_context(cadata=self.pebble.root_pem().decode())

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPSConnection(HOST, self.port, timeout=timeout, context=self.trusted())

    def served_serial(self, context: ssl.SSLContext | None = None) -> int:
        """The serial number of the certificate one new TLS connection is served."""
        context = context or self.trusted()
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number

    def serve_once(self) -> subprocess.CompletedProcess[str]:
        """``dockyard serve`` expected to stop at start: its exit status and output."""
        return subprocess.run(
            [sys.executable, "-m", "dockyard", "serve", str(self.config)],
            capture_output=True, text=True, timeout=120, env=self.environment(),
        )  # fmt: skip


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    server = make_pebble(tmp_path_factory, validity=3600)
    server.start()
    try:
        yield server
    finally:
        server.stop()


#: Makes an AcmeServer that gets its certificate from the pebble given.
MakeAcme = Callable[..., AcmeServer]


def make_pebble(tmp_path_factory: pytest.TempPathFactory, validity: int) -> Pebble:
    """A pebble validating on this module's ports (the servers' TLS port is one port)."""
    directory = tmp_path_factory.mktemp("pebble")
    return Pebble(directory, http_port=HTTP01_PORT, tls_port=TLS_PORT, validity=validity)


@pytest.fixture
def acme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeAcme]:
    """Makes AcmeServers; all are stopped at the end of the test."""
    made: list[AcmeServer] = []

    def make(pebble: Pebble, **kw: object) -> AcmeServer:
        workdir = tmp_path_factory.mktemp("acme-")
        server = AcmeServer("dockyard", workdir, port=TLS_PORT, pebble=pebble)
        server.configure_acme(**kw)  # type: ignore[arg-type]
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


def cert_dir(server: AcmeServer, tmp_path: Path) -> Path:
    """A containers certificate directory trusting pebble's root."""
    assert server.pebble is not None
    directory = tmp_path / "certs"
    directory.mkdir(exist_ok=True)
    (directory / "ca.crt").write_bytes(server.pebble.root_pem())
    return directory


def test_obtains_serves_and_reuses_a_certificate(
    acme_server: MakeAcme,
    pebble: Pebble,
    skopeo: Skopeo,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    server = acme_server(pebble)
    server.start()
    assert "certificate for localhost obtained from" in server.log_text()
    # curl trusts it through pebble's root, and only through it
    certs = cert_dir(server, tmp_path)
    curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}"]
    url = f"{server.url}/v2/"
    ok = subprocess.run([*curl, "--cacert", str(certs / "ca.crt"), url], capture_output=True)
    assert ok.stdout == b"200", ok.stderr
    refused = subprocess.run([*curl, url], capture_output=True)
    assert refused.returncode == 60  # "peer certificate cannot be authenticated"
    # skopeo pushes and pulls over TLS, verifying the certificate
    flows.skopeo_flow(skopeo, flows.Endpoint(f"{HOST}:{server.port}", certs), None, image, repo,
                      tmp_path)  # fmt: skip
    # the cache holds the account and the certificate, for the owner only
    assert server.cachefile.stat().st_mode & 0o777 == 0o600
    serial = server.served_serial()
    # a restart reuses both, without asking the CA
    server.restart()
    assert server.served_serial() == serial
    assert "using the cached certificate for localhost" in server.log_text()


def test_http01_on_httpaddr_which_answers_only_challenges(
    acme_server: MakeAcme, pebble: Pebble
) -> None:
    server = acme_server(pebble, http01=True)
    server.start()
    assert server.served_serial()
    conn = http.client.HTTPConnection("127.0.0.1", pebble.http_port, timeout=10)
    try:
        conn.request("GET", "/v2/")
        response = conn.getresponse()
        assert response.status == 404
        assert b"the registry is on HTTPS" in response.read()
        conn.request("GET", "/.well-known/acme-challenge/unknown-token")
        assert conn.getresponse().status == 404
    finally:
        conn.close()


def test_ca_down_at_start(acme_server: MakeAcme, pebble: Pebble) -> None:
    dead = f"https://{HOST}:{free_port()}/dir"
    # with nothing cached: serve stops with the reason, before forking any worker
    server = acme_server(pebble, directory=dead)
    result = server.serve_once()
    assert result.returncode == 1
    assert (
        f"http.tls.letsencrypt: no certificate for localhost from {dead}: "
        f"cannot reach the ACME directory {dead}"
    ) in result.stderr
    assert "worker" not in result.stderr
    # with a valid certificate cached: it is served (the CA is not needed until renewal)
    first = acme_server(pebble)
    first.start()
    serial = first.served_serial()
    first.stop()
    shutil.copy(first.cachefile, server.cachefile)
    server.start()
    assert server.served_serial() == serial


def test_wrong_host_stops_startup(acme_server: MakeAcme, pebble: Pebble) -> None:
    server = acme_server(pebble, hosts="registry.invalid")
    result = server.serve_once()
    assert result.returncode == 1
    assert "http.tls.letsencrypt: no certificate for registry.invalid" in result.stderr
    assert "the CA could not validate registry.invalid" in result.stderr
    # the account key is kept for the next attempt; no certificate, no challenge left
    contents = CacheFile(server.cachefile).read()
    assert contents.account_key_pem is not None
    assert contents.certificate is None and not contents.challenges


def test_unusable_cache_file_stops_startup(acme_server: MakeAcme, pebble: Pebble) -> None:
    server = acme_server(pebble)
    for content, mode, expected in (
        (b"not json at all", 0o600, "not a Dockyard Let's Encrypt cache file"),
        (b'{"format": "dockyard-letsencrypt-cache", "version": 1}', 0o600, "damaged"),
        (b'{"format": "dockyard-letsencrypt-cache", "version": 1}', 0o644, "others may read it"),
    ):
        server.cachefile.write_bytes(content)
        server.cachefile.chmod(mode)
        result = server.serve_once()
        assert result.returncode == 1, result.stderr
        assert f"http.tls.letsencrypt.cachefile: {server.cachefile}: " in result.stderr
        assert expected in result.stderr
        assert server.cachefile.read_bytes() == content  # left as it was


@pytest.mark.parametrize("http01", [False, True], ids=["tls-alpn-01", "http-01"])
def test_renewal_while_serving_reaches_every_worker(
    http01: bool,
    acme_server: MakeAcme,
    tmp_path_factory: pytest.TempPathFactory,
    skopeo: Skopeo,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    # certificates valid for 12 s: due for renewal 8 s after they are issued, which leaves
    # the start (the first certificate is issued before it serves) several seconds
    short = make_pebble(tmp_path_factory, validity=12)
    short.start()
    try:
        server = acme_server(short, http01=http01)
        server.start()
        first = server.served_serial()
        workers = server.worker_pids(expect=2)
        wait_for(
            lambda: all(_renewed_in(server, pid) for pid in workers) or None,
            "both workers serving the renewed certificate",
            timeout=60,
        )
        # no restart: the same processes, and every new connection gets the new certificate
        assert server.worker_pids() == workers
        serials = {server.served_serial() for _ in range(12)}
        assert first not in serials and len(serials) == 1
        certs = cert_dir(server, tmp_path)
        endpoint = flows.Endpoint(f"{HOST}:{server.port}", certs)
        flows.skopeo_flow(skopeo, endpoint, None, image, repo, tmp_path)
    finally:
        short.stop()


def _renewed_in(server: AcmeServer, pid: int) -> bool:
    return any(
        "serving the renewed certificate" in line and line.endswith(f"in pid {pid}")
        for line in server.log_text().splitlines()
    )
