"""Fixtures of the end-to-end suite: a live registry and real, isolated clients.

Run against Dockyard (default) or against the reference, Distribution 2.8::

    .venv/bin/pytest tests/e2e -q                             # DOCKYARD_E2E_SERVER=dockyard
    DOCKYARD_E2E_SERVER=registry2 .venv/bin/pytest tests/e2e -q

Fixtures
    registry (module)     RegistryServer: .host, .url, .ref(), .docker_ref(), .docker_repo(),
                          .store, .log_path, .restart(kill=False), .request(), .get_manifest(),
                          .put_manifest(), .get_blob(), .push_blob()
    repo                  a repository name unique to the test
    image, image_index    fresh OCI layouts (images.Image / images.ImageIndex)
    client_env (session)  private HOME, DOCKER_CONFIG, REGISTRY_AUTH_FILE, policy, registries.conf
    skopeo (session)      clients.Skopeo: copy(), inspect(), inspect_raw(), list_tags(), delete()
    podman, buildah       clients.ContainersTool: tool("args", ...) with private vfs storage
    containerd, ctr       a private containerd (started on first use); clients.Ctr
    dockerd, docker       a private dockerd on that containerd; clients.Docker

A client binary that is missing fails the test that needs it (it never skips).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from .clients import (
    ClientEnv,
    Containerd,
    ContainersTool,
    Ctr,
    Docker,
    Dockerd,
    Skopeo,
    make_client_env,
    remove_tree,
)
from .images import Image, ImageIndex, build_image, build_index
from .server import SERVER_KIND, RegistryServer


def pytest_report_header(config: pytest.Config) -> str:
    return f"dockyard e2e: registry under test = {SERVER_KIND} (DOCKYARD_E2E_SERVER)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, append the tail of the server's log (and of nginx's, in front) to the report."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        server = funcargs.get("registry")
        if isinstance(server, RegistryServer):
            report.sections.append(
                (f"{server.kind} log tail ({server.log_path})", server.log_tail())
            )
        proxy = funcargs.get("nginx")  # the security suite's nginx in front of the registry
        if proxy is not None and callable(getattr(proxy, "log_tail", None)):
            report.sections.append(("nginx error log tail", proxy.log_tail()))
    return report


# --------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The registry under test, one process per test module, on a fresh store.

    Gives ``.host`` (``127.0.0.1:PORT``), ``.url``, ``.ref(repo, tag)``,
    ``.docker_ref(repo, tag)``, ``.store``, ``.log_path``, ``.restart()`` (same port and
    store), ``.request()`` and small raw-HTTP helpers.
    """
    server = RegistryServer(SERVER_KIND, tmp_path_factory.mktemp(f"{SERVER_KIND}-"))
    server.start()
    try:
        yield server
    finally:
        leftovers = server.stop()
    assert not leftovers, f"{server.kind}: processes {leftovers} outlived a SIGTERM of the server"


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name unique to this test: ``e2e/<test-name>-<random>``."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-")
    return f"e2e/{name}-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- images


@pytest.fixture
def image(tmp_path: Path) -> Image:
    """A fresh single-platform image (busybox base + random layer) in an OCI layout."""
    return build_image(tmp_path / "oci-image", "v1")


@pytest.fixture
def image_index(tmp_path: Path) -> ImageIndex:
    """A fresh linux/amd64 + linux/arm64 OCI image index in an OCI layout."""
    return build_index(tmp_path / "oci-index", "multi")


# --------------------------------------------------------------------------- clients


@pytest.fixture(scope="session")
def client_env() -> Iterator[ClientEnv]:
    """Private HOME, DOCKER_CONFIG, REGISTRY_AUTH_FILE, XDG dirs and policy for the session."""
    cenv = make_client_env()
    try:
        yield cenv
    finally:
        remove_tree(cenv.root)


@pytest.fixture(autouse=True)
def _isolated_environ(client_env: ClientEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process clients (oras, python-dxf) read HOME and DOCKER_CONFIG too."""
    env = client_env.env
    for key in (
        "HOME",
        "DOCKER_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_CONFIG_HOME",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.setenv(key, env[key])


@pytest.fixture(scope="session")
def skopeo(client_env: ClientEnv) -> Skopeo:
    return Skopeo(client_env)


@pytest.fixture(scope="session")
def podman(client_env: ClientEnv) -> Iterator[ContainersTool]:
    tool = ContainersTool("podman", client_env)
    try:
        yield tool
    finally:
        tool.cleanup()


@pytest.fixture(scope="session")
def buildah(client_env: ClientEnv) -> Iterator[ContainersTool]:
    tool = ContainersTool("buildah", client_env)
    try:
        yield tool
    finally:
        tool.cleanup()


@pytest.fixture(scope="session")
def containerd(client_env: ClientEnv) -> Iterator[Containerd]:
    """A private containerd, started on first use, stopped by PID at the end."""
    daemon = Containerd(client_env)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def ctr(containerd: Containerd) -> Ctr:
    return Ctr(containerd)


@pytest.fixture(scope="session")
def dockerd(client_env: ClientEnv, containerd: Containerd) -> Iterator[Dockerd]:
    """A private dockerd on the private containerd, started on first use."""
    daemon = Dockerd(client_env, containerd)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def docker(dockerd: Dockerd) -> Docker:
    return Docker(dockerd)
