"""A Distribution 2.8.2 upstream with htpasswd and a Dockyard mirroring it under the prefix
``hub`` (``stripprefix``, credentials), with local repositories beside; both started once
per session. Plus the e2e suite's isolated clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.clients import ClientEnv, Containerd, Docker, Dockerd
from tests.e2e.conftest import (  # noqa: F401  (fixtures, registered by import)
    _isolated_environ,
    client_env,
    containerd,
    ctr,
    podman,
    pytest_runtest_makereport,
    repo,
    skopeo,
)
from tests.e2e.server import RegistryServer, free_port
from tests.proxy.gate import Gate
from tests.remote.servers import (
    PASSWORD,
    SERVICE,
    USER,
    configured,
    htpasswd_registry2,
    running,
    token_dockyard,
)
from tests.security.pki import write_signer

PREFIX = "hub"
TOKEN_PREFIX = "tok"


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from running(htpasswd_registry2(tmp_path_factory.mktemp("proxy-upstream")))


@pytest.fixture(scope="session")
def token_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A Distribution 2.8.2 with ``auth.token``: the tokens come from a Dockyard's token
    service (its signing certificate in ``rootcertbundle``)."""
    workdir = tmp_path_factory.mktemp("proxy-token-issuer")
    key, certificate = write_signer(workdir, "proxy test token signer")
    issuer = token_dockyard(workdir, key)
    issuer.start()
    try:
        auth = (
            f"auth:\n  token:\n    realm: {issuer.url}/auth/token\n    service: {SERVICE}\n"
            f"    issuer: dockyard-sync-test\n    rootcertbundle: {certificate}\n"
        )
        yield from running(
            configured("registry2", tmp_path_factory.mktemp("proxy-token-upstream"), auth)
        )
    finally:
        issuer.stop()


def upstream_section(upstream: RegistryServer, more: str = "") -> str:
    """``proxy.upstreams`` with the one upstream under PREFIX; ``more``: keys of the entry."""
    return (
        "proxy:\n  upstreams:\n"
        f"    - prefix: {PREFIX}\n      remoteurl: {upstream.url}\n      stripprefix: true\n"
        f"      username: {USER}\n      password: {PASSWORD}\n{more}"
    )


@pytest.fixture(scope="session")
def mirror_metrics() -> str:
    """The mirror's metrics URL (its debug server)."""
    return f"http://127.0.0.1:{free_port()}/metrics"


@pytest.fixture(scope="session")
def mirror(
    upstream: RegistryServer,
    token_upstream: RegistryServer,
    mirror_metrics: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RegistryServer]:
    """Two upstreams by prefix (htpasswd, token auth, the second keeping its prefix), and
    local repositories beside them; metrics on."""
    debug = mirror_metrics.removeprefix("http://").removesuffix("/metrics")
    metrics = f"  debug:\n    addr: {debug}\n    prometheus:\n      enabled: true\n"
    extra = (
        metrics
        + upstream_section(upstream)
        + (
            # What a containerd hosts.toml mirror with the prefix in its path asks for.
            f"    - prefix: docker.io\n      remoteurl: {upstream.url}\n      stripprefix: true\n"
            f"      username: {USER}\n      password: {PASSWORD}\n"
            f"    - prefix: {TOKEN_PREFIX}\n      remoteurl: {token_upstream.url}\n"
            f"      username: {USER}\n      password: {PASSWORD}\n"
        )
    )
    yield from running(configured("dockyard", tmp_path_factory.mktemp("proxy-mirror"), extra))


@pytest.fixture(scope="session")
def compat_mirror(
    upstream: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    """registry:2's own proxy keys, unchanged: the whole registry mirrors the upstream."""
    extra = (
        f"proxy:\n  remoteurl: {upstream.url}\n  username: {USER}\n  password: {PASSWORD}\n"
        "  ttl: 168h\n"
    )
    yield from running(configured("dockyard", tmp_path_factory.mktemp("proxy-compat"), extra))


@pytest.fixture(scope="session")
def mirrored_docker(
    client_env: ClientEnv,  # noqa: F811  (the imported fixtures)
    containerd: Containerd,  # noqa: F811
    compat_mirror: RegistryServer,
) -> Iterator[Docker]:
    """A private dockerd of its own whose ``registry-mirrors`` is the compatible mirror."""
    settings = {
        "registry-mirrors": [compat_mirror.url],
        "insecure-registries": [compat_mirror.host],
        "containerd-namespace": "dockyard-proxy",
        "containerd-plugins-namespace": "dockyard-proxy-plugins",
    }
    daemon = Dockerd(client_env, containerd, "dockerd-mirrored", settings)
    daemon.start()
    try:
        yield Docker(daemon)
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def expiring_mirror(
    upstream: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    """A mirror whose cached tags expire after 1 s; the collector's review delay is off."""
    extra = upstream_section(upstream, "      ttl: 1s\n") + "gc:\n  reviewafter: 0s\n"
    yield from running(configured("dockyard", tmp_path_factory.mktemp("proxy-expiry"), extra))


@pytest.fixture(scope="session")
def gate(upstream: RegistryServer) -> Iterator[Gate]:
    """A relay in front of the upstream that stalls, cuts or corrupts one blob download."""
    relay = Gate(upstream.port)
    yield relay
    relay.close()


@pytest.fixture(scope="session")
def gated_mirror(gate: Gate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A mirror of the upstream through the gate, under PREFIX."""
    extra = (
        "proxy:\n  upstreams:\n"
        f"    - prefix: {PREFIX}\n      remoteurl: {gate.url}\n      stripprefix: true\n"
        f"      username: {USER}\n      password: {PASSWORD}\n"
    )
    yield from running(configured("dockyard", tmp_path_factory.mktemp("proxy-gated"), extra))
