"""containerd's ctr (private containerd): import an oci-archive, push, remove, pull back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .clients import Ctr
from .images import OCI_INDEX, Image, ImageIndex, write_oci_archive
from .server import RegistryServer

pytestmark = pytest.mark.e2e

PLAIN = "--plain-http"
SNAPSHOTTER = ("--snapshotter", "native")


def _content_digests(ctr: Ctr) -> set[str]:
    return {line.split()[0] for line in ctr("content", "ls", "--quiet").stdout.splitlines()}


def test_import_push_remove_pull(
    ctr: Ctr, registry: RegistryServer, repo: str, image: Image, tmp_path: Path
) -> None:
    name = f"{registry.host}/{repo}"
    archive = write_oci_archive(image.layout, tmp_path / "image.tar", image_name=name)
    ctr("images", "import", *SNAPSHOTTER, str(archive))
    ref = f"{name}:{image.tag}"
    assert ctr.image_digest(ref) == image.manifest_digest

    ctr("images", "push", PLAIN, ref)
    r = registry.get_manifest(repo, image.tag)
    assert r.status == 200
    assert r.headers["docker-content-digest"] == image.manifest_digest
    assert r.body == image.manifest_bytes
    for layer in image.layers:
        assert registry.get_blob(repo, layer.digest).body == layer.blob

    # remove the image and (synchronously) its content, so the pull really downloads
    ctr("images", "rm", "--sync", ref)
    assert ref not in ctr.image_names()
    assert image.layers[1].digest not in _content_digests(ctr)

    ctr("images", "pull", PLAIN, *SNAPSHOTTER, ref)
    assert ctr.image_digest(ref) == image.manifest_digest
    for layer in image.layers:
        assert ctr("content", "get", layer.digest, text=False).stdout == layer.blob
    assert ctr("content", "get", image.config_digest, text=False).stdout == image.config_bytes

    # the pulled image unpacks: its snapshot holds the files
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    ctr("images", "mount", *SNAPSHOTTER, ref, str(mountpoint))
    try:
        assert (mountpoint / image.data_path).read_bytes() == image.data
        assert (mountpoint / "bin" / "sh").resolve().name == "busybox"
    finally:
        ctr("images", "unmount", str(mountpoint))
    ctr("images", "rm", "--sync", ref)


def test_multi_arch_index_round_trip(
    ctr: Ctr, registry: RegistryServer, repo: str, image_index: ImageIndex, tmp_path: Path
) -> None:
    name = f"{registry.host}/{repo}"
    archive = write_oci_archive(image_index.layout, tmp_path / "index.tar", image_name=name)
    ctr("images", "import", "--all-platforms", *SNAPSHOTTER, str(archive))
    ref = f"{name}:{image_index.tag}"
    assert ctr.image_digest(ref) == image_index.digest

    ctr("images", "push", PLAIN, ref)
    r = registry.get_manifest(repo, image_index.tag)
    assert r.headers["content-type"] == OCI_INDEX
    assert r.body == image_index.index_bytes
    for child in image_index.children.values():
        assert registry.get_manifest(repo, child.manifest_digest).body == child.manifest_bytes

    ctr("images", "rm", "--sync", ref)
    ctr("images", "pull", PLAIN, "--all-platforms", *SNAPSHOTTER, ref)
    assert ctr.image_digest(ref) == image_index.digest
    arm64 = image_index.children["linux/arm64"]
    pulled = ctr("content", "get", arm64.manifest_digest, text=False).stdout
    assert json.loads(pulled) == arm64.manifest
    assert ctr("content", "get", arm64.layers[1].digest, text=False).stdout == arm64.layers[1].blob
    ctr("images", "rm", "--sync", ref)
