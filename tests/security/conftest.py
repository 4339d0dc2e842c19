"""Fixtures of the security suite: a PKI made at run time, live servers with TLS and
credentials, and the real clients of the e2e suite (imported, so both suites share them).

The suite tests Dockyard's own security features, so its servers are Dockyard whatever
``DOCKYARD_E2E_SERVER`` says; registry:2 is started explicitly where it is the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.e2e.conftest import (  # noqa: F401  (fixtures, registered by import)
    _isolated_environ,
    buildah,
    client_env,
    containerd,
    ctr,
    docker,
    dockerd,
    image,
    podman,
    pytest_runtest_makereport,
    repo,
    skopeo,
)

from .harness import SecureServer
from .pki import Pki, make_pki

USER, PASSWORD = "alice", "correct horse battery staple"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def write_htpasswd(path: Path, users: dict[str, str], cost: int = 5) -> Path:
    lines = []
    for user, password in users.items():
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
        lines.append(f"{user}:$2y${hashed[4:]}\n")
    path.write_text("".join(lines))
    return path


ServerFactory = Callable[..., SecureServer]


@pytest.fixture
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start servers with a config of the test's making (and extra environment, such as
    ``REGISTRY_*`` overrides); all are stopped at the end."""
    started: list[SecureServer] = []

    def factory(
        extra: str = "",
        *,
        pki: Pki | None = None,
        credentials: tuple[str, str] | None = None,
        tls: bool = True,
        client_cert: bool = False,
        kind: str = "dockyard",
        env: dict[str, str] | None = None,
    ) -> SecureServer:
        server = SecureServer(kind, tmp_path_factory.mktemp(f"{kind}-"), env=env or {}, pki=pki)
        server.configure(extra, tls=tls)
        server.credentials = credentials
        server.client_cert = client_cert
        started.append(server)
        server.start()
        return server

    yield factory
    for server in started:
        server.stop()
