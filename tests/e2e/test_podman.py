"""podman: push, pull, and manifest lists (create / add / push --all)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .clients import ContainersTool, Skopeo
from .images import (
    Image,
    ImageIndex,
    layout_manifest,
    read_file_from_layout,
    sha256_digest,
    uncompressed_digest,
)
from .server import RegistryServer

pytestmark = pytest.mark.e2e

TLS = "--tls-verify=false"


def _local_config_digest(podman: ContainersTool, ref: str) -> str:
    inspected = podman("image", "inspect", "--format", "{{.Id}}", ref)
    return "sha256:" + str(inspected.stdout).strip()


def test_push_then_pull(
    podman: ContainersTool,
    skopeo: Skopeo,
    registry: RegistryServer,
    repo: str,
    image: Image,
    tmp_path: Path,
) -> None:
    local = f"localhost/{repo}:v1"
    image_id = podman("pull", "--quiet", image.ref).stdout.split()[-1]
    assert "sha256:" + image_id == image.config_digest
    podman("tag", image_id, local)
    podman("push", "--quiet", TLS, local, registry.docker_ref(repo, "v1"))

    # podman rewrites the manifest and recompresses the layers it stored uncompressed:
    # the config is byte-identical, and the layers uncompress to the same diff_ids
    config = skopeo.inspect_raw(registry.docker_ref(repo, "v1"), config=True)
    assert config == image.config_bytes
    manifest = json.loads(skopeo.inspect_raw(registry.docker_ref(repo, "v1")))
    assert manifest["config"]["digest"] == image.config_digest
    pushed = [registry.get_blob(repo, layer["digest"]).body for layer in manifest["layers"]]
    assert [layer["digest"] for layer in manifest["layers"]] == [sha256_digest(b) for b in pushed]
    assert [uncompressed_digest(b) for b in pushed] == image.diff_ids

    podman("rmi", "--force", image_id)
    assert podman("images", "--quiet").stdout.strip() == ""

    podman("pull", "--quiet", TLS, registry.ref(repo, "v1"))
    assert _local_config_digest(podman, registry.ref(repo, "v1")) == image.config_digest
    inspect = json.loads(podman("image", "inspect", registry.ref(repo, "v1")).stdout)[0]
    assert inspect["RootFS"]["Layers"] == image.diff_ids
    assert inspect["Architecture"] == "amd64"

    # the content survives a round trip through podman's storage
    out = tmp_path / "exported"
    podman("push", "--quiet", registry.ref(repo, "v1"), f"oci:{out}:v1")
    assert read_file_from_layout(out, image.data_path, "v1") == image.data
    podman("rmi", "--force", registry.ref(repo, "v1"))


def test_pull_by_digest(
    podman: ContainersTool, skopeo: Skopeo, registry: RegistryServer, repo: str, image: Image
) -> None:
    skopeo.copy(image.ref, registry.docker_ref(repo, "v1"))
    ref = registry.ref(repo, image.manifest_digest)
    podman("pull", "--quiet", TLS, ref)
    assert _local_config_digest(podman, ref) == image.config_digest
    digests = podman("image", "inspect", "--format", "{{.Digest}}", ref).stdout.strip()
    assert digests == image.manifest_digest
    podman("rmi", "--force", ref)


def test_manifest_list_push_all(
    podman: ContainersTool,
    skopeo: Skopeo,
    registry: RegistryServer,
    repo: str,
    image_index: ImageIndex,
    tmp_path: Path,
) -> None:
    amd64 = image_index.children["linux/amd64"]
    arm64 = image_index.children["linux/arm64"]
    # the children go through the registry first: `manifest add` reads them from there
    skopeo.copy(image_index.ref, registry.docker_ref(repo, "src"), "--all")

    name = f"localhost/{repo}-list:latest"
    podman("manifest", "create", name)
    for child in (amd64, arm64):
        podman("manifest", "add", TLS, name, registry.docker_ref(repo, child.manifest_digest))
    listed = json.loads(podman("manifest", "inspect", name).stdout)
    assert {m["digest"] for m in listed["manifests"]} == {
        amd64.manifest_digest,
        arm64.manifest_digest,
    }

    podman("manifest", "push", "--all", TLS, name, registry.docker_ref(repo, "list"))

    raw = json.loads(skopeo.inspect_raw(registry.docker_ref(repo, "list")))
    assert raw["schemaVersion"] == 2
    by_arch = {m["platform"]["architecture"]: m for m in raw["manifests"]}
    assert set(by_arch) == {"amd64", "arm64"}
    for arch, child in (("amd64", amd64), ("arm64", arm64)):
        entry = by_arch[arch]
        r = registry.get_manifest(repo, entry["digest"])
        assert r.status == 200, (arch, r.status)
        manifest = json.loads(r.body)
        assert manifest["config"]["digest"] == child.config_digest
        assert [layer["digest"] for layer in manifest["layers"]] == child.layer_digests

    out = tmp_path / "pulled"
    skopeo.copy(registry.docker_ref(repo, "list"), f"oci:{out}:list", "--all")
    digest, _ = layout_manifest(out, "list")
    assert digest == skopeo.inspect(registry.docker_ref(repo, "list"))["Digest"]
    podman("manifest", "rm", name)
