"""docker (Debian's docker.io 20.10) through a private dockerd: load, push, rmi, pull."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .clients import ClientError, Docker, Skopeo
from .images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    Image,
    ImageIndex,
    read_file_from_layers,
    sha256_digest,
    uncompressed_digest,
)
from .server import RegistryServer

pytestmark = pytest.mark.e2e


def _load(docker: Docker, skopeo: Skopeo, image: Image, tmp_path: Path, name: str) -> str:
    """docker load of a docker-archive made by skopeo from the OCI layout; returns the ID."""
    archive = tmp_path / "image.tar"
    skopeo.copy(image.ref, f"docker-archive:{archive}:{name}", preserve_digests=False)
    out = docker("load", "--input", str(archive)).stdout
    assert f"Loaded image: {name}" in out, out
    return docker.image_id(name)


def test_load_push_rmi_pull(
    docker: Docker,
    skopeo: Skopeo,
    registry: RegistryServer,
    repo: str,
    image: Image,
    tmp_path: Path,
) -> None:
    image_id = _load(docker, skopeo, image, tmp_path, f"dockyard-e2e/{repo}:loaded")
    # docker's image ID is the config digest: the config crossed skopeo unchanged
    assert image_id == image.config_digest

    remote = registry.ref(repo, "v1")
    docker("tag", f"dockyard-e2e/{repo}:loaded", remote)
    push = docker("push", remote).stdout
    pushed_digest = push.split("digest: ")[1].split()[0]

    head = registry.request("HEAD", f"/v2/{repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert head.status == 200
    assert head.headers["docker-content-digest"] == pushed_digest
    manifest = json.loads(registry.get_manifest(repo, "v1").body)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["digest"] == image.config_digest
    assert registry.get_blob(repo, image.config_digest).body == image.config_bytes
    # docker recompresses the layers it pushes: check what they uncompress to
    blobs = [registry.get_blob(repo, layer["digest"]).body for layer in manifest["layers"]]
    assert [layer["digest"] for layer in manifest["layers"]] == [sha256_digest(b) for b in blobs]
    assert [uncompressed_digest(b) for b in blobs] == image.diff_ids
    assert read_file_from_layers(blobs, image.data_path) == image.data

    docker("rmi", remote, f"dockyard-e2e/{repo}:loaded")
    with pytest.raises(ClientError):
        docker.image_id(remote)

    docker("pull", "--quiet", remote)
    assert docker.image_id(remote) == image_id
    repo_digests = json.loads(
        docker("image", "inspect", "--format", "{{json .RepoDigests}}", remote).stdout
    )
    assert f"{registry.host}/{repo}@{pushed_digest}" in repo_digests

    # and by digest
    docker("rmi", remote)
    by_digest = registry.ref(repo, pushed_digest)
    docker("pull", "--quiet", by_digest)
    assert docker.image_id(by_digest) == image_id
    docker("rmi", by_digest)


def test_pull_oci_image_pushed_by_skopeo(
    docker: Docker, skopeo: Skopeo, registry: RegistryServer, repo: str, image: Image
) -> None:
    skopeo.copy(image.ref, registry.docker_ref(repo, "oci"))
    remote = registry.ref(repo, "oci")
    docker("pull", "--quiet", remote)
    assert docker.image_id(remote) == image.config_digest
    digests = json.loads(
        docker("image", "inspect", "--format", "{{json .RepoDigests}}", remote).stdout
    )
    assert digests == [f"{registry.host}/{repo}@{image.manifest_digest}"]
    docker("rmi", remote)


def test_pull_multi_arch_index_picks_amd64(
    docker: Docker, skopeo: Skopeo, registry: RegistryServer, repo: str, image_index: ImageIndex
) -> None:
    skopeo.copy(image_index.ref, registry.docker_ref(repo, "multi"), "--all")
    remote = registry.ref(repo, "multi")
    docker("pull", "--quiet", "--platform", "linux/amd64", remote)
    assert docker.image_id(remote) == image_index.children["linux/amd64"].config_digest
    docker("rmi", remote)


def test_docker_manifest_list(
    docker: Docker, skopeo: Skopeo, registry: RegistryServer, repo: str, image_index: ImageIndex
) -> None:
    """A Docker manifest list (the index converted by skopeo): inspect it, pull from it."""
    skopeo.copy(
        image_index.ref,
        registry.docker_ref(repo, "list"),
        "--all",
        "--format",
        "v2s2",
        preserve_digests=False,
    )
    remote = registry.ref(repo, "list")
    raw = skopeo.inspect_raw(registry.docker_ref(repo, "list"))
    assert json.loads(raw)["mediaType"] == DOCKER_LIST

    # docker 20.10's `manifest inspect` reads Docker manifest lists (not OCI indexes)
    listed = json.loads(docker("manifest", "inspect", "--insecure", remote).stdout)
    assert listed["mediaType"] == DOCKER_LIST
    platforms = {m["platform"]["architecture"]: m["digest"] for m in listed["manifests"]}
    assert set(platforms) == {"amd64", "arm64"}

    docker("pull", "--quiet", remote)
    assert docker.image_id(remote) == image_index.children["linux/amd64"].config_digest
    repo_digests = json.loads(
        docker("image", "inspect", "--format", "{{json .RepoDigests}}", remote).stdout
    )
    assert repo_digests == [f"{registry.host}/{repo}@{sha256_digest(raw)}"]
    docker("rmi", remote)
