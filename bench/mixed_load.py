"""Mixed load, the profile of zot's benchmark: 75 % pulls and 25 % pushes from 32 clients
at once, for a fixed time, with the latency of each operation and the overall throughput.

    python -m bench.mixed_load URL [--pid PID] [--seconds 30] [--clients 32] [--json out.json]

An operation is a whole image, as a client sees it:

* **pull**: ``GET`` the manifest by tag, then ``GET`` its config and every layer, each
  read to its end;
* **push**: for the config and each layer ``HEAD`` (absent), ``POST /blobs/uploads/``,
  ``PUT <location>?digest=`` with the body (containerd's monolithic upload), then ``PUT``
  the manifest by a new tag.

Images have one to three layers of 4 KiB to 4 MiB (log-uniform: as many small layers as
large ones), made of a random block behind a unique prefix so that every pushed blob is
new. Before the clock starts, ``--images`` images are pushed for the pulls to choose
from. The clients are spread over ``--procs`` processes (one Python process could not
drive 32 clients against a fast server on its own); every client follows its own seeded
sequence of operations, so both registries get the same workload. A client starts no
operation after ``--seconds``; throughput counts every completed operation over the time
until the last one ended. The server's CPU time (``--pid``: its whole process tree) is
read from /proc before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

from bench.big_upload import process_tree
from bench.harness import Harness
from bench.report import Row
from bench.servers import DOCKYARD, REGISTRY2, TITLES, ServerError

KiB = 1 << 10
MiB = 1 << 20
SMALLEST, LARGEST = 4 * KiB, 4 * MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = ", ".join([OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"])
SEED_REPOS = 8
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Image:
    """Where a pushed image is, and how many bytes a pull of it reads."""

    repo: str
    tag: str
    size: int


class Content:
    """Blob bytes: a unique 16-byte prefix, then part of one random block."""

    def __init__(self, label: int) -> None:
        self._block = os.urandom(LARGEST)
        self._label = label
        self._count = 0

    def blob(self, size: int) -> bytes:
        self._count += 1
        prefix = self._label.to_bytes(8, "big") + self._count.to_bytes(8, "big")
        return prefix + self._block[: max(size - len(prefix), 0)]


def layer_sizes(rng: random.Random) -> list[int]:
    """One to three layer sizes, log-uniform between 4 KiB and 4 MiB."""
    span = LARGEST / SMALLEST
    return [int(SMALLEST * span ** rng.random()) for _ in range(rng.randint(1, 3))]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class OperationError(RuntimeError):
    """A request of an operation got an answer it should not have."""


async def _expect(answer: aiohttp.ClientResponse, status: int, what: str) -> None:
    if answer.status != status:
        text = (await answer.text())[:200]
        raise OperationError(f"{what} -> {answer.status} (want {status}): {text}")


async def push_blob(session: aiohttp.ClientSession, url: str, repo: str, data: bytes) -> str:
    digest = await asyncio.to_thread(digest_of, data) if len(data) > MiB else digest_of(data)
    async with session.head(f"{url}/v2/{repo}/blobs/{digest}") as answer:
        if answer.status == 200:
            return digest
    async with session.post(f"{url}/v2/{repo}/blobs/uploads/") as answer:
        await _expect(answer, 202, "POST blobs/uploads/")
        location = urljoin(url + "/", answer.headers["Location"])
    target = location + ("&" if "?" in location else "?") + "digest=" + digest
    headers = {"Content-Type": "application/octet-stream"}
    async with session.put(target, data=data, headers=headers) as answer:
        await _expect(answer, 201, "PUT upload?digest=")
    return digest


async def push_image(
    session: aiohttp.ClientSession,
    url: str,
    repo: str,
    tag: str,
    sizes: list[int],
    content: Content,
) -> int:
    """Push one image; returns the bytes a pull of it reads."""
    layers = []
    for size in sizes:
        data = content.blob(size)
        layers.append(
            {
                "mediaType": OCI_LAYER,
                "size": len(data),
                "digest": await push_blob(session, url, repo, data),
            }
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": f"{tag}",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        }
    ).encode()
    config_digest = await push_blob(session, url, repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
            "layers": layers,
        }
    ).encode()
    headers = {"Content-Type": OCI_MANIFEST}
    async with session.put(
        f"{url}/v2/{repo}/manifests/{tag}", data=manifest, headers=headers
    ) as answer:
        await _expect(answer, 201, "PUT manifest")
    return len(config) + sum(int(str(layer["size"])) for layer in layers)


async def _read_all(answer: aiohttp.ClientResponse) -> int:
    total = 0
    async for piece in answer.content.iter_any():
        total += len(piece)
    return total


async def pull_image(session: aiohttp.ClientSession, url: str, image: Image) -> int:
    """Pull one image (manifest, config, layers); returns the blob bytes read."""
    async with session.get(
        f"{url}/v2/{image.repo}/manifests/{image.tag}", headers={"Accept": ACCEPT}
    ) as answer:
        await _expect(answer, 200, "GET manifest")
        manifest = json.loads(await answer.read())
    total = 0
    for descriptor in [manifest["config"], *manifest["layers"]]:
        async with session.get(f"{url}/v2/{image.repo}/blobs/{descriptor['digest']}") as answer:
            await _expect(answer, 200, "GET blob")
            got = await _read_all(answer)
        if got != descriptor["size"]:
            raise OperationError(f"GET blob read {got} bytes of {descriptor['size']}")
        total += got
    return total


def _session(clients: int) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
    return aiohttp.ClientSession(timeout=timeout, connector=connector, trust_env=False)


async def seed(url: str, images: int, rng_seed: int) -> list[Image]:
    """Push the images the pulls choose from, 8 at a time."""
    rng = random.Random(rng_seed)
    content = Content(1 << 40)
    plan = [(f"mixed/seed-{i % SEED_REPOS}", f"v{i}", layer_sizes(rng)) for i in range(images)]
    limit = asyncio.Semaphore(8)
    async with _session(8) as session:

        async def one(repo: str, tag: str, sizes: list[int]) -> Image:
            async with limit:
                return Image(repo, tag, await push_image(session, url, repo, tag, sizes, content))

        return list(await asyncio.gather(*(one(*step) for step in plan)))


@dataclass(frozen=True)
class Part:
    """What one client process runs: its clients' indexes, from ``first`` on."""

    url: str
    first: int
    clients: int
    start_at: float  # time.time() at which every process starts
    seconds: float
    push_share: float
    images: list[Image]
    rng_seed: int


