"""registry:2's ``garbage-collect`` run on a store Dockyard serves.

Dockyard writes no registry:2 link files, so registry:2's collector takes every blob pushed
through Dockyard for garbage and deletes its bytes. That must never turn into a registry
that answers 500 for ever: the blob becomes unknown (404), clients upload it again, and the
image is whole again. (The docs say never to run it; this is the failure mode if one does.)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .clients import Skopeo
from .images import Image, read_file_from_layout
from .server import SERVER_KIND, RegistryServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(SERVER_KIND != "dockyard", reason="Dockyard's recovery, not registry:2's"),
]


def registry2_garbage_collect(config: Path, env: dict[str, str]) -> str:
    binary = shutil.which("docker-registry", path="/usr/bin:/usr/sbin")
    assert binary is not None, "docker-registry (Debian package) is not installed"
    done = subprocess.run(
        [binary, "garbage-collect", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_blobs_deleted_by_registry2_gc_are_unknown_then_pushed_again(
    skopeo: Skopeo, registry: RegistryServer, repo: str, image: Image, tmp_path: Path
) -> None:
    skopeo.copy(image.ref, registry.docker_ref(repo, "v1"))
    layer = image.layers[-1].digest
    # A store taken over from registry:2 has its repositories tree; registry:2's collector
    # refuses to run on a store without one.
    (registry.store / "docker/registry/v2/repositories").mkdir(parents=True, exist_ok=True)
    output = registry2_garbage_collect(registry.config, registry.environment())
    assert "blob eligible for deletion" in output
    data = registry.store / "docker/registry/v2/blobs/sha256" / layer[7:9] / layer[7:] / "data"
    assert not data.exists(), "registry:2 should have deleted the Dockyard-pushed layer"

    for method in ("HEAD", "GET"):
        r = registry.request(method, f"/v2/{repo}/blobs/{layer}")
        assert r.status == 404, (method, r.status, r.body)
    r = registry.request("GET", f"/v2/{repo}/blobs/{layer}")
    assert b"BLOB_UNKNOWN" in r.body
    assert "marked missing" in registry.log_path.read_text()
    assert "Traceback" not in registry.log_path.read_text()

    # The client sees the blob missing, uploads it again, and the image is whole.
    skopeo.copy(image.ref, registry.docker_ref(repo, "v2"))
    assert registry.get_blob(repo, layer).body == image.layers[-1].blob
    out = tmp_path / "pulled"
    skopeo.copy(registry.docker_ref(repo, "v1"), f"oci:{out}:v1")
    assert read_file_from_layout(out, image.data_path, "v1") == image.data
