"""skopeo: push, pull, copy --all of an index, inspect, list-tags, delete, v2s2 conversion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .clients import ClientError, Skopeo
from .images import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_INDEX,
    Image,
    ImageIndex,
    build_image,
    layout_manifest,
    read_blob,
    read_file_from_layout,
    sha256_digest,
)
from .server import RegistryServer

pytestmark = pytest.mark.e2e


def test_push_then_pull_back_oci(
    skopeo: Skopeo, registry: RegistryServer, repo: str, image: Image, tmp_path: Path
) -> None:
    skopeo.copy(image.ref, registry.docker_ref(repo, "v1"))

    # the registry holds exactly what was pushed: the OCI manifest is not rewritten
    r = registry.get_manifest(repo, "v1")
    assert r.status == 200
    assert r.headers["docker-content-digest"] == image.manifest_digest
    assert r.body == image.manifest_bytes
    for digest, data in [(image.config_digest, image.config_bytes)] + [
        (layer.digest, layer.blob) for layer in image.layers
    ]:
        blob = registry.get_blob(repo, digest)
        assert blob.status == 200, digest
        assert blob.body == data

    out = tmp_path / "pulled"
    skopeo.copy(registry.docker_ref(repo, "v1"), f"oci:{out}:v1")
    digest, manifest_bytes = layout_manifest(out, "v1")
    manifest = json.loads(manifest_bytes)
    assert digest == image.manifest_digest
    assert manifest["config"]["digest"] == image.config_digest
    assert [layer["digest"] for layer in manifest["layers"]] == image.layer_digests
    assert read_blob(out, image.config_digest) == image.config_bytes
    assert read_file_from_layout(out, image.data_path, "v1") == image.data
    assert read_file_from_layout(out, "bin/busybox", "v1") == Path("/bin/busybox").read_bytes()


def test_pull_by_digest_into_dir(
    skopeo: Skopeo, registry: RegistryServer, repo: str, image: Image, tmp_path: Path
) -> None:
    skopeo.copy(image.ref, registry.docker_ref(repo, "v1"))
    out = tmp_path / "dir"
    skopeo.copy(registry.docker_ref(repo, image.manifest_digest), f"dir:{out}")
    assert (out / "manifest.json").read_bytes() == image.manifest_bytes
    for layer in image.layers:
        assert (out / layer.digest.removeprefix("sha256:")).read_bytes() == layer.blob
    assert (out / image.config_digest.removeprefix("sha256:")).read_bytes() == image.config_bytes


def test_second_push_of_same_image_is_a_noop(
    skopeo: Skopeo, registry: RegistryServer, repo: str, image: Image
) -> None:
    skopeo.copy(image.ref, registry.docker_ref(repo, "a"))
    skopeo.copy(image.ref, registry.docker_ref(repo, "b"))
    a = registry.get_manifest(repo, "a")
    b = registry.get_manifest(repo, "b")
    assert a.body == b.body == image.manifest_bytes


def test_copy_all_multi_arch_index(
    skopeo: Skopeo,
    registry: RegistryServer,
    repo: str,
    image_index: ImageIndex,
    tmp_path: Path,
) -> None:
    skopeo.copy(image_index.ref, registry.docker_ref(repo, "multi"), "--all")

    # the index arrives unchanged (same bytes, same digest)
    raw = skopeo.inspect_raw(registry.docker_ref(repo, "multi"))
    assert raw == image_index.index_bytes
    head = registry.request("HEAD", f"/v2/{repo}/manifests/multi", headers={"Accept": OCI_INDEX})
    assert head.status == 200
    assert head.headers["docker-content-digest"] == image_index.digest
    assert head.headers["content-type"] == OCI_INDEX

    # both children arrive, with their blobs
    assert set(image_index.children) == {"linux/amd64", "linux/arm64"}
    for child in image_index.children.values():
        r = registry.get_manifest(repo, child.manifest_digest)
        assert r.status == 200
        assert r.body == child.manifest_bytes
        for digest in [child.config_digest, *child.layer_digests]:
            assert registry.request("HEAD", f"/v2/{repo}/blobs/{digest}").status == 200

    # skopeo picks the right child for a platform
    arm = json.loads(
        skopeo(
            "--override-arch", "arm64", "--override-os", "linux",
            "inspect", "--tls-verify=false", registry.docker_ref(repo, "multi"),
        ).stdout
    )  # fmt: skip
    assert arm["Digest"] == image_index.digest  # skopeo reports the digest of the reference
    assert arm["Architecture"] == "arm64"
    assert arm["Layers"] == image_index.children["linux/arm64"].layer_digests

    # and the whole index pulls back identical
    out = tmp_path / "pulled"
    skopeo.copy(registry.docker_ref(repo, "multi"), f"oci:{out}:multi", "--all")
    digest, index_bytes = layout_manifest(out, "multi")
    assert digest == image_index.digest
    assert index_bytes == image_index.index_bytes
    for child in image_index.children.values():
        assert read_blob(out, child.manifest_digest) == child.manifest_bytes
        for layer in child.layers:
            assert read_blob(out, layer.digest) == layer.blob


def test_inspect(skopeo: Skopeo, registry: RegistryServer, repo: str, image: Image) -> None:
    skopeo.copy(image.ref, registry.docker_ref(repo, "v1"))
    info = skopeo.inspect(registry.docker_ref(repo, "v1"))
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == image.layer_digests
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert "v1" in info["RepoTags"]

    assert skopeo.inspect_raw(registry.docker_ref(repo, "v1")) == image.manifest_bytes
    config = skopeo.inspect_raw(registry.docker_ref(repo, "v1"), config=True)
    assert config == image.config_bytes


def test_list_tags(skopeo: Skopeo, registry: RegistryServer, repo: str, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    tags = ["1.0", "1.1", "latest", "v2-rc.1", "Z_last"]
    for tag in tags:
        image = build_image(layout, tag, data_size=1024)
        skopeo.copy(image.ref, registry.docker_ref(repo, tag))
    assert sorted(skopeo.list_tags(registry.docker_repo(repo))) == sorted(tags)


def test_delete_then_pull_fails(
    skopeo: Skopeo, registry: RegistryServer, repo: str, image: Image, tmp_path: Path
) -> None:
    keep = build_image(tmp_path / "keep", "keep", data_size=1024)
    skopeo.copy(image.ref, registry.docker_ref(repo, "doomed"))
    skopeo.copy(keep.ref, registry.docker_ref(repo, "keep"))

    skopeo.delete(registry.docker_ref(repo, "doomed"))

    with pytest.raises(ClientError) as excinfo:
        skopeo.copy(registry.docker_ref(repo, "doomed"), f"oci:{tmp_path / 'out'}:x")
    assert "manifest unknown" in excinfo.value.stderr.lower()
    assert registry.get_manifest(repo, image.manifest_digest).status == 404
    assert registry.get_manifest(repo, "doomed").status == 404
    # the other tag of the repository is untouched
    assert registry.get_manifest(repo, "keep").body == keep.manifest_bytes
    assert skopeo.list_tags(registry.docker_repo(repo)) == ["keep"]


def test_push_as_docker_schema2(
    skopeo: Skopeo, registry: RegistryServer, repo: str, image: Image, tmp_path: Path
) -> None:
    skopeo.copy(
        image.ref, registry.docker_ref(repo, "v2s2"), "--format", "v2s2", preserve_digests=False
    )
    raw = skopeo.inspect_raw(registry.docker_ref(repo, "v2s2"))
    manifest = json.loads(raw)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG
    assert {layer["mediaType"] for layer in manifest["layers"]} == {DOCKER_LAYER_GZIP}
    # the blobs are the same bytes, only the manifest changes
    assert [layer["digest"] for layer in manifest["layers"]] == image.layer_digests
    assert manifest["config"]["digest"] == image.config_digest

    r = registry.get_manifest(repo, "v2s2", accept=DOCKER_MANIFEST)
    assert r.headers["content-type"] == DOCKER_MANIFEST
    assert r.headers["docker-content-digest"] == sha256_digest(raw)

    out = tmp_path / "pulled"
    skopeo.copy(registry.docker_ref(repo, "v2s2"), f"dir:{out}")
    assert (out / "manifest.json").read_bytes() == raw
    assert (out / image.config_digest.removeprefix("sha256:")).read_bytes() == image.config_bytes
