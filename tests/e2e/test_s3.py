"""The registry on S3 (a SeaweedFS bucket): a representative set of the client tests, run
again here against a server whose storage is a bucket, so that every client pushes through
multipart uploads and pulls through the 307 redirects to presigned URLs; then the
redirects themselves, and the same server with ``storage.redirect.disable``.

The client tests are the other modules' own, imported: this module's ``registry`` fixture
gives them the S3 server instead.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.seaweedfs import SeaweedServer

from .server import SERVER_KIND, RegistryServer, fetch
from .test_ctr import test_import_push_remove_pull as test_ctr_push_and_pull
from .test_docker import test_load_push_rmi_pull as test_docker_push_and_pull
from .test_oras import oras_client
from .test_oras import test_large_artifact_round_trip as test_oras_large_artifact
from .test_podman import test_push_then_pull as test_podman_push_and_pull
from .test_skopeo import test_push_then_pull_back_oci as test_skopeo_push_and_pull

pytestmark = pytest.mark.e2e

__all__ = [
    "oras_client",
    "test_ctr_push_and_pull",
    "test_docker_push_and_pull",
    "test_oras_large_artifact",
    "test_podman_push_and_pull",
    "test_skopeo_push_and_pull",
]


def _start(seaweedfs: SeaweedServer, workdir: Path, extra_storage: str = "") -> RegistryServer:
    storage = seaweedfs.storage_section(seaweedfs.new_bucket("e2e")) + extra_storage
    server = RegistryServer(SERVER_KIND, workdir, storage=storage)
    server.start()
    return server


@pytest.fixture(scope="module", params=["copy", "deferredcopy"])
def registry(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    seaweedfs: SeaweedServer,
) -> Iterator[RegistryServer]:
    """The registry under test on a bucket of its own (redirects on: the default); the
    chunked uploads' copy made in the request, or deferred (``storage.s3.deferredcopy``)."""
    extra = f"    deferredcopy: {str(request.param == 'deferredcopy').lower()}\n"
    server = _start(seaweedfs, tmp_path_factory.mktemp(f"{SERVER_KIND}-s3-"), extra)
    try:
        yield server
    finally:
        server.stop()


def test_blob_get_and_head_redirect_to_a_presigned_url(
    registry: RegistryServer, seaweedfs: SeaweedServer, repo: str
) -> None:
    data = os.urandom(12 * 1024 * 1024 + 17)  # parts, and a tail
    digest = registry.push_blob(repo, data)
    for method in ("GET", "HEAD"):
        r = registry.request(method, f"/v2/{repo}/blobs/{digest}")
        assert r.status == 307, (method, r.status, r.body)
        # As registry:2 answers it: no body, nothing that lets a cache keep the redirect
        # past the URL's expiry.
        assert r.body == b"" and "cache-control" not in r.headers and "etag" not in r.headers
        location = r.headers["location"]
        assert location.startswith(seaweedfs.endpoint + "/")
        query = parse_qs(urlsplit(location).query)
        assert query["X-Amz-Expires"] == ["1200"]  # registry:2's 20 minutes
        followed = fetch(location, method=method)
        assert followed.status == 200
        assert int(followed.headers["content-length"]) == len(data)
        if method == "GET":
            assert hashlib.sha256(followed.body).hexdigest() == digest.split(":")[1]
    ranged = fetch(registry.request("GET", f"/v2/{repo}/blobs/{digest}").headers["location"],
                   headers={"Range": "bytes=5242870-5242889"})  # fmt: skip
    assert ranged.status == 206 and ranged.body == data[5242870:5242890]
    tampered = location.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert fetch(tampered).status == 403


def test_a_blob_the_repository_does_not_hold_is_never_redirected(
    registry: RegistryServer, repo: str
) -> None:
    """The redirect is decided by what the repository holds, before any URL is signed: a
    blob of another repository, one unlinked, or one never pushed is a 404, not a 307
    to bytes that may still be in the bucket."""
    digest = registry.push_blob(repo, os.urandom(4096))
    never = "sha256:" + hashlib.sha256(os.urandom(16)).hexdigest()
    assert registry.request("GET", f"/v2/{repo}/blobs/{digest}").status == 307
    assert registry.request("DELETE", f"/v2/{repo}/blobs/{digest}").status == 202
    for name, blob in ((repo, digest), (f"{repo}-other", digest), (repo, never)):
        for method in ("GET", "HEAD"):
            r = registry.request(method, f"/v2/{name}/blobs/{blob}")
            assert r.status == 404, (method, name, r.status, r.headers)
            assert "location" not in r.headers
            if method == "GET":
                assert b"BLOB_UNKNOWN" in r.body


def test_a_chunked_upload_in_small_patches(registry: RegistryServer, repo: str) -> None:
    """PATCHes far below S3's 5 MiB part minimum, each its own request: the bytes between
    them wait in the bucket, not in the server."""
    data = os.urandom(7 * 1024 * 1024 + 5)
    digest = registry.push_chunked(repo, data, 1024 * 1024 + 3)
    assert registry.get_blob(repo, digest).body == data


@pytest.mark.skipif(SERVER_KIND != "dockyard", reason="reads Dockyard's access log")
def test_every_client_followed_a_redirect(registry: RegistryServer) -> None:
    """After the client tests above: each client fetched blobs through a 307."""
    redirected = [
        line
        for line in registry.log_text().splitlines()
        if re.search(r'"GET /v2/\S+/blobs/sha256:[0-9a-f]{64}" 307 ', line)
    ]
    # skopeo, podman (containers/image), docker, ctr, oras (python-requests)
    for agent in ("skopeo/", "containers/", "docker/", "containerd/", "python-requests/"):
        assert any(agent in line for line in redirected), agent


def test_with_redirects_disabled_the_bytes_stream_with_ranges(
    tmp_path: Path, seaweedfs: SeaweedServer, repo: str
) -> None:
    server = _start(seaweedfs, tmp_path, "  redirect:\n    disable: true\n")
    try:
        data = os.urandom(6 * 1024 * 1024 + 1)
        digest = server.push_blob(repo, data)
        r = server.request("GET", f"/v2/{repo}/blobs/{digest}")
        assert r.status == 200 and r.body == data
        r = server.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        assert r.status == 200 and int(r.headers["content-length"]) == len(data)
        r = server.request("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10-19"})
        assert r.status == 206 and r.body == data[10:20]
        assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    finally:
        server.stop()
