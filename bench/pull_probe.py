"""Where a pull's time goes on S3, and a download through the redirect, for Dockyard and
registry:2 side by side on one SeaweedFS, in interleaved rounds.

    nice -n 19 ionice -c3 python -m bench.pull_probe [--images 100] [--rounds 3]
        [--concurrency 16] [--download-mib 1024] [--no-redirect] [--lock /work/bench.lock]

Starts a SeaweedFS (``tests/seaweedfs.py``) and both registries, each on a bucket of its
own with the benchmark's configuration (``bench/servers.py``); only one of them is being
measured at any moment, the other is idle. It pushes ``--rounds`` sets of ``--images``
images of regbench's shape (three layers of 4 KiB to 1 MiB and a config) to each, and one
blob of ``--download-mib``. Then, round after round, registry after registry, the order
swapped each round (so that a change of the machine's load falls on both alike):

* **pull**: each image of the round's set once, ``--concurrency`` at a time, the way
  regbench pulls, but with the redirect taken apart: the manifest ``GET``, each blob ``GET``
  to the registry (its 307, not followed) and the ``GET`` of the presigned URL from
  SeaweedFS, every one timed. Per image: the CPU milliseconds of the registry's processes,
  of SeaweedFS, of this client, and of the whole machine (``/proc/stat``);
* **download**: the big blob once, its redirect followed (aiohttp), in MB/s.

It prints the medians over the rounds. With ``--lock`` the setup (servers, pushes) runs
as started, niced, and only the rounds run under the lock, with this process, the
registries and SeaweedFS (every thread) back at normal priority.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.servers import Server, dockyard_server, registry2_server
from tests.seaweedfs import SeaweedServer

KiB = 1024
MiB = 1024 * KiB
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TARGETS = ("dockyard", "registry2")


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (forked workers) so far."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    except OSError:
        pass
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Target:
    name: str
    server: Server
    tags: list[list[str]] = field(default_factory=list)
    big: str = ""
    pulls: list[dict[str, Any]] = field(default_factory=list)
    downloads: list[float] = field(default_factory=list)


async def upload(session: aiohttp.ClientSession, base: str, repo: str, blob: bytes) -> str:
    digest = digest_of(blob)
    async with session.post(f"{base}/v2/{repo}/blobs/uploads/") as started:
        location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    target = f"{location}{separator}digest={digest}"
    if target.startswith("/"):
        target = base + target
    async with session.put(target, data=blob) as done:
        if done.status != 201:
            raise RuntimeError(f"PUT blob: {done.status} {await done.text()}")
    return digest


async def push_images(
    session: aiohttp.ClientSession, base: str, count: int, seed: int
) -> list[str]:
    rng = random.Random(seed)
    tags = []
    for number in range(count):
        layers = [os.urandom(rng.randint(4 * KiB, MiB)) for _ in range(3)]
        config = json.dumps({"os": "linux", "n": f"{seed}-{number}"}).encode()
        for blob in [*layers, config]:
            await upload(session, base, "probe/app", blob)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [
                {"mediaType": LAYER, "digest": digest_of(layer), "size": len(layer)}
                for layer in layers
            ],
        }
        tag = f"s{seed}-{number}"
        async with session.put(
            f"{base}/v2/probe/app/manifests/{tag}",
            data=json.dumps(manifest).encode(),
            headers={"Content-Type": MANIFEST},
        ) as answer:
            if answer.status != 201:
                raise RuntimeError(f"PUT manifest: {answer.status} {await answer.text()}")
        tags.append(tag)
    return tags


async def timed_get(
    session: aiohttp.ClientSession, url: str, steps: list[float], **kw: Any
) -> tuple[aiohttp.ClientResponse, bytes]:
    started = time.perf_counter()
    async with session.get(url, allow_redirects=False, **kw) as answer:
        body = await answer.read()
    steps.append((time.perf_counter() - started) * 1e3)
    return answer, body


async def pull(
    session: aiohttp.ClientSession, base: str, tag: str, steps: dict[str, list[float]]
) -> int:
    """One image, the redirect taken apart; the requests it took."""
    _, body = await timed_get(
        session, f"{base}/v2/probe/app/manifests/{tag}", steps["manifest GET"],
        headers={"Accept": MANIFEST},
    )  # fmt: skip
    manifest = json.loads(body)
    requests = 1
    for descriptor in [manifest["config"], *manifest["layers"]]:
        url = f"{base}/v2/probe/app/blobs/{descriptor['digest']}"
        answer, body = await timed_get(session, url, steps["blob GET, registry"])
        requests += 1
        if answer.status == 307:
            _, body = await timed_get(
                session, answer.headers["Location"], steps["blob GET, store (presigned)"]
            )
            requests += 1
        elif answer.status != 200:
            raise RuntimeError(f"GET blob: {answer.status}")
        if len(body) != descriptor["size"]:
            raise RuntimeError(f"blob of {len(body)} bytes, {descriptor['size']} expected")
    return requests


async def pull_round(
    session: aiohttp.ClientSession, target: Target, tags: list[str], store_pid: int, conc: int
) -> dict[str, Any]:
    steps: dict[str, list[float]] = defaultdict(list)
    queue = list(tags)
    counted: list[int] = []
    server = target.server
    before = (
        cpu_seconds(server.pid),
        cpu_seconds(store_pid),
        time.process_time(),
        machine_busy_seconds(),
    )
    load = os.getloadavg()[0]
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            tag = queue.pop()
            counted.append(await pull(session, server.url, tag, steps))

    await asyncio.gather(*(worker() for _ in range(conc)))
    wall = time.perf_counter() - started
    after = (
        cpu_seconds(server.pid),
        cpu_seconds(store_pid),
        time.process_time(),
        machine_busy_seconds(),
    )
    per_image = [(b - a) * 1e3 / len(tags) for a, b in zip(before, after, strict=True)]
    return {
        "images/s": len(tags) / wall,
        "load": (load, os.getloadavg()[0]),
        "requests/image": sum(counted) / len(tags),
        "CPU ms/image: registry": per_image[0],
        "CPU ms/image: SeaweedFS": per_image[1],
        "CPU ms/image: client": per_image[2],
        "CPU ms/image: machine": per_image[3],
        **{f"p50 ms: {name}": statistics.median(values) for name, values in steps.items()},
    }


async def download(session: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    started = time.perf_counter()
    got = 0
    async with session.get(url) as answer:
        if answer.status != 200:
            raise RuntimeError(f"download: {answer.status}")
        async for chunk in answer.content.iter_any():
            got += len(chunk)
    return got, time.perf_counter() - started


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found = [pid]
    for each in found:
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{each}/task/{each}/children").read_text().split()
            found += [int(child) for child in children]
    return found


def unnice(pids: list[int]) -> None:
    """Every thread of ``pids`` (and their descendants) at normal CPU and I/O priority:
    niceness is per thread on Linux, so each one is set."""
    for pid in pids:
        for each in process_tree(pid):
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{each}/task"):
                    with contextlib.suppress(OSError):
                        os.setpriority(os.PRIO_PROCESS, int(task), 0)
                        subprocess.run(["ionice", "-c2", "-n4", "-p", task], check=False)


_HELD: list[Any] = []


def take_lock(path: str) -> None:
    """Wait for the benchmark lock and hold it until this process ends."""
    handle = Path(path).open("a")  # noqa: SIM115 (closed when the process ends)
    fcntl.flock(handle, fcntl.LOCK_EX)
    _HELD.append(handle)


def big_blob(mib: int) -> bytes:
    return os.urandom(mib * MiB) if mib else b""


async def run(targets: list[Target], args: argparse.Namespace, store_pid: int) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        blob = big_blob(args.download_mib)
        for target in targets:
            for number in range(args.rounds):
                seed = number + 1
                target.tags.append(await push_images(session, target.server.url, args.images, seed))
            if blob:
                target.big = await upload(session, target.server.url, "probe/big", blob)
            await pull(session, target.server.url, target.tags[0][0], defaultdict(list))
        del blob
        if args.lock:
            await asyncio.to_thread(take_lock, args.lock)
            unnice([os.getpid(), store_pid, *(target.server.pid for target in targets)])
            print(f"lock taken, load {os.getloadavg()}", flush=True)
        for number in range(args.rounds):
            # The order swapped each round: neither side always runs right after the other.
            for target in targets if number % 2 == 0 else targets[::-1]:
                tags = target.tags[number]
                result = await pull_round(session, target, tags, store_pid, args.concurrency)
                target.pulls.append(result)
                print(f"round {number + 1} {target.name} pull: {json.dumps(result)}", flush=True)
                if target.big:
                    got, wall = await download(
                        session, f"{target.server.url}/v2/probe/big/blobs/{target.big}"
                    )
                    target.downloads.append(got / wall / 1e6)
                    print(f"round {number + 1} {target.name} download: {got / wall / 1e6:.0f} MB/s")


def summary(targets: list[Target]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for target in targets:
        keys = [key for key in target.pulls[0] if key != "load"]
        result[target.name] = {
            **{key: statistics.median(p[key] for p in target.pulls) for key in keys},
            "pull images/s, each round": [round(p["images/s"], 1) for p in target.pulls],
            "download MB/s, each round": [round(value) for value in target.downloads],
            "download MB/s": statistics.median(target.downloads) if target.downloads else None,
            "load, each round": [p["load"] for p in target.pulls],
        }
    return result


def start(name: str, seaweed: SeaweedServer, args: argparse.Namespace, work: Path) -> Target:
    base = work / name
    (base / "store").mkdir(parents=True)
    storage = seaweed.storage_section(seaweed.new_bucket(name))
    if args.no_redirect:
        storage += "  redirect:\n    disable: true\n"
    log = base / "server.log"
    if name == "dockyard":
        server = dockyard_server(base / "store", base, log, None, storage)
    else:
        server = registry2_server(base / "store", base, log, args.registry2, storage)
    server.start()
    return Target(name, server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100, help="images per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--download-mib", type=int, default=1024, help="0: no download")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument(
        "--no-redirect", action="store_true", help="storage.redirect.disable for both"
    )
    parser.add_argument("--lock", help="take this flock for the rounds only")
    parser.add_argument("--registry2", default=shutil.which("docker-registry") or "")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pull-probe-"))
    seaweed = SeaweedServer.start()
    targets: list[Target] = []
    try:
        if seaweed.daemon is None or seaweed.daemon.proc is None:
            raise RuntimeError("SeaweedFS did not start")
        for name in args.targets.split(","):
            targets.append(start(name, seaweed, args, work))
        asyncio.run(run(targets, args, seaweed.daemon.proc.pid))
    finally:
        for target in targets:
            target.server.stop()
        seaweed.stop()
        shutil.rmtree(work, ignore_errors=True)
    json.dump(summary(targets), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
