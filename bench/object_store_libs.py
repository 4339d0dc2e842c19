"""Emulator throughput of the libraries the GCS and Azure drivers could use (docs/storage.md).

Starts Azurite and fake-gcs-server (the test fixtures), then writes and reads one object of
``--mib`` MiB a few times with each candidate and prints MB/s. Figures are *emulator*
figures: they compare the client libraries on this machine, not the clouds. obstore is
measured when it is installed (``pip install obstore``); it is not a dependency.

    python -m bench.object_store_libs --mib 64 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import time
from collections.abc import Awaitable, Callable

from dockyard.storage.azure_driver import AzureDriver
from dockyard.storage.driver import StorageDriver
from dockyard.storage.gcs_driver import GcsDriver
from tests.azurite import ACCOUNT, KEY, running_azurite
from tests.fakegcs import running_fake_gcs, service_account_info

MiB = 1024 * 1024


async def _timed(job: Callable[[], Awaitable[None]], size: int, rounds: int) -> float:
    """The median MB/s of ``rounds`` runs of ``job`` moving ``size`` bytes."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        await job()
        rates.append(size / (time.perf_counter() - start) / 1e6)
    return statistics.median(rates)


async def _driver_rates(driver: StorageDriver, data: bytes, rounds: int) -> tuple[float, float]:
    async def write() -> None:
        writer = await driver.writer("/uploads/u/data")
        for start in range(0, len(data), MiB):
            await writer.write(data[start : start + MiB])
        state = await writer.close()
        await driver.commit("/uploads/u/data", state, "/blob")

    async def read() -> None:
        async for _chunk in driver.reader("/blob"):
            pass

    return await _timed(write, len(data), rounds), await _timed(read, len(data), rounds)


async def _sdk_read(driver: AzureDriver, rounds: int) -> float:
    blob = driver._blob(driver.key("/blob"))
    size = await driver.stat("/blob") or 0

    async def read() -> None:
        downloader = await blob.download_blob(max_concurrency=1)
        async for _chunk in downloader.chunks():
            pass

    return await _timed(read, size, rounds)


async def _obstore_read(store: object, data: bytes, rounds: int) -> float:
    import obstore

    async def read() -> None:
        result = await obstore.get_async(store, "bench/blob")  # type: ignore[arg-type]
        async for _chunk in result.stream(min_chunk_size=MiB):
            pass

    await obstore.put_async(store, "bench/blob", data)  # type: ignore[arg-type]
    return await _timed(read, len(data), rounds)


def _gcs_client_rates(endpoint: str, bucket: str, data: bytes, rounds: int) -> tuple[float, float]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="bench",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoint},
    )
    blob = client.bucket(bucket).blob("client/blob", chunk_size=5 * MiB)
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        blob.upload_from_file(io.BytesIO(data), size=len(data))
        rates.append(len(data) / (time.perf_counter() - start) / 1e6)
    write = statistics.median(rates)
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for offset in range(0, len(data), 4 * MiB):
            blob.download_as_bytes(start=offset, end=min(offset + 4 * MiB, len(data)) - 1)
        rates.append(len(data) / (time.perf_counter() - start) / 1e6)
    return write, statistics.median(rates)


async def main(size_mib: int, rounds: int) -> None:
    data = random.Random(0).randbytes(size_mib * MiB)
    rows: list[tuple[str, str, float]] = []
    with running_azurite() as azurite:
        container = azurite.create_container()
        driver = AzureDriver(
            account_name=ACCOUNT,
            account_key=KEY,
            container=container,
            service_url=azurite.endpoint,
        )
        write, read = await _driver_rates(driver, data, rounds)
        rows += [("azure", "driver write (azure-storage-blob blocks)", write)]
        rows += [("azure", "driver read (obstore stream)", read)]
        rows += [("azure", "azure-storage-blob read (SDK chunks)", await _sdk_read(driver, rounds))]
        try:
            from obstore.store import AzureStore
        except ImportError:
            pass
        else:
            store = AzureStore(
                container,
                account_name=ACCOUNT,
                account_key=KEY,
                endpoint=azurite.endpoint,
                client_options={"allow_http": True},
            )
            rows += [("azure", "obstore read (plain)", await _obstore_read(store, data, rounds))]
        await driver.close()
    with running_fake_gcs() as fake_gcs:
        bucket = fake_gcs.create_bucket()
        gcs = GcsDriver(
            bucket=bucket, credentials=service_account_info(), endpoint=fake_gcs.endpoint
        )
        write, read = await _driver_rates(gcs, data, rounds)
        await gcs.close()
        rows += [("gcs", "driver write (JSON API, aiohttp)", write)]
        rows += [("gcs", "driver read (JSON API, aiohttp)", read)]
        write, read = await asyncio.to_thread(
            _gcs_client_rates, fake_gcs.endpoint, bucket, data, rounds
        )
        rows += [("gcs", "google-cloud-storage write (resumable, 5 MiB)", write)]
        rows += [("gcs", "google-cloud-storage read (4 MiB ranges)", read)]
    print(f"{size_mib} MiB object, median of {rounds} rounds, emulators on 127.0.0.1")
    for backend, what, rate in rows:
        print(f"{backend:6} {what:48} {rate:8.1f} MB/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.mib, arguments.rounds))
