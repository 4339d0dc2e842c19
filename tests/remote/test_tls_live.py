"""``dockyard sync`` to a registry:2 serving TLS with a private CA and htpasswd: the CA is
trusted only when given (``--dest-ca-file``), and the credentials come from Docker's
config.json."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.remote import RemoteRegistry
from tests.e2e.server import REPO_ROOT
from tests.security.harness import SecureServer
from tests.security.pki import Pki, make_pki

from .servers import PASSWORD, USER, CredentialedServer, running, write_htpasswd
from .test_client_live import push_small_image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("sync-pki"))


@pytest.fixture(scope="module")
def tls_registry2(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[SecureServer]:
    workdir = tmp_path_factory.mktemp("registry2-tls")
    server = SecureServer("registry2", workdir, pki=pki)
    users = write_htpasswd(workdir / "htpasswd")
    server.configure(f"auth:\n  htpasswd:\n    realm: sync-tls\n    path: {users}\n")
    yield from running(server)  # type: ignore[misc]


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO_ROOT)


async def test_a_private_ca_is_trusted_when_given_and_docker_config_supplies_credentials(
    dockyard_token: CredentialedServer, tls_registry2: SecureServer, pki: Pki, tmp_path: Path
) -> None:
    repo = f"remote/tls-{secrets.token_hex(3)}"
    body = await push_small_image(dockyard_token, repo)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {tls_registry2.host: {"auth": auth}}})
    )
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path),
           "DOCKYARD_SRC_CREDS": f"{USER}:{PASSWORD}"}  # fmt: skip
    argv = [sys.executable, "-m", "dockyard", "sync", "--quiet", f"{dockyard_token.url}/{repo}",
            f"{tls_registry2.host}/{repo}"]  # fmt: skip

    untrusted = await asyncio.to_thread(run, argv, env)
    assert untrusted.returncode == 3, untrusted.stderr
    assert "certificate" in untrusted.stderr.lower()

    trusted = await asyncio.to_thread(run, [*argv, "--dest-ca-file", str(pki.ca_file)], env)
    assert trusted.returncode == 0, trusted.stderr
    assert "1 images, 1 copied" in trusted.stdout
    async with RemoteRegistry(tls_registry2.url, username=USER, password=PASSWORD,
                              ca_file=str(pki.ca_file)) as client:  # fmt: skip
        assert (await client.get_manifest(repo, "v1")).body == body
