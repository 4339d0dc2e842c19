"""``dockyard sync`` with artifacts that oras (the Python SDK) pushed: an artifact with
its own config media type and files, and a signature artifact whose ``subject`` is it,
arrive in a Distribution 2.8.2 with the same digests, and oras pulls the same files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import oras.client
import oras.oci
import pytest

from tests.e2e.images import sha256_digest
from tests.e2e.server import RegistryServer
from tests.sync.test_sync_live import referrers, sync

pytestmark = pytest.mark.e2e

ARTIFACT_CONFIG = "application/vnd.example.model.config.v1+json"


@pytest.fixture
def oras_clients(
    dockyard_server: RegistryServer, registry2_server: RegistryServer
) -> Iterator[tuple[oras.client.OrasClient, oras.client.OrasClient]]:
    clients = [
        oras.client.OrasClient(hostname=s.host, insecure=True)
        for s in (dockyard_server, registry2_server)
    ]
    try:
        yield clients[0], clients[1]
    finally:
        for client in clients:
            client.session.close()


def push(client: oras.client.OrasClient, target: str, files: list[Path],
         config: Path, subject: oras.oci.Subject | None = None) -> str:  # fmt: skip
    response = client.push(
        target=target, files=[str(f) for f in files], disable_path_validation=True,
        manifest_config=f"{config}:{ARTIFACT_CONFIG}", subject=subject, quiet=True,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.headers["Docker-Content-Digest"])


def test_oras_artifacts_and_their_referrers_sync_to_registry2(
    dockyard_server: RegistryServer, registry2_server: RegistryServer,
    oras_clients: tuple[oras.client.OrasClient, oras.client.OrasClient],
    tmp_path: Path, repo: str,
) -> None:  # fmt: skip
    source, dest = oras_clients
    weights, readme, config = tmp_path / "weights.bin", tmp_path / "README.md", tmp_path / "c"
    weights.write_bytes(bytes(range(256)) * 512)
    readme.write_text("a model, as an OCI artifact\n")
    config.write_text('{"framework": "none"}')
    name = f"{repo}/model"
    artifact = push(source, f"{dockyard_server.host}/{name}:v1", [weights, readme], config)
    served = dockyard_server.get_manifest(name, "v1")
    subject = oras.oci.Subject(
        mediaType=served.headers["content-type"].split(";")[0],
        digest=artifact,
        size=len(served.body),
    )
    signature_file = tmp_path / "signature.json"
    signature_file.write_text('{"signed": true}')
    signature = push(
        source, f"{dockyard_server.host}/{name}:sig", [signature_file], config, subject
    )

    summary = sync(dockyard_server, registry2_server, repo, f"oras/{repo}", "--tags", "v1")
    assert "1 copied" in summary and "0 errors" in summary, summary

    copied = f"oras/{name}"
    at_dest = registry2_server.get_manifest(copied, "v1")
    assert at_dest.status == 200 and at_dest.body == served.body
    assert sha256_digest(at_dest.body) == artifact
    assert signature in referrers(registry2_server, copied, artifact)
    pulled = dest.pull(target=f"{registry2_server.host}/{copied}:v1", outdir=str(tmp_path / "out"))
    by_name = {Path(p).name: Path(p).read_bytes() for p in pulled}
    assert by_name == {"weights.bin": weights.read_bytes(), "README.md": readme.read_bytes()}
