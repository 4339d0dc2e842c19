"""The benchmark's sink registry (bench/sink_registry.py) takes real pushes and keeps only
what a push needs back: blob sizes per repository and the manifests."""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.servers import Server, sink_server

from .clients import Skopeo
from .images import Image


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Server]:
    server = sink_server(tmp_path / "sink.log")
    server.start()
    yield server
    server.stop()


def _request(
    server: Server,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    address = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(address.hostname or "", address.port)
    chunked = headers is not None and headers.get("Transfer-Encoding") == "chunked"
    conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)  # type: ignore[arg-type]
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_skopeo_pushes_to_the_sink(sink: Server, skopeo: Skopeo, image: Image) -> None:
    host = sink.url.removeprefix("http://")
    skopeo.copy(image.ref, f"docker://{host}/sunk/image:v1")
    for layer in image.layers:
        found = _request(sink, "HEAD", f"/v2/sunk/image/blobs/{layer.digest}")
        assert found.status == 200
        assert found.headers["Content-Length"] == str(layer.size)
        elsewhere = _request(sink, "HEAD", f"/v2/other/blobs/{layer.digest}")
        assert elsewhere.status == 404
    stored = skopeo.inspect_raw(f"docker://{host}/sunk/image:v1")
    assert stored == image.manifest_bytes


def test_a_chunked_patch_is_counted_and_discarded(sink: Server) -> None:
    started = _request(sink, "POST", "/v2/sunk/blobs/uploads/")
    assert started.status == 202
    location = started.headers["Location"]
    pieces = [b"x" * 31_744] * 40 + [b"y" * 5]
    patched = _request(
        sink, "PATCH", location, body=iter(pieces), headers={"Transfer-Encoding": "chunked"}
    )
    assert patched.status == 202
    size = sum(map(len, pieces))
    assert patched.headers["Range"] == f"0-{size - 1}"
    digest = "sha256:" + "0" * 64  # never checked: the sink does not hash
    committed = _request(sink, "PUT", f"{location}?digest={digest}", body=b"")
    assert committed.status == 201
    found = _request(sink, "HEAD", f"/v2/sunk/blobs/{digest}")
    assert found.headers["Content-Length"] == str(size)
