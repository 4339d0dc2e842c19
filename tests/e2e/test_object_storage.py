"""skopeo pushes an image through ``dockyard serve`` onto each object store's emulator and
pulls it back byte for byte: Azure on Azurite, GCS on fake-gcs-server."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.azurite import ACCOUNT, KEY, AzuriteServer
from tests.fakegcs import FakeGcsServer, service_account_info

from .clients import Skopeo
from .images import Image, layout_manifest, read_blob, read_file_from_layout
from .server import RegistryServer

pytestmark = pytest.mark.e2e


def _azure(request: pytest.FixtureRequest) -> tuple[dict[str, object], dict[str, str]]:
    azurite: AzuriteServer = request.getfixturevalue("azurite")
    section = {
        "accountname": ACCOUNT,
        "accountkey": KEY,
        "container": azurite.create_container(),
        "serviceurl": azurite.endpoint,
        "rootdirectory": "e2e",
    }
    return {"azure": section}, {}


def _gcs(request: pytest.FixtureRequest) -> tuple[dict[str, object], dict[str, str]]:
    fake_gcs: FakeGcsServer = request.getfixturevalue("fake_gcs")
    section = {
        "bucket": fake_gcs.create_bucket(),
        "credentials": service_account_info(),
        "rootdirectory": "e2e",
        "chunksize": 256 * 1024,  # several pieces per layer
    }
    return {"gcs": section}, {"STORAGE_EMULATOR_HOST": fake_gcs.endpoint}


BACKENDS = {"azure": _azure, "gcs": _gcs}


@pytest.fixture(params=sorted(BACKENDS))
def object_registry(request: pytest.FixtureRequest, tmp_path: Path) -> RegistryServer:
    storage, env = BACKENDS[request.param](request)
    server = RegistryServer("dockyard", tmp_path / "server", env=env)
    server.workdir.mkdir()
    config = {
        "version": "0.1",
        "storage": {**storage, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{server.port}"},
        "database": {"url": f"sqlite:///{server.workdir / 'dockyard.db'}"},
        "serve": {"workers": 2},  # chunks may land on either worker
    }
    server.config.write_text(yaml.safe_dump(config))
    server.start()
    request.addfinalizer(server.stop)
    return server


def test_push_then_pull_back(
    skopeo: Skopeo, object_registry: RegistryServer, repo: str, image: Image, tmp_path: Path
) -> None:
    skopeo.copy(image.ref, object_registry.docker_ref(repo, "v1"))
    for layer in image.layers:
        # Blobs are redirected to a presigned URL of the store, which serves the bytes.
        blob = object_registry.request("GET", f"/v2/{repo}/blobs/{layer.digest}")
        assert blob.status == 307
        with urllib.request.urlopen(blob.headers["location"], timeout=30) as fetched:
            assert fetched.read() == layer.blob

    out = tmp_path / "pulled"
    skopeo.copy(object_registry.docker_ref(repo, "v1"), f"oci:{out}:v1")
    digest, manifest_bytes = layout_manifest(out, "v1")
    assert digest == image.manifest_digest
    assert json.loads(manifest_bytes)["config"]["digest"] == image.config_digest
    assert read_blob(out, image.config_digest) == image.config_bytes
    assert read_file_from_layout(out, image.data_path, "v1") == image.data