async def _run_part(part: Part) -> dict[str, Any]:
    samples: list[tuple[str, float, int]] = []
    errors: list[str] = []
    failed = {"pull": 0, "push": 0}
    async with _session(part.clients) as session:
        async with session.get(f"{part.url}/v2/") as answer:
            await answer.read()
        await asyncio.sleep(max(part.start_at - time.time(), 0.0))
        start = time.monotonic()
        deadline = start + part.seconds

        async def client(index: int) -> None:
            rng = random.Random(part.rng_seed * 1000 + index)
            content = Content(index)
            pushes = 0
            while time.monotonic() < deadline:
                kind = "push" if rng.random() < part.push_share else "pull"
                t0 = time.monotonic()
                try:
                    if kind == "pull":
                        moved = await pull_image(session, part.url, rng.choice(part.images))
                    else:
                        pushes += 1
                        repo = f"mixed/push-{index % SEED_REPOS}"
                        tag = f"c{index}-{pushes}"
                        sizes = layer_sizes(rng)
                        moved = await push_image(session, part.url, repo, tag, sizes, content)
                except (OperationError, aiohttp.ClientError, TimeoutError) as exc:
                    failed[kind] += 1
                    if len(errors) < 10:
                        errors.append(f"{kind}: {exc!r}"[:300])
                    continue
                samples.append((kind, time.monotonic() - t0, moved))

        indexes = range(part.first, part.first + part.clients)
        await asyncio.gather(*(client(i) for i in indexes))
        end = time.monotonic()
    return {"samples": samples, "errors": errors, "failed": failed, "elapsed": end - start}


