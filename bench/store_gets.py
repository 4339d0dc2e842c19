"""How many presigned ``GET``s per second SeaweedFS serves, by concurrency: the ceiling of
any registry that redirects every blob read there.

    nice -n 19 ionice -c3 python -m bench.store_gets [--objects 800] [--concurrency 16,32,64]
                                                     [--lock /work/bench.lock]

Starts a SeaweedFS (``tests/seaweedfs.py``), writes ``--objects`` objects of regbench's
layer sizes (4 KiB to 1 MiB) through Dockyard's S3 driver, signs a ``GET`` URL of each
the way a redirect does, then reads them all, once per concurrency, with one aiohttp
session (a pull's client). Prints GETs per second, the median and p90 latency, and the
CPU milliseconds per ``GET`` of SeaweedFS, of this client and of the whole machine. With
``--lock`` the writes run as started (niced) and the reads under the lock at normal
priority, SeaweedFS included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from datetime import timedelta
from typing import Any

import aiohttp

from bench.pull_probe import cpu_seconds, machine_busy_seconds, take_lock, unnice
from tests.seaweedfs import SeaweedServer

KiB = 1024
MiB = 1024 * KiB


async def write_objects(server: SeaweedServer, count: int) -> list[str]:
    from dockyard.storage.s3 import S3Parameters
    from dockyard.storage.s3_driver import S3Driver

    bucket = server.new_bucket("gets")
    parameters = S3Parameters.model_validate(server.parameters(bucket))
    driver = S3Driver(parameters, redirect_expiry=timedelta(minutes=20))
    rng = random.Random(3)
    urls = []
    try:
        for number in range(count):
            path = f"/blobs/{number:05d}"
            await driver.put_content(path, os.urandom(rng.randint(4 * KiB, MiB)))
            url = await driver.redirect_url(path, "GET")
            if url is None:
                raise RuntimeError("no presigned URL")
            urls.append(url)
    finally:
        await driver.close()
    return urls


async def read_all(urls: list[str], concurrency: int, store_pid: int) -> dict[str, Any]:
    latencies: list[float] = []
    queue = list(urls)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(urls[0]) as warm:
            await warm.read()
        before = cpu_seconds(store_pid), time.process_time(), machine_busy_seconds()
        started = time.perf_counter()

        async def worker() -> None:
            while queue:
                url = queue.pop()
                begun = time.perf_counter()
                async with session.get(url) as answer:
                    if answer.status != 200:
                        raise RuntimeError(f"GET: {answer.status}")
                    await answer.read()
                latencies.append((time.perf_counter() - begun) * 1e3)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        after = cpu_seconds(store_pid), time.process_time(), machine_busy_seconds()
    cpu = [(b - a) * 1e3 / len(urls) for a, b in zip(before, after, strict=True)]
    return {
        "concurrency": concurrency,
        "GET/s": len(urls) / wall,
        "p50 ms": statistics.median(latencies),
        "p90 ms": statistics.quantiles(latencies, n=10)[-1],
        "CPU ms/GET: SeaweedFS": cpu[0],
        "CPU ms/GET: client": cpu[1],
        "CPU ms/GET: machine": cpu[2],
        "load": os.getloadavg()[0],
    }


async def run(args: argparse.Namespace, server: SeaweedServer, store_pid: int) -> None:
    urls = await write_objects(server, args.objects)
    if args.lock:
        await asyncio.to_thread(take_lock, args.lock)
        unnice([os.getpid(), store_pid])
        print(f"lock taken, load {os.getloadavg()}", flush=True)
    for concurrency in (int(value) for value in args.concurrency.split(",")):
        for _ in range(args.rounds):
            print(json.dumps(await read_all(urls, concurrency, store_pid)), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=800)
    parser.add_argument("--concurrency", default="16,32,64")
    parser.add_argument("--rounds", type=int, default=2, help="reads of all per concurrency")
    parser.add_argument("--lock", help="take this flock for the reads only")
    args = parser.parse_args()
    server = SeaweedServer.start()
    try:
        if server.daemon is None or server.daemon.proc is None:
            raise RuntimeError("SeaweedFS did not start")
        asyncio.run(run(args, server, server.daemon.proc.pid))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
