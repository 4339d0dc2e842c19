"""Replication: ``dockyard sync`` against a naive ``skopeo copy`` loop, tag by tag.

    python -m bench.sync_compare [--tags 100] [--base-mib 4,2,1] [--unique-kib 64]

A Dockyard source holds one repository of ``--tags`` tags that share a base of three
layers (``--base-mib`` sizes, random bytes) and each add one small unique layer and config.
Each copier gets an empty Distribution 2.8.2 as its destination, and runs twice: the first
copy, then the same command again (nothing left to do). Measured from the outside: wall
time, and the bytes the destination registry read from its sockets and files (``rchar`` of
``/proc/PID/io``: the bytes it received, plus what it read of its own files), and the
peak RSS of ``dockyard sync`` (``--base-mib 256,2,1`` shows that a big layer is streamed). Both
destinations must end with the same manifests. Run it under ``flock /work/bench.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from bench.servers import Server, dockyard_server, registry2_server
from dockyard.remote import RemoteRegistry

REPO = "bench/app"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1 << 20):
        yield data[start : start + (1 << 20)]


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest(data), "size": len(data)}


async def fill_source(url: str, tags: int, base_mib: list[int], unique_kib: int) -> int:
    """Push the repository; returns the bytes of distinct blobs it holds."""
    base = [os.urandom(size << 20) for size in base_mib]
    total = sum(map(len, base))
    async with RemoteRegistry(url) as client:
        for blob in base:
            await client.push_blob(REPO, digest(blob), len(blob), _chunks(blob))
        for n in range(tags):
            unique = os.urandom(unique_kib << 10)
            config = json.dumps({"architecture": "amd64", "os": "linux", "n": n}).encode()
            for blob in (unique, config):
                await client.push_blob(REPO, digest(blob), len(blob), _chunks(blob))
            total += len(unique) + len(config)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
                "layers": [_descriptor(LAYER, b) for b in (*base, unique)],
            }).encode()  # fmt: skip
            await client.put_manifest(REPO, f"t{n:03d}", manifest, OCI_MANIFEST)
    return total


def io_counters(server: Server) -> tuple[int, int]:
    """(rchar, wchar) of the server process."""
    fields = dict(
        line.split(": ") for line in Path(f"/proc/{server.pid}/io").read_text().splitlines()
    )
    return int(fields["rchar"]), int(fields["wchar"])


def measured(run: Callable[[], None], dest: Server) -> dict[str, float]:
    dest_before = io_counters(dest)
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    dest_after = io_counters(dest)
    return {
        "seconds": seconds,
        "dest_received": dest_after[0] - dest_before[0],
    }


def skopeo_loop(source: Server, dest: Server, tags: int, env: dict[str, str], policy: Path
                ) -> Callable[[], None]:  # fmt: skip
    def run() -> None:
        for n in range(tags):
            tag = f"t{n:03d}"
            subprocess.run(
                ["skopeo", "--policy", str(policy), "copy", "--quiet", "--preserve-digests",
                 "--src-tls-verify=false", "--dest-tls-verify=false",
                 f"docker://{source.url[7:]}/{REPO}:{tag}", f"docker://{dest.url[7:]}/{REPO}:{tag}"],
                check=True, env=env,
            )  # fmt: skip

    return run


def dockyard_sync(source: Server, dest: Server) -> Callable[[], None]:
    """The command under ``/usr/bin/time``: its peak RSS, apart from this process's own
    memory (a child forked from here counts the parent's pages until it execs)."""

    def run() -> None:
        done = subprocess.run(
            ["/usr/bin/time", "-f", "peak RSS %M KiB", sys.executable, "-m", "dockyard",
             "sync", "--quiet", source.url, dest.url],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        print(done.stdout.strip(), "|", done.stderr.strip().splitlines()[-1])

    return run


def tag_digests(url: str, tags: int) -> list[str]:
    async def heads() -> list[str]:
        async with RemoteRegistry(url) as client:
            found = []
            for n in range(tags):
                info = await client.head_manifest(REPO, f"t{n:03d}")
                found.append(info.digest if info else "missing")
            return found

    return asyncio.run(heads())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=100)
    parser.add_argument("--base-mib", default="4,2,1")
    parser.add_argument("--unique-kib", type=int, default=64)
    parser.add_argument("--tmpdir", type=Path, default=None)
    args = parser.parse_args()
    base_mib = [int(x) for x in args.base_mib.split(",")]
    work = Path(tempfile.mkdtemp(prefix="sync-bench-", dir=args.tmpdir))
    servers: list[Server] = []
    try:
        for name in ("source", "dest-sync", "dest-skopeo", "home"):
            (work / name).mkdir()
        source = dockyard_server(work / "source", work / "source", work / "source.log", 1)
        dest_sync = registry2_server(work / "dest-sync", work / "dest-sync",
                                     work / "dest-sync.log", "docker-registry")  # fmt: skip
        dest_skopeo = registry2_server(work / "dest-skopeo", work / "dest-skopeo",
                                       work / "dest-skopeo.log", "docker-registry")  # fmt: skip
        for server in (source, dest_sync, dest_skopeo):
            server.start()
            servers.append(server)
        distinct = asyncio.run(fill_source(source.url, args.tags, base_mib, args.unique_kib))
        policy = work / "policy.json"
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        env = {**os.environ, "HOME": str(work / "home"), "DOCKER_CONFIG": str(work / "home"),
               "REGISTRY_AUTH_FILE": str(work / "home" / "auth.json")}  # fmt: skip
        (work / "home" / "auth.json").write_text("{}")
        results = {}
        for label, dest, run in (
            ("dockyard sync", dest_sync, dockyard_sync(source, dest_sync)),
            ("skopeo copy loop", dest_skopeo, skopeo_loop(source, dest_skopeo, args.tags, env,
                                                          policy)),
        ):  # fmt: skip
            results[label] = [measured(run, dest), measured(run, dest)]
        assert tag_digests(dest_sync.url, args.tags) == tag_digests(dest_skopeo.url, args.tags)
        assert "missing" not in tag_digests(dest_sync.url, args.tags)
        report(results, args.tags, distinct)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[str, list[dict[str, float]]], tags: int, distinct: int) -> None:
    mib = 1 << 20
    print(f"{tags} tags, {distinct / mib:.1f} MiB of distinct blobs; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    print("| copier | run | time (s) | received by the destination (MiB) |")
    print("|---|---|---:|---:|")
    for label, runs in results.items():
        for name, figures in zip(("first", "again"), runs, strict=True):
            received = figures["dest_received"] / mib
            print(f"| {label} | {name} | {figures['seconds']:.2f} | {received:.1f} |")
    ours, theirs = results["dockyard sync"][0], results["skopeo copy loop"][0]
    print(
        f"first copy: time ratio sync/skopeo {ours['seconds'] / theirs['seconds']:.2f}, "
        f"bytes received ratio {ours['dest_received'] / theirs['dest_received']:.2f}"
    )


if __name__ == "__main__":
    main()