def run_part(part: Part) -> dict[str, Any]:
    """One client process (the entry point of the pool's workers)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_run_part(part))


def cpu_seconds(root: int) -> float:
    """User + system CPU time of ``root``'s live process tree."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summarize(kind: str, values: list[float], failed: int) -> dict[str, Any]:
    if not values:
        return {"count": 0, "failed": failed}
    return {
        "count": len(values),
        "failed": failed,
        "p50_ms": statistics.median(values) * 1000,
        "p90_ms": percentile(values, 0.90) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
        "max_ms": max(values) * 1000,
    }


def loadavg() -> float:
    return os.getloadavg()[0]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    url = args.url.rstrip("/")
    result: dict[str, Any] = {
        "url": url,
        "clients": args.clients,
        "procs": args.procs,
        "seconds": args.seconds,
        "push_share": args.push_share,
        "loadavg_start": loadavg(),
    }
    t0 = time.monotonic()
    images = asyncio.run(seed(url, args.images, args.seed))
    result["seed_s"] = time.monotonic() - t0
    result["seed_images"] = len(images)
    procs = max(1, min(args.procs, args.clients))
    share, extra = divmod(args.clients, procs)
    start_at = time.time() + 2.0  # the processes start together, after spawning
    parts, first = [], 0
    for i in range(procs):
        count = share + (1 if i < extra else 0)
        parts.append(
            Part(url, first, count, start_at, args.seconds, args.push_share, images, args.seed)
        )
        first += count
    cpu_before = cpu_seconds(args.pid) if args.pid else None
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        outcomes = pool.map(run_part, parts)
    if args.pid and cpu_before is not None:
        result["server_cpu_s"] = cpu_seconds(args.pid) - cpu_before
    samples = [s for o in outcomes for s in o["samples"]]
    elapsed = max(o["elapsed"] for o in outcomes)
    ops = {}
    for kind in ("pull", "push"):
        values = [s[1] for s in samples if s[0] == kind]
        failed = sum(o["failed"][kind] for o in outcomes)
        ops[kind] = summarize(kind, values, failed)
    ops["all"] = summarize(
        "all", [s[1] for s in samples], sum(ops[k]["failed"] for k in ("pull", "push"))
    )
    result.update(
        ops=ops,
        elapsed_s=elapsed,
        throughput_ops_s=len(samples) / elapsed if elapsed else None,
        mb_s=sum(s[2] for s in samples) / elapsed / 1e6 if elapsed else None,
        errors=[e for o in outcomes for e in o["errors"]][:10],
        loadavg_end=loadavg(),
    )
    if result.get("server_cpu_s") is not None and samples:
        result["server_cpu_ms_per_op"] = result["server_cpu_s"] * 1000 / len(samples)
    return result


def describe(result: dict[str, Any]) -> str:
    ops = result.get("ops", {})

    def one(kind: str) -> str:
        op = ops.get(kind, {})
        if not op.get("count"):
            return f"{kind}: none"
        return (
            f"{kind} {op['count']} (p50 {op['p50_ms']:.1f} ms, p99 {op['p99_ms']:.1f} ms"
            + (f", {op['failed']} failed" if op.get("failed") else "")
            + ")"
        )

    return (
        f"{result.get('throughput_ops_s') or 0:.1f} ops/s, {result.get('mb_s') or 0:.0f} MB/s; "
        + "; ".join(one(k) for k in ("pull", "push"))
        + f"; load {result.get('loadavg_start', 0):.2f} -> {result.get('loadavg_end', 0):.2f}"
    )


# -------------------------------------------------------------- as part of bench.run


