"""A restart (graceful, or a crash) keeps everything: manifests, blobs, tags, catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .clients import Skopeo
from .images import Image, ImageIndex, build_image, build_index, sha256_digest
from .server import RegistryServer

pytestmark = pytest.mark.e2e


def _snapshot(registry: RegistryServer, skopeo: Skopeo, repo: str, out: Path) -> dict[str, bytes]:
    """Everything a client can see of a repository: tags, manifests, blobs (as raw bytes)."""
    seen: dict[str, bytes] = {}
    out.mkdir()
    tags = sorted(skopeo.list_tags(registry.docker_repo(repo)))
    seen["tags"] = json.dumps(tags).encode()
    for tag in tags:
        pulled = out / tag
        skopeo.copy(registry.docker_ref(repo, tag), f"dir:{pulled}", "--all")
        for f in sorted(pulled.iterdir()):
            seen[f"{tag}/{f.name}"] = f.read_bytes()
    return seen


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_restart_keeps_everything(
    crash: bool, skopeo: Skopeo, registry: RegistryServer, repo: str, tmp_path: Path
) -> None:
    image: Image = build_image(tmp_path / "image", "v1")
    index: ImageIndex = build_index(tmp_path / "index", "multi")
    skopeo.copy(image.ref, registry.docker_ref(repo, "v1"))
    skopeo.copy(image.ref, registry.docker_ref(repo, "also-v1"))
    skopeo.copy(index.ref, registry.docker_ref(repo, "multi"), "--all")
    blob = registry.push_blob(f"{repo}-blobs", b"a loose blob\n" * 1000)

    before = _snapshot(registry, skopeo, repo, tmp_path / "before")
    catalog_before = registry.request("GET", "/v2/_catalog").json()

    registry.restart(kill=crash)

    after = _snapshot(registry, skopeo, repo, tmp_path / "after")
    assert after.keys() == before.keys()
    for key in before:
        assert after[key] == before[key], key
    assert registry.request("GET", "/v2/_catalog").json() == catalog_before

    # byte-identical through the HTTP API too
    r = registry.get_manifest(repo, "v1")
    assert r.body == image.manifest_bytes
    assert r.headers["docker-content-digest"] == image.manifest_digest
    assert registry.get_manifest(repo, "multi").body == index.index_bytes
    for layer in image.layers:
        assert registry.get_blob(repo, layer.digest).body == layer.blob
    loose = registry.get_blob(f"{repo}-blobs", blob)
    assert loose.status == 200 and sha256_digest(loose.body) == blob

    # and it still takes pushes
    fresh = build_image(tmp_path / "fresh", "v2", data_size=4096)
    skopeo.copy(fresh.ref, registry.docker_ref(repo, "v2"))
    assert sorted(skopeo.list_tags(registry.docker_repo(repo))) == [
        "also-v1",
        "multi",
        "v1",
        "v2",
    ]
