"""CPU seconds per GiB of the S3 writer in this process, on one SeaweedFS, for the ways a
part can go out: streamed while its bytes arrive with a CRC32 trailer the store verifies,
streamed with the ETag's MD5 check (stores that verify no trailer), streamed without a
check (HTTPS), and buffered whole and signed (``streamparts: false``).

    python -m bench.s3_writer_cpu [--mib 512] [--repeats 2]

It writes ``--mib`` MiB as an upload of 16 MiB requests (each declared with ``expect``, as
a ``PATCH`` with ``Content-Length`` is), in pieces of 4 MiB (the request body's buffer),
and reads this process's CPU time (its threads included: the hashing runs there). CPU
time, not throughput: it says what each way costs, even on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import time
import uuid
from typing import Final

from dockyard.storage.driver import WriterState
from dockyard.storage.s3 import S3Parameters
from dockyard.storage.s3_checksums import Integrity
from dockyard.storage.s3_driver import S3Driver
from tests.seaweedfs import SeaweedServer

MiB: Final = 1024 * 1024
REQUEST: Final = 16 * MiB
PIECE: Final = 4 * MiB
MODES: Final = ("trailer", "md5", "unchecked", "buffered")
_FORCED: Final = {"md5": Integrity.ETAG_MD5, "unchecked": Integrity.TRANSPORT}


async def cpu_per_gib(server: SeaweedServer, bucket: str, mode: str, total: int) -> float:
    parameters = {
        **server.parameters(bucket),
        "rootdirectory": f"/cpu/{uuid.uuid4().hex}",
        "streamparts": mode != "buffered",
    }
    driver = S3Driver(S3Parameters.model_validate(parameters))
    opened = await driver.bucket()
    if mode in _FORCED:
        driver._opened = dataclasses.replace(opened, integrity=_FORCED[mode])
    piece = bytearray(os.urandom(PIECE))
    state = WriterState()
    started = time.process_time()
    for _ in range(total // REQUEST):
        writer = await driver.writer("/uploads/cpu/data", state)
        writer.expect(REQUEST)
        for _ in range(REQUEST // PIECE):
            await writer.write(memoryview(piece))
        state = await writer.close()
    spent = time.process_time() - started
    await driver.abort("/uploads/cpu/data", state)
    await driver.close()
    return spent * 1024 * MiB / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=512, help="MiB per upload (512)")
    parser.add_argument("--repeats", type=int, default=2, help="uploads per mode (2)")
    args = parser.parse_args()
    total = max(1, args.mib * MiB // REQUEST) * REQUEST
    server = SeaweedServer.start()
    try:
        bucket = server.new_bucket("cpu")
        for _ in range(args.repeats):
            for mode in MODES:
                spent = asyncio.run(cpu_per_gib(server, bucket, mode, total))
                print(f"{mode:<9} {spent:5.2f} CPU s/GiB (this process)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
