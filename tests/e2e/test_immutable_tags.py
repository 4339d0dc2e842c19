"""Immutable tags as skopeo meets them: a push that would move one and a delete are refused
with the rule named, the tag keeps its image, and pushing the same image again works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .clients import Skopeo
from .images import Image, build_image
from .server import SERVER_KIND, RegistryServer, write_config

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(SERVER_KIND != "dockyard", reason="immutable tags are Dockyard's own"),
]

IMMUTABLE = """\
immutabletags:
  rules:
    - name: releases
      repositories: ["e2e/**"]
      tags: ['v[0-9]+(\\.[0-9]+)*']
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(SERVER_KIND, tmp_path_factory.mktemp("immutable-"))
    write_config(server.config, store=server.store, port=server.port, extra=IMMUTABLE)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_an_immutable_tag_cannot_be_moved_or_deleted(
    skopeo: Skopeo, registry: RegistryServer, repo: str, image: Image, tmp_path: Path
) -> None:
    skopeo.copy(image.ref, registry.docker_ref(repo, "v1.0"))
    other = build_image(tmp_path / "other", "v1")

    refused = skopeo.copy(other.ref, registry.docker_ref(repo, "v1.0"), check=False)
    assert refused.returncode != 0
    assert "denied" in refused.stderr
    assert "immutable (rule releases)" in refused.stderr, refused.stderr
    assert registry.get_manifest(repo, "v1.0").headers["docker-content-digest"] == (
        image.manifest_digest
    )

    skopeo.copy(image.ref, registry.docker_ref(repo, "v1.0"))  # the same image: fine

    deleted = skopeo.delete(registry.docker_ref(repo, "v1.0"), check=False)
    assert deleted.returncode != 0
    assert "immutable (rule releases)" in deleted.stderr, deleted.stderr
    assert skopeo.list_tags(registry.docker_repo(repo)) == ["v1.0"]

    skopeo.copy(image.ref, registry.docker_ref(repo, "dev"))  # a mutable tag moves freely
    skopeo.copy(other.ref, registry.docker_ref(repo, "dev"))
    skopeo.delete(registry.docker_ref(repo, "dev"))
    assert skopeo.list_tags(registry.docker_repo(repo)) == ["v1.0"]
