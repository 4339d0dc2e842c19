"""One registry:2 (htpasswd) and one Dockyard (token service) per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.server import RegistryServer
from tests.security.pki import key_pem, new_key

from .servers import htpasswd_registry2, running, token_dockyard


@pytest.fixture(scope="session")
def registry2_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from running(htpasswd_registry2(tmp_path_factory.mktemp("registry2-basic")))


@pytest.fixture(scope="session")
def dockyard_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    workdir = tmp_path_factory.mktemp("dockyard-token")
    key = workdir / "signing.key"
    key.write_bytes(key_pem(new_key("ec")))
    key.chmod(0o600)
    yield from running(token_dockyard(workdir, key))
