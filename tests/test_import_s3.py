"""Taking over a bucket that registry:2 wrote, in place: Debian's docker-registry 2.8.2
pushes to a SeaweedFS bucket, ``dockyard import`` reads its link files into Dockyard's
database without touching an object, and Dockyard then serves the same images from the same
bucket (blobs through redirects), and writes new ones in the same layout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.registry2.reports import EXIT_CLEAN
from dockyard.storage import paths
from tests.e2e.server import REPO_ROOT, RegistryServer, wait_for
from tests.seaweedfs import SeaweedServer
from tests.test_import import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    config_bytes,
    image_manifest,
    layer_bytes,
)

pytestmark = pytest.mark.e2e


def bucket_objects(seaweedfs: SeaweedServer, bucket: str) -> dict[str, tuple[str, int]]:
    """Every object of the bucket: its ETag and size."""
    client = seaweedfs.client()
    found: dict[str, tuple[str, int]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = (item["ETag"], item["Size"])
    return found


def test_dockyard_takes_over_a_bucket_registry2_wrote(
    tmp_path: Path, seaweedfs: SeaweedServer
) -> None:
    bucket = seaweedfs.new_bucket("takeover")
    storage = seaweedfs.storage_section(bucket, rootdirectory="/registry")
    registry2 = RegistryServer("registry2", tmp_path, storage=storage)
    registry2.start()
    images: dict[tuple[str, str], bytes] = {}
    blobs: dict[str, tuple[str, bytes]] = {}  # digest: (repository, bytes)
    try:
        big = os.urandom(11 * 1024 * 1024 + 3)  # over registry:2's 10 MiB part size
        big_digest = registry2.push_chunked("team/app", big, 4 * 1024 * 1024)
        blobs[big_digest] = ("team/app", big)
        for repo, tag, media_type in [
            ("team/app", "v1", OCI_MANIFEST),
            ("team/app", "v2", DOCKER_MANIFEST),
            ("base", "latest", OCI_MANIFEST),
        ]:
            layers = [layer_bytes(f"{repo}:{tag}".encode())]
            config = config_bytes(layers)
            for blob in [config, *layers]:
                blobs[registry2.push_blob(repo, blob)] = (repo, blob)
            manifest = image_manifest(config, layers, media_type)
            assert registry2.put_manifest(repo, tag, manifest, media_type).status == 201
            images[(repo, tag)] = manifest
    finally:
        registry2.stop()
    before = bucket_objects(seaweedfs, bucket)
    assert any(key.startswith("registry/docker/registry/v2/blobs/sha256/") for key in before)

    imported = subprocess.run(
        [sys.executable, "-m", "dockyard", "import", str(registry2.config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert imported.returncode == EXIT_CLEAN, imported.stderr
    assert bucket_objects(seaweedfs, bucket) == before  # read in place: nothing written

    # The same config file (port included) and bucket.
    dockyard = RegistryServer("dockyard", tmp_path, port=registry2.port)
    dockyard.start()
    try:
        for (repo, tag), manifest in images.items():
            r = dockyard.get_manifest(repo, tag)
            assert r.status == 200 and r.body == manifest, (repo, tag)
        for digest, (repo, data) in blobs.items():
            assert dockyard.get_blob(repo, digest).body == data, (repo, digest)
        tags = dockyard.request("GET", "/v2/team/app/tags/list")
        assert tags.status == 200 and b'"v1"' in tags.body and b'"v2"' in tags.body

        pushed = os.urandom(6 * 1024 * 1024)
        digest = dockyard.push_chunked("team/new", pushed, 2 * 1024 * 1024)
        blob_key = "registry" + paths.blob_data(Digest.parse(digest))
        # The mover copies the blob to its own key right after the commit (deferred copies
        # are on by default): wait for that before the registry stops.
        wait_for(lambda: blob_key in bucket_objects(seaweedfs, bucket), "the mover's copy", 60)
    finally:
        dockyard.stop()
    after = bucket_objects(seaweedfs, bucket)
    # The new blob is where registry:2 puts blobs (the mover copied it there: deferred
    # copies are on by default); of the upload at most its completed object is left, which
    # the mover deletes once the redirect grace is over (docs/storage.md).
    assert after[blob_key][1] == len(pushed)
    left = [key for key in after if "_uploads" in key and key not in before]
    assert all(key.endswith("/data") and after[key][1] == len(pushed) for key in left), left
    assert len(left) <= 1, left
