"""GET throughput of the two S3 clients Dockyard could read with, on one SeaweedFS.

    python -m bench.s3_clients [--mib 256] [--repeats 5] [--concurrency 4]

Starts a SeaweedFS (``tests/seaweedfs.py``), writes one object, then reads it whole,
``--repeats`` times, with aiobotocore (``get_object``, the body streamed in 1 MiB reads,
which is what the S3 driver does) and with obstore (``get_async`` streamed), one read at
a time and ``--concurrency`` at once; prints MB/s (medians) and the CPU seconds this
process spent per GiB. obstore is optional (not a dependency of Dockyard): without it only
aiobotocore is measured. The numbers are in docs/storage.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.seaweedfs import ACCESS_KEY, REGION, SECRET_KEY, SeaweedServer

MiB = 1 << 20
KEY = "bench/object"


DRIVERS: list[Any] = []


async def read_aiobotocore(server: SeaweedServer, bucket: str) -> Callable[[], Awaitable[int]]:
    from dockyard.storage.s3 import S3Parameters
    from dockyard.storage.s3_driver import S3Driver

    driver = S3Driver(S3Parameters.model_validate(server.parameters(bucket)))
    DRIVERS.append(driver)
    opened = await driver.bucket()

    async def read() -> int:
        found = await opened.client.get_object(Bucket=bucket, Key=KEY)
        size = 0
        async with found["Body"] as body:
            async for chunk in body.iter_chunks(MiB):
                size += len(chunk)
        return size

    return read


async def read_obstore(server: SeaweedServer, bucket: str) -> Callable[[], Awaitable[int]]:
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=server.endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region=REGION,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )

    async def read() -> int:
        found = await store.get_async(KEY)
        size = 0
        async for chunk in found.stream(min_chunk_size=MiB):
            size += len(chunk)
        return size

    return read


async def measure(
    read: Callable[[], Awaitable[int]], size: int, repeats: int, concurrency: int
) -> dict[str, float]:
    rates, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        sizes = await asyncio.gather(*(read() for _ in range(concurrency)))
        wall, used = time.perf_counter() - t0, time.process_time() - c0
        assert sizes == [size] * concurrency
        rates.append(size * concurrency / wall / 1e6)
        cpu.append(used / (size * concurrency / (1 << 30)))
    return {"MB/s": statistics.median(rates), "CPU s/GiB": statistics.median(cpu)}


async def main_async(args: argparse.Namespace) -> None:
    server = SeaweedServer.start()
    try:
        bucket = server.new_bucket("clients")
        size = args.mib * MiB
        server.client().put_object(Bucket=bucket, Key=KEY, Body=os.urandom(size))
        readers: dict[str, Any] = {"aiobotocore": read_aiobotocore}
        try:
            import obstore  # noqa: F401

            readers["obstore"] = read_obstore
        except ImportError:
            print("obstore is not installed: aiobotocore only")
        for name, make in readers.items():
            read = await make(server, bucket)
            await read()  # warm: connections, SeaweedFS's own caches
            for concurrency in (1, args.concurrency):
                result = await measure(read, size, args.repeats, concurrency)
                print(
                    f"{name:12} {concurrency} at once: {result['MB/s']:7.0f} MB/s, "
                    f"{result['CPU s/GiB']:.2f} CPU s/GiB (this process)"
                )
    finally:
        for driver in DRIVERS:
            await driver.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
