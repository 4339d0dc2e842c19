"""One Dockyard application and one client in one process: what ``bench.metrics_instructions``
runs under callgrind.

``python -m bench.inprocess_requests on|off|stub PATH N`` builds the application a worker
builds (the same configuration as ``make bench``'s servers, with or without
``http.debug.prometheus``), serves it on a TCP socket of 127.0.0.1, stores one image, and
sends ``PATH`` (``head``: a blob ``HEAD``; ``v2``: ``GET /v2/``; ``manifest``: a manifest
``GET`` by tag) ``N`` times over one keep-alive connection, one request at a time, after
a warm-up. ``stub`` answers every request with a fixed response from a bare asyncio
protocol: the client's own share of the count.

Under callgrind (``--instr-atstart=no``) instrumentation is switched on with
``callgrind_control`` just before the counted requests and off just after, so imports,
start and warm-up are not counted. The once-a-second metrics flush is put off: valgrind
slows the process some fifty times, so it would run fifty times as often per request as in
a real worker. One flush is counted instead, at the end: what adding up the counted
requests and writing the values costs (a worker flushes once a second, after several
thousand small requests: this counts more of the flush per request than a worker pays).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench.servers import free_port, metrics_config, registry_config

if TYPE_CHECKING:
    from dockyard.config.model import Config

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
WARM_UP = 500
STUB_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


class Client:
    """Raw HTTP/1.1 over one keep-alive connection: little work of its own to count."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def send(self, request: bytes) -> bytes:
        """The response's status line and headers (and its body, unless a ``HEAD``)."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length and not request.startswith(b"HEAD"):
            await self._reader.readexactly(length)
        return head

    def close(self) -> None:
        self._writer.close()


def _request(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [
        f"{method} {target} HTTP/1.1",
        "Host: bench",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def store_image(client: Client) -> dict[str, bytes]:
    """One image in ``bench/app``; the requests each path sends."""
    layer = os.urandom(4096)
    config = b"{}"
    digests = []
    for data in (layer, config):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        digests.append(digest)
        headers = {"Content-Type": "application/octet-stream"}
        answer = await client.send(
            _request("POST", f"/v2/bench/app/blobs/uploads/?digest={digest}", headers, data)
        )
        if b" 201 " not in answer.split(b"\r\n")[0]:
            raise RuntimeError(f"blob upload failed: {answer!r}")
    layer_digest, config_digest = digests
    descriptors = {
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": len(layer)}],
    }
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, **descriptors})
    manifest_bytes = manifest.encode()
    answer = await client.send(
        _request(
            "PUT",
            "/v2/bench/app/manifests/latest",
            {"Content-Type": MANIFEST_TYPE},
            manifest_bytes,
        )
    )
    if b" 201 " not in answer.split(b"\r\n")[0]:
        raise RuntimeError(f"manifest push failed: {answer!r}")
    return {
        "head": _request("HEAD", f"/v2/bench/app/blobs/{layer_digest}", {}),
        "v2": _request("GET", "/v2/", {}),
        "manifest": _request("GET", "/v2/bench/app/manifests/latest", {"Accept": MANIFEST_TYPE}),
    }


def _instrument(on: bool) -> None:
    """Switch callgrind's counting in this process (nothing without valgrind)."""
    if os.environ.get("DOCKYARD_BENCH_CALLGRIND"):
        flag = "on" if on else "off"
        subprocess.run(
            ["callgrind_control", "-i", flag, str(os.getpid())], check=True, capture_output=True
        )


async def counted(
    client: Client, request: bytes, count: int, flush: Callable[[], None] = lambda: None
) -> None:
    """``count`` requests, then ``flush``, counted; a warm-up before, not counted."""
    for _ in range(WARM_UP):
        await client.send(request)
    flush()
    _instrument(True)
    for _ in range(count):
        await client.send(request)
    flush()
    _instrument(False)


class _Stub(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._transport.write(STUB_ANSWER)


async def run_stub(count: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Stub, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Client(*await asyncio.open_connection("127.0.0.1", port))
    await counted(client, _request("GET", "/v2/", {}), count)
    client.close()
    server.close()


async def run_dockyard(metrics: bool, path: str, count: int) -> None:
    # Imported here: the metrics' directory must be named before the metrics library loads.
    from dockyard.config.load import load_config
    from dockyard.monitoring import MonitoringPlan
    from dockyard.observability import batch

    work = Path(tempfile.mkdtemp(prefix="dockyard-inprocess-"))
    port = free_port()
    text = registry_config(work / "store", port)
    if metrics:
        text += metrics_config(free_port())
    (work / "config.yml").write_text(text)
    config = load_config(work / "config.yml").config
    monitor = MonitoringPlan.prepare(config)
    interval, batch.FLUSH_INTERVAL = batch.FLUSH_INTERVAL, 1e9
    try:
        await _serve_counted(config, port, path, count)
    finally:
        batch.FLUSH_INTERVAL = interval
        monitor.close()


async def _serve_counted(config: Config, port: int, path: str, count: int) -> None:
    from aiohttp import web

    from dockyard import app as application
    from dockyard.monitoring import health_checks
    from dockyard.observability import batch

    shared = application.prepare(config)
    await application.prepare_database(config)
    registry = await application.open_registry(config)
    checks = health_checks(config, registry)
    app = application.make_web_app(config, registry, False, shared.security, checks)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        client = Client(*await asyncio.open_connection("127.0.0.1", port))
        requests = await store_image(client)
        await counted(client, requests[path], count, batch.flush)
        client.close()
    finally:
        await runner.cleanup()
        await registry.close()


def main(argv: list[str]) -> int:
    mode, path, count = argv[0], argv[1], int(argv[2])
    if mode == "stub":
        asyncio.run(run_stub(count))
    else:
        asyncio.run(run_dockyard(mode == "on", path, count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
