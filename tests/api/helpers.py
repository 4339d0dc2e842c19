"""Small builders for API tests: blobs, manifests, and upload calls over HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any

from aiohttp.test_utils import TestClient

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

Client = TestClient[Any, Any]


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def path_of(url: str) -> str:
    """The path+query of an absolute Location URL (the test client wants relative URLs)."""
    from yarl import URL

    parsed = URL(url)
    return str(parsed.relative()) if parsed.absolute else url


async def push_blob(client: Client, name: str, data: bytes) -> str:
    digest = digest_of(data)
    response = await client.post(
        f"/v2/{name}/blobs/uploads/?digest={digest}", data=io.BytesIO(data)
    )
    assert response.status == 201, await response.text()
    return digest


def image_manifest(
    config: bytes, layers: list[bytes], media_type: str = OCI_MANIFEST, **extra: Any
) -> bytes:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [
            {"mediaType": LAYER, "digest": digest_of(layer), "size": len(layer)} for layer in layers
        ],
        **extra,
    }
    return json.dumps(body).encode()


async def push_image(
    client: Client, name: str, tag: str, layers: int = 2, **extra: Any
) -> tuple[str, bytes, list[bytes]]:
    """Push random layers, a config and a manifest; returns (digest, manifest, layers)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": os.urandom(4).hex()})
    blobs = [os.urandom(1000 + i) for i in range(layers)]
    for blob in [config.encode(), *blobs]:
        await push_blob(client, name, blob)
    manifest = image_manifest(config.encode(), blobs, **extra)
    response = await client.put(
        f"/v2/{name}/manifests/{tag}", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status == 201, await response.text()
    return response.headers["Docker-Content-Digest"], manifest, blobs


async def error_code(response: Any) -> str:
    body = await response.json(content_type=None)
    return str(body["errors"][0]["code"])


async def raw_request(client: Client, method: str, path: str) -> tuple[int, bytes]:
    """Send ``path`` exactly as given (no client-side normalisation of ``..`` or ``%2e``)."""
    import asyncio

    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
