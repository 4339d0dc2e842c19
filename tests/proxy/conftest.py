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
from tests.e2e.server import RegistryServer
from tests.remote.servers import PASSWORD, USER, configured, htpasswd_registry2, running

PREFIX = "hub"


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from running(htpasswd_registry2(tmp_path_factory.mktemp("proxy-upstream")))


def upstream_section(upstream: RegistryServer, more: str = "") -> str:
    """``proxy.upstreams`` with the one upstream under PREFIX; ``more``: keys of the entry."""
    return (
        "proxy:\n  upstreams:\n"
        f"    - prefix: {PREFIX}\n      remoteurl: {upstream.url}\n      stripprefix: true\n"
        f"      username: {USER}\n      password: {PASSWORD}\n{more}"
    )


@pytest.fixture(scope="session")
def mirror(
    upstream: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    extra = upstream_section(upstream)
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
