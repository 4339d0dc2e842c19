"""What a running collection costs serving: push and pull rates of a Dockyard whose
scheduled collection runs back to back (``gc.interval: 1ms``), against the same Dockyard
with it off, on the same large store (bench/gc_compare.py makes it).

The collections find nothing to delete here (``reviewafter: 1h`` keeps the fresh pushes),
so each is a collection's reading of a quiet store (its review queue, the queued manifest
bytes), again and again, in the worker that also serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import aiohttp

from bench.servers import Server, free_port

CLIENTS = 8
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


def _config(root: Path, port: int, collecting: bool) -> str:
    return (
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"gc:\n  enabled: {str(collecting).lower()}\n  interval: 1ms\n  reviewafter: 1h\n"
    )


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _client(session: aiohttp.ClientSession, number: int, until: float) -> tuple[int, int]:
    pushes = pulls = 0
    repository = f"serving/c{number}"
    while time.monotonic() < until:
        layer, config = os.urandom(4096), json.dumps({"n": os.urandom(8).hex()}).encode()
        for blob in (layer, config):
            url = f"/v2/{repository}/blobs/uploads/?digest={_digest(blob)}"
            async with session.post(url, data=blob) as r:
                assert r.status == 201, await r.text()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": CONFIG, "digest": _digest(config), "size": len(config)},
                "layers": [{"mediaType": LAYER, "digest": _digest(layer), "size": len(layer)}],
            }
        ).encode()
        headers = {"Content-Type": OCI_MANIFEST}
        async with session.put(
            f"/v2/{repository}/manifests/latest", data=manifest, headers=headers
        ) as r:
            assert r.status == 201, await r.text()
        pushes += 1
        for _ in range(4):
            async with session.get(
                f"/v2/{repository}/manifests/latest", headers={"Accept": OCI_MANIFEST}
            ) as r:
                await r.read()
            async with session.get(f"/v2/{repository}/blobs/{_digest(layer)}") as r:
                assert (await r.read()) == layer
            pulls += 1
    return pushes, pulls


async def _load(url: str, seconds: float) -> tuple[float, float]:
    async with aiohttp.ClientSession(url) as session:
        until = time.monotonic() + seconds
        counts = await asyncio.gather(*(_client(session, n, until) for n in range(CLIENTS)))
    return sum(c[0] for c in counts) / seconds, sum(c[1] for c in counts) / seconds


def measure(root: Path, workdir: Path, seconds: float) -> dict[str, tuple[float, float]]:
    """Push and pull rates (per second) without, then with, collections running."""
    rates = {}
    for collecting in (False, True):
        port = free_port()
        config = workdir / f"serving-{collecting}.yml"
        config.write_text(_config(root, port, collecting))
        server = Server(
            "dockyard",
            [sys.executable, "-m", "dockyard", "serve", "--workers", "2", str(config)],
            f"http://127.0.0.1:{port}",
            workdir / f"serving-{collecting}.log",
        )
        server.start()
        try:
            rates["with" if collecting else "without"] = asyncio.run(_load(server.url, seconds))
        finally:
            server.stop()
    return rates
