"""The pull-through cache: a second pull through a Dockyard mirror against a direct pull
from the upstream Distribution 2.8.2, and against a pull of the same image pushed to
Dockyard locally.

    python -m bench.mirror_pull [--layers-mib 100,100,100] [--repeats 3] [--cold-repeats 1]

One image of incompressible layers (random bytes) is pushed to the upstream and to a local
repository of the mirror. ``skopeo copy docker://... dir:`` pulls it, each time into a
fresh directory: direct from the upstream, through the mirror the first time (it fetches),
through the mirror again (cached), and from the mirror's local repository. Wall time, the
median of ``--repeats`` pulls; the first pull is the median of ``--cold-repeats``, each
through a fresh mirror with an empty store. Run it under ``flock /work/bench.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.servers import Server, free_port, registry2_server, registry_config
from bench.sync_compare import LAYER, OCI_MANIFEST, _chunks, _descriptor, digest
from dockyard.remote import RemoteRegistry

REPO = "bench/big"
PREFIX = "up"


async def push_image(url: str, repo: str, layers: list[bytes], config: bytes) -> None:
    async with RemoteRegistry(url) as client:
        for blob in (*layers, config):
            await client.push_blob(repo, digest(blob), len(blob), _chunks(blob))
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor(LAYER, b) for b in layers],
        }).encode()  # fmt: skip
        await client.put_manifest(repo, "v1", manifest, OCI_MANIFEST)


def mirror_server(work: Path, upstream: Server, name: str = "mirror") -> Server:
    port = free_port()
    (work / name).mkdir(exist_ok=True)
    config = work / f"{name}.yml"
    config.write_text(
        registry_config(work / name, port)
        + "proxy:\n  upstreams:\n"
        + f"    - {{prefix: {PREFIX}, remoteurl: {upstream.url}, stripprefix: true}}\n"
    )
    argv = [sys.executable, "-m", "dockyard", "serve", str(config)]
    return Server("dockyard-mirror", argv, f"http://127.0.0.1:{port}", work / f"{name}.log")


def pull(server: Server, repo: str, work: Path, env: dict[str, str], policy: Path) -> float:
    target = work / "pulled"
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        ["skopeo", "--policy", str(policy), "copy", "--quiet", "--src-tls-verify=false",
         f"docker://{server.url[7:]}/{repo}:v1", f"dir:{target}"],
        check=True, env=env,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    shutil.rmtree(target, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers-mib", default="100,100,100")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-repeats", type=int, default=1)
    parser.add_argument("--tmpdir", type=Path, default=None)
    args = parser.parse_args()
    sizes = [int(x) << 20 for x in args.layers_mib.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mirror-bench-", dir=args.tmpdir))
    servers: list[Server] = []
    try:
        for name in ("upstream", "home"):
            (work / name).mkdir()
        upstream = registry2_server(
            work / "upstream", work / "upstream", work / "upstream.log", "docker-registry"
        )
        upstream.start()
        servers.append(upstream)
        layers = [os.urandom(size) for size in sizes]
        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        asyncio.run(push_image(upstream.url, REPO, layers, config))
        policy = work / "policy.json"
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        env = {**os.environ, "HOME": str(work / "home"), "DOCKER_CONFIG": str(work / "home"),
               "REGISTRY_AUTH_FILE": str(work / "home" / "auth.json")}  # fmt: skip
        (work / "home" / "auth.json").write_text("{}")
        firsts: list[float] = []
        for round_ in range(max(args.cold_repeats, 1)):
            if firsts:  # a fresh mirror, its store empty
                servers.pop().stop()
            mirror = mirror_server(work, upstream, f"mirror{round_}")
            mirror.start()
            servers.append(mirror)
            firsts.append(pull(mirror, f"{PREFIX}/{REPO}", work, env, policy))
        asyncio.run(push_image(mirror.url, f"local/{REPO}", layers, config))
        del layers
        runs: dict[str, list[float]] = {"direct from registry:2": [], "mirror, cached": [],
                                        "Dockyard, local repository": []}  # fmt: skip
        for _ in range(args.repeats):
            runs["direct from registry:2"].append(pull(upstream, REPO, work, env, policy))
            runs["mirror, cached"].append(pull(mirror, f"{PREFIX}/{REPO}", work, env, policy))
            runs["Dockyard, local repository"].append(
                pull(mirror, f"local/{REPO}", work, env, policy)
            )
        report(sizes, statistics.median(firsts), runs)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(sizes: list[int], first: float, runs: dict[str, list[float]]) -> None:
    mib = 1 << 20
    print(
        f"{len(sizes)} layers of {', '.join(str(s // mib) for s in sizes)} MiB; load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print("| pull (skopeo copy to dir:) | time (s), median | MiB/s |")
    print("|---|---:|---:|")
    total = sum(sizes) / mib
    print(f"| mirror, first (fetches upstream) | {first:.2f} | {total / first:.0f} |")
    for label, times in runs.items():
        median = statistics.median(times)
        print(f"| {label} | {median:.2f} | {total / median:.0f} |")
    cached = statistics.median(runs["mirror, cached"])
    direct = statistics.median(runs["direct from registry:2"])
    print(
        f"first mirror pull / direct registry:2: {first / direct:.2f}; "
        f"cached mirror / direct registry:2: {cached / direct:.2f}; cached mirror / "
        f"local repository: {cached / statistics.median(runs['Dockyard, local repository']):.2f}"
    )


if __name__ == "__main__":
    main()
