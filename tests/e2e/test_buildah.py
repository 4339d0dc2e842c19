"""buildah: from scratch + copy + commit + push, checked by pulling back with skopeo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .clients import ContainersTool, Skopeo
from .images import (
    OCI_MANIFEST,
    Image,
    layout_manifest,
    read_blob,
    read_file_from_layout,
    uncompressed_digest,
)
from .server import RegistryServer

pytestmark = pytest.mark.e2e

TLS = "--tls-verify=false"


def test_build_from_scratch_push_and_pull_back(
    buildah: ContainersTool, skopeo: Skopeo, registry: RegistryServer, repo: str, tmp_path: Path
) -> None:
    payload = os.urandom(200_000)
    (tmp_path / "payload.bin").write_bytes(payload)
    (tmp_path / "hello.txt").write_text("hello from buildah\n")

    container = buildah("from", "--quiet", "scratch").stdout.strip()
    try:
        buildah("copy", "--quiet", container, str(tmp_path / "payload.bin"), "/data/payload.bin")
        buildah("copy", "--quiet", container, str(tmp_path / "hello.txt"), "/etc/hello.txt")
        buildah("config", "--cmd", "/bin/sh", "--label", "org.example.test=dockyard", container)
        image_id = buildah("commit", "--quiet", container, f"localhost/{repo}:built").stdout.strip()
    finally:
        buildah("rm", container)

    buildah("push", "--quiet", TLS, f"localhost/{repo}:built", registry.docker_ref(repo, "v1"))

    manifest_bytes = skopeo.inspect_raw(registry.docker_ref(repo, "v1"))
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == OCI_MANIFEST
    # the image ID is the config digest
    assert manifest["config"]["digest"] == f"sha256:{image_id}"

    out = tmp_path / "pulled"
    skopeo.copy(registry.docker_ref(repo, "v1"), f"oci:{out}:v1")
    _, pulled_manifest = layout_manifest(out, "v1")
    assert pulled_manifest == manifest_bytes
    assert read_file_from_layout(out, "data/payload.bin", "v1") == payload
    assert read_file_from_layout(out, "etc/hello.txt", "v1") == b"hello from buildah\n"

    config = json.loads(read_blob(out, manifest["config"]["digest"]))
    assert config["config"]["Labels"]["org.example.test"] == "dockyard"
    assert config["rootfs"]["diff_ids"] == [
        uncompressed_digest(read_blob(out, layer["digest"])) for layer in manifest["layers"]
    ]
    buildah("rmi", f"localhost/{repo}:built")


def test_from_registry_image_add_layer_and_push(
    buildah: ContainersTool,
    skopeo: Skopeo,
    registry: RegistryServer,
    repo: str,
    image: Image,
    tmp_path: Path,
) -> None:
    """buildah pulls a base from the registry, adds a layer on top, pushes to a new tag."""
    skopeo.copy(image.ref, registry.docker_ref(repo, "base"))
    container = buildah("from", "--quiet", TLS, registry.ref(repo, "base")).stdout.strip()
    try:
        (tmp_path / "extra.txt").write_text("extra layer\n")
        buildah("copy", "--quiet", container, str(tmp_path / "extra.txt"), "/extra.txt")
        buildah("commit", "--quiet", container, f"localhost/{repo}:derived")
    finally:
        buildah("rm", container)
    buildah("push", "--quiet", TLS, f"localhost/{repo}:derived", registry.docker_ref(repo, "v2"))

    out = tmp_path / "pulled"
    skopeo.copy(registry.docker_ref(repo, "v2"), f"oci:{out}:v2")
    _, manifest_bytes = layout_manifest(out, "v2")
    manifest = json.loads(manifest_bytes)
    assert len(manifest["layers"]) == len(image.layers) + 1
    config = json.loads(read_blob(out, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"][: len(image.layers)] == image.diff_ids
    assert read_file_from_layout(out, "extra.txt", "v2") == b"extra layer\n"
    assert read_file_from_layout(out, image.data_path, "v2") == image.data
    buildah("rmi", f"localhost/{repo}:derived", registry.ref(repo, "base"))