def bench(target: str, harness: Harness) -> dict[str, Any]:
    """The mixed load against a fresh ``target`` (bench.run --mixed); its result."""
    args = harness.args
    path = harness.out / f"mixed-{target}.json"
    log = f"bench: mixed load ({args.mixed_seconds:g} s, {args.mixed_clients} clients)"
    print(f"{log} against a fresh {TITLES[target]}", flush=True)
    try:
        with harness.server(target, "mixed") as server:
            argv = [
                sys.executable,
                "-m",
                "bench.mixed_load",
                server.url,
                "--pid",
                str(server.pid),
                "--seconds",
                str(args.mixed_seconds),
                "--clients",
                str(args.mixed_clients),
                "--json",
                str(path),
            ]
            timeout = args.mixed_seconds + 600
            run = subprocess.run(
                argv, cwd=harness.repo_root, env=harness.env, timeout=timeout, check=False
            )
            if not path.exists():
                return {"error": f"mixed_load exited with status {run.returncode}"}
            result: dict[str, Any] = json.loads(path.read_text())
            if not server.alive():
                result["error"] = f"server died during the mixed load:\n{server.log_tail()}"
            return result
    except (ServerError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}


def rows(mixed: dict[str, dict[str, Any]]) -> list[Row]:
    """Throughput (with the server's CPU per operation), then p50 and p99 per operation."""
    if not mixed:
        return []
    some = next(iter(mixed.values()))
    share = some.get("push_share", 0.25)
    title = f"mixed {100 - round(share * 100)}/{round(share * 100)} pull/push, "
    title += f"{some.get('clients', '?')} clients"
    failed = {t: r["error"] for t, r in mixed.items() if r.get("error")}
    values = {t: r.get("throughput_ops_s") for t, r in mixed.items()}
    costs = {t: r.get("server_cpu_ms_per_op") for t, r in mixed.items()}
    out = [
        Row(f"{title}: throughput", "ops/s", values, failed, True, "CPU ms/op", costs, _goal(mixed))
    ]
    for kind in ("pull", "push", "all"):
        for stat in ("p50_ms", "p99_ms"):
            values = {t: r.get("ops", {}).get(kind, {}).get(stat) for t, r in mixed.items()}
            out.append(Row(f"{title}: {kind} {stat[:3]}", "ms", values, {}, False))
    return out


def _goal(mixed: dict[str, dict[str, Any]]) -> str:
    """The goal of issue 13: at least twice registry:2's throughput at half its p99."""
    mine, theirs = mixed.get(DOCKYARD), mixed.get(REGISTRY2)
    if not mine or not theirs or mine.get("error") or theirs.get("error"):
        return ""
    try:
        speed = mine["throughput_ops_s"] / theirs["throughput_ops_s"]
        p99 = mine["ops"]["all"]["p99_ms"] / theirs["ops"]["all"]["p99_ms"]
    except (KeyError, TypeError, ZeroDivisionError):
        return ""
    verdict = "PASS" if speed >= 2.0 and p99 <= 0.5 else "FAIL"
    return f"goal >= 2x the throughput at <= 0.5x the p99: {speed:.2f}x at {p99:.2f}x: {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="registry base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--pid", type=int, help="server pid (root of its tree), for its CPU")
    parser.add_argument("--seconds", type=float, default=30.0, help="load duration (30)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    parser.add_argument("--procs", type=int, default=2, help="client processes (2)")
    parser.add_argument("--push-share", type=float, default=0.25, help="share of pushes")
    parser.add_argument("--images", type=int, default=64, help="images pushed for pulls (64)")
    parser.add_argument("--seed", type=int, default=13, help="random seed of the workload")
    parser.add_argument("--json", type=Path, help="write the result to this file")
    args = parser.parse_args()
    result = measure(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"mixed load on {args.url}: {describe(result)}")
    for error in result.get("errors", []):
        print(f"  error: {error}")
    sys.exit(0 if not result["ops"]["all"].get("failed") else 1)


if __name__ == "__main__":
    main()
