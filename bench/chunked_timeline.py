"""Where the time of one chunked upload goes, on S3: a timeline of its requests and the CPU
of the registry and of SeaweedFS in each phase.

    python -m bench.chunked_timeline [--target dockyard|registry2] [--mib 1024] [--json out.json]

It starts one SeaweedFS (as ``bench.run --storage s3`` does) and the registry on a bucket
of it, then pushes ``--mib`` MiB of random bytes as ``POST``, ``PATCH``es of 16 MiB (each
with ``Content-Length``, as regbench's chunked scenario sends them) and the final ``PUT``,
over a raw socket so that it knows when each body's last byte was written. Per ``PATCH`` it
records the time to write the body and the wait from its last byte to the ``202``; then the
``PUT``'s time. CPU seconds of the registry's process tree and of SeaweedFS are read from
/proc at the phase boundaries. Run it under the benchmark lock.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from bench.pull_probe import cpu_seconds
from bench.servers import Server, dockyard_server, registry2_server

MiB: Final = 1024 * 1024
PATCH: Final = 16 * MiB


@dataclass
class Timeline:
    target: str
    mib: int
    #: per PATCH: seconds writing its body, seconds from its last byte to the 202
    body_s: list[float] = field(default_factory=list)
    wait_s: list[float] = field(default_factory=list)
    #: seconds between a 202 and the next PATCH's first byte (this client)
    client_gap_s: list[float] = field(default_factory=list)
    put_s: float = 0.0
    total_s: float = 0.0
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)


class _Connection:
    """One HTTP/1.1 connection to the registry, opened again after a ``Connection: close``
    (Dockyard closes it after a large body it read straight from the socket)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        return self.streams

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
        self.streams = None


async def _request(
    connection: _Connection, head: str, body: bytes
) -> tuple[int, dict[str, str], float, float]:
    """Send one request; its status, headers, the seconds the body took to write, and the
    seconds from its last byte to the answer's head."""
    started = time.perf_counter()
    reader, writer = await connection.open()
    writer.write(head.encode())
    view = memoryview(body)
    for start in range(0, len(view), 4 * MiB):
        writer.write(view[start : start + 4 * MiB])
        await writer.drain()
    sent = time.perf_counter()
    status_line = await reader.readline()
    answered = time.perf_counter()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length:
        await reader.readexactly(length)
    if headers.get("connection", "").lower() == "close":
        connection.close()
    return int(status_line.split()[1]), headers, sent - started, answered - sent


def _path(location: str) -> str:
    return "/" + location.split("/", 3)[3] if location.startswith("http") else location


async def _push(url: str, data: bytes, server_pid: int, weed_pid: int, timeline: Timeline) -> None:
    host, port = url.removeprefix("http://").split(":")
    connection = _Connection(host, int(port))
    common = f"Host: {host}:{port}\r\n"

    def cpu() -> dict[str, float]:
        return {"server": cpu_seconds(server_pid), "seaweedfs": cpu_seconds(weed_pid)}

    begin = time.perf_counter()
    status, headers, _, _ = await _request(
        connection,
        f"POST /v2/timeline/blobs/uploads/ HTTP/1.1\r\n{common}Content-Length: 0\r\n\r\n",
        b"",
    )
    assert status == 202, status
    location = _path(headers["location"])
    marks = {"start": cpu()}
    answered = time.perf_counter()
    for offset in range(0, len(data), PATCH):
        chunk = data[offset : offset + PATCH]
        head = (
            f"PATCH {location} HTTP/1.1\r\n{common}Content-Type: application/octet-stream\r\n"
            f"Content-Range: {offset}-{offset + len(chunk) - 1}\r\n"
            f"Content-Length: {len(chunk)}\r\n\r\n"
        )
        timeline.client_gap_s.append(time.perf_counter() - answered)
        status, headers, body_s, wait_s = await _request(connection, head, chunk)
        answered = time.perf_counter()
        assert status == 202, status
        location = _path(headers["location"])
        timeline.body_s.append(body_s)
        timeline.wait_s.append(wait_s)
    marks["patches"] = cpu()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    separator = "&" if "?" in location else "?"
    put_started = time.perf_counter()
    status, _, _, _ = await _request(
        connection,
        f"PUT {location}{separator}digest={digest} HTTP/1.1\r\n{common}Content-Length: 0\r\n\r\n",
        b"",
    )
    assert status == 201, status
    timeline.put_s = time.perf_counter() - put_started
    timeline.total_s = time.perf_counter() - begin
    marks["put"] = cpu()
    connection.close()
    for phase, before, after in (("patches", "start", "patches"), ("put", "patches", "put")):
        timeline.cpu[phase] = {k: marks[after][k] - marks[before][k] for k in marks[after]}


def _report(timeline: Timeline) -> None:
    mb_s = timeline.mib * MiB / timeline.total_s / 1e6
    print(f"{timeline.target}: {timeline.mib} MiB in {timeline.total_s:.2f} s ({mb_s:.1f} MB/s)")
    for name, values in (
        ("PATCH bodies", timeline.body_s),
        ("last byte to 202", timeline.wait_s),
        ("202 to next PATCH", timeline.client_gap_s),
    ):
        median_ms = statistics.median(values) * 1000
        print(f"  {name:<18} {sum(values):6.2f} s (median {median_ms:.0f} ms)")
    print(f"  {'final PUT':<18} {timeline.put_s:6.2f} s")
    for phase, spent in timeline.cpu.items():
        print(f"  CPU s, {phase:<8} " + ", ".join(f"{k} {v:.2f}" for k, v in spent.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("dockyard", "registry2"), default="dockyard")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--registry2", default="/usr/bin/docker-registry")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from tests.seaweedfs import SeaweedServer

    data = os.urandom(args.mib * MiB)
    weed = SeaweedServer.start()
    server: Server | None = None
    try:
        assert weed.daemon is not None and weed.daemon.proc is not None
        workdir = Path(tempfile.mkdtemp(prefix="dockyard-timeline-"))
        storage = weed.storage_section(weed.new_bucket(args.target))
        if args.target == "dockyard":
            server = dockyard_server(
                workdir / "store", workdir, workdir / "server.log", None, storage
            )
        else:
            server = registry2_server(
                workdir / "store", workdir, workdir / "server.log", args.registry2, storage
            )
        server.start()
        timeline = Timeline(args.target, args.mib)
        asyncio.run(_push(server.url, data, server.pid, weed.daemon.proc.pid, timeline))
    finally:
        if server is not None:
            server.stop()
        weed.stop()
    _report(timeline)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(timeline), indent=1))
    sys.exit(0)


if __name__ == "__main__":
    main()
