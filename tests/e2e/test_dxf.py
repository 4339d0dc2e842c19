"""python-dxf: blobs, aliases (tags), cross-repository mount, blob delete, catalog."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import dxf
import dxf.exceptions
import pytest
import requests

from .images import DOCKER_MANIFEST
from .server import RegistryServer

pytestmark = pytest.mark.e2e

DxfFactory = Callable[[str], dxf.DXF]


@pytest.fixture
def dxf_for(registry: RegistryServer) -> Iterator[DxfFactory]:
    """A factory of DXF clients (plain HTTP), closed at the end of the test."""
    opened: list[dxf.DXF] = []

    def make(repo: str) -> dxf.DXF:
        client = dxf.DXF(registry.host, repo, insecure=True)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)  # type: ignore[no-untyped-call]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _pull(client: dxf.DXF, digest: str) -> bytes:
    chunks = client.pull_blob(digest)
    assert not isinstance(chunks, tuple)
    return b"".join(chunks)


def _push(client: dxf.DXF, data: bytes, tmp_path: Path) -> str:
    """Push from a file: a monolithic PUT with a Content-Length."""
    path = tmp_path / f"blob-{_digest(data)[7:19]}"
    path.write_bytes(data)
    return str(client.push_blob(str(path)))


def test_push_pull_blob_and_aliases(
    dxf_for: DxfFactory, registry: RegistryServer, repo: str, tmp_path: Path
) -> None:
    client = dxf_for(repo)
    data = os.urandom(500_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    digest = client.push_blob(str(path))
    assert digest == _digest(data)
    assert client.blob_size(digest) == len(data)
    assert _pull(client, digest) == data
    # a second push is a no-op (HEAD says it exists)
    assert client.push_blob(str(path)) == digest

    data2 = os.urandom(200_000)
    digest2 = _push(client, data2, tmp_path)
    assert _pull(client, digest2) == data2

    client.set_alias("one", digest)
    client.set_alias("both", digest, digest2)
    assert sorted(client.list_aliases()) == ["both", "one"]
    assert client.get_alias("one") == [digest]
    assert client.get_alias("both") == [digest, digest2]
    manifest = json.loads(str(client.get_manifest("both")))
    assert manifest["mediaType"] == DOCKER_MANIFEST
    head = registry.request(
        "HEAD", f"/v2/{repo}/manifests/both", headers={"Accept": DOCKER_MANIFEST}
    )
    assert (
        head.headers["docker-content-digest"]
        == client.get_manifest_and_response("both")[1].headers["Docker-Content-Digest"]
    )

    assert client.del_alias("one") == [digest]
    assert client.list_aliases() == ["both"]
    # deleting the alias leaves the blob
    assert _pull(client, digest) == data


def test_streamed_push(dxf_for: DxfFactory, repo: str) -> None:
    """Data from an iterator goes as one PUT with ``Transfer-Encoding: chunked``: no
    Content-Length, the registry reads to the end of the body."""
    client = dxf_for(repo)
    data = os.urandom(200_000)
    chunks = [data[i : i + 50_000] for i in range(0, len(data), 50_000)]
    digest = client.push_blob(data=iter(chunks), digest=_digest(data))
    assert digest == _digest(data)
    assert client.blob_size(digest) == len(data)
    assert _pull(client, digest) == data


def test_mount_from_another_repo(dxf_for: DxfFactory, repo: str, tmp_path: Path) -> None:
    source = dxf_for(f"{repo}/source")
    target = dxf_for(f"{repo}/target")
    data = os.urandom(100_000)
    digest = _push(source, data, tmp_path)

    with pytest.raises(requests.exceptions.HTTPError) as excinfo:
        target.blob_size(digest)
    assert excinfo.value.response.status_code == 404

    assert target.mount_blob(f"{repo}/source", digest) == digest
    assert target.blob_size(digest) == len(data)
    assert _pull(target, digest) == data

    # a mount of a blob the source does not have falls back to an upload (202): no mount
    missing = _digest(b"never pushed " + os.urandom(8))
    with pytest.raises(dxf.exceptions.DXFMountFailed):
        target.mount_blob(f"{repo}/source", missing)


def test_delete_blob(dxf_for: DxfFactory, repo: str, tmp_path: Path) -> None:
    a = dxf_for(f"{repo}/a")
    b = dxf_for(f"{repo}/b")
    data = os.urandom(10_000)
    digest = _push(a, data, tmp_path)
    b.mount_blob(f"{repo}/a", digest)

    a.del_blob(digest)
    with pytest.raises(requests.exceptions.HTTPError) as excinfo:
        a.blob_size(digest)
    assert excinfo.value.response.status_code == 404
    with pytest.raises(requests.exceptions.HTTPError):
        _pull(a, digest)
    # only the link of that repository goes: the other one still serves it
    assert _pull(b, digest) == data


def test_catalog(dxf_for: DxfFactory, registry: RegistryServer, repo: str, tmp_path: Path) -> None:
    names = [f"{repo}/c{i}" for i in range(5)]
    for name in names:
        client = dxf_for(name)
        data = os.urandom(1000)
        digest = _push(client, data, tmp_path)
        client.set_alias("latest", digest)

    with dxf.DXFBase(registry.host, insecure=True) as base:
        everything = base.list_repos()
        paged = list(base.list_repos(batch_size=2, iterate=True))
    assert set(names) <= set(everything)
    assert everything == sorted(everything)
    assert paged == everything
