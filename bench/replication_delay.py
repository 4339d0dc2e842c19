"""Replication inside the server: how long after a push the image is in the destination.

    python -m bench.replication_delay [--images 10] [--layer-mib 8] [--workers 2]

A Dockyard (dev) with a ``replication`` rule to a Distribution 2.8.2 (prod). Each image
(a shared base layer, a fresh random layer of ``--layer-mib``, a config) is pushed to dev
over HTTP; the clock runs from the manifest ``PUT``'s answer until prod answers ``200`` to
a ``HEAD`` of the tag (polled every 10 ms). For scale, the same image is pushed directly
to a second, empty Distribution 2.8.2: the replication delay against that direct push.
Run it under ``flock /work/bench.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.servers import Server, dockyard_server, registry2_server
from bench.sync_compare import LAYER, OCI_MANIFEST, _chunks, _descriptor, digest
from dockyard.remote import RemoteRegistry

REPO = "bench/app"


def replication_section(prod_url: str) -> str:
    return (
        "replication:\n  destinations:\n"
        f"    - name: prod\n      url: {prod_url}\n"
        "  rules:\n    - name: to-prod\n      destination: prod\n"
    )


async def push_image(client: RemoteRegistry, tag: str, blobs: list[bytes]) -> None:
    """Push the blobs (the last one is the config) and the manifest of ``tag``."""
    for blob in blobs:
        if await client.blob_size(REPO, digest(blob)) is None:
            await client.push_blob(REPO, digest(blob), len(blob), _chunks(blob))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": _descriptor("application/vnd.oci.image.config.v1+json", blobs[-1]),
        "layers": [_descriptor(LAYER, b) for b in blobs[:-1]],
    }).encode()  # fmt: skip
    await client.put_manifest(REPO, tag, manifest, OCI_MANIFEST)


async def arrival(client: RemoteRegistry, tag: str, limit: float = 120.0) -> float:
    """Seconds until ``client``'s registry has ``tag``."""
    start = time.monotonic()
    while await client.head_manifest(REPO, tag) is None:
        if time.monotonic() - start > limit:
            raise TimeoutError(f"{tag} did not arrive in {limit} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def measure(dev: str, prod: str, direct: str, images: int, layer_mib: int) -> None:
    base = os.urandom(4 << 20)
    delays, pushes, directs = [], [], []
    async with (
        RemoteRegistry(dev) as to_dev,
        RemoteRegistry(prod) as at_prod,
        RemoteRegistry(direct) as to_direct,
    ):
        for n in range(images):
            config = json.dumps({"architecture": "amd64", "os": "linux", "n": n}).encode()
            blobs = [base, os.urandom(layer_mib << 20), config]
            tag = f"t{n:03d}"
            started = time.monotonic()
            await push_image(to_dev, tag, blobs)
            pushes.append(time.monotonic() - started)
            delays.append(await arrival(at_prod, tag))
            started = time.monotonic()
            await push_image(to_direct, tag, blobs)
            directs.append(time.monotonic() - started)
    print(f"images: {images}, each a 4 MiB shared base + {layer_mib} MiB fresh layer")
    for label, values in (
        ("push to dev (Dockyard)", pushes),
        ("push to dev -> in prod (replication delay)", delays),
        ("the same push straight to a registry:2", directs),
    ):
        print(
            f"{label}: median {statistics.median(values):.3f} s, "
            f"min {min(values):.3f}, max {max(values):.3f}"
        )
    ratio = statistics.median(delays) / statistics.median(directs)
    print(f"replication delay / direct push to registry:2 (medians): {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--layer-mib", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tmpdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="replication-bench-", dir=args.tmpdir))
    servers: list[Server] = []
    try:
        for name in ("dev", "prod", "direct"):
            (work / name).mkdir()
        prod = registry2_server(work / "prod", work / "prod", work / "prod.log", "docker-registry")
        direct = registry2_server(
            work / "direct", work / "direct", work / "direct.log", "docker-registry"
        )
        dev = dockyard_server(work / "dev", work / "dev", work / "dev.log", args.workers)
        config = Path(dev.argv[dev.argv.index("serve") + 1])
        config.write_text(config.read_text() + replication_section(prod.url))
        for server in (prod, direct, dev):
            server.start()
            servers.append(server)
        asyncio.run(measure(dev.url, prod.url, direct.url, args.images, args.layer_mib))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
