"""The first pull right after a push, against the next one: where the bytes came from.

    python -m bench.first_pull [--client ctr] [--rounds 3] [--targets dockyard,registry2]
                               [--lock /work/bench.lock]

A client pushes the large image (bench/client_images.py) to a registry on a fresh store,
pulls it into an empty local store at once ("first") and, after removing it, once more
("again"); the registries take turns round by round. Around each pull it records how
much of the store's blob files the page cache held (``fincore``) and how much the whole
machine read from and wrote to its disks (``/proc/diskstats``): Dockyard writes uploads
around the cache, registry:2 through it, and that is what a first pull finds. The image
and the client's own copy are prepared at ``nice`` 19, before ``--lock`` is taken; the
rounds run at normal priority under it. Prints one line per pull and the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.client_images import BuiltImage, build, large_spec
from bench.client_tools import BenchClient
from bench.real_clients import Options, make_clients, new_server
from bench.servers import DOCKYARD, REGISTRY2, TITLES
from tests.e2e.clients import ClientEnv, Containerd, remove_tree

MiB = 1024 * 1024
PULLS = ("first", "again")


@dataclass(frozen=True)
class Pull:
    target: str
    round: int
    which: str  # "first" or "again"
    mb_per_s: float
    cached_mib: int  # of the store's blob files, before the pull
    read_mib: int  # from every disk of the machine, during the pull
    written_mib: int


def disk_bytes() -> tuple[int, int]:
    """Bytes read and written by the machine's whole disks (partitions left out)."""
    read = written = 0
    for line in Path("/proc/diskstats").read_text().splitlines():
        fields = line.split()
        name = fields[2]
        if Path(f"/sys/block/{name}").exists() and not name.startswith(("loop", "ram")):
            read += int(fields[5]) * 512
            written += int(fields[9]) * 512
    return read, written


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def blob_files(store: Path, at_least: int) -> list[Path]:
    return [p for p in store.rglob("*") if p.is_file() and p.stat().st_size >= at_least]


def cached_bytes(files: list[Path]) -> int:
    total = 0
    for path in files:
        shown = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES",
                                str(path)], capture_output=True, text=True, check=True)  # fmt: skip
        total += int(shown.stdout.strip() or 0)
    return total


def descendants(root: int) -> list[int]:
    """The processes below ``root`` (containerd, dockerd: started while preparing)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextlib.contextmanager
def held(lock: Path | None) -> Iterator[None]:
    """``lock`` held (flock), then this process and the daemons it started back at normal
    priority; without a lock, everything stays at ``nice`` 19."""
    if lock is None:
        yield
        return
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for pid in [os.getpid(), *descendants(os.getpid())]:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, 0)
        yield


def one_round(client: BenchClient, image: BuiltImage, target: str, number: int,
              tmp: Path, options: Options) -> list[Pull]:  # fmt: skip
    base = tmp / "server"
    server = new_server(target, base, tmp / f"{target}-server.log", options)
    server.start()
    made = []
    try:
        ref = f"{server.url.removeprefix('http://')}/bench/{image.spec.name}:{image.tag}"
        client.before_push(image, ref)
        client.push(image, ref)
        files = blob_files(base / "store", MiB)
        for which in PULLS:
            client.clear_pulled(image)
            cached = cached_bytes(files)
            read, written = disk_bytes()
            started = time.perf_counter()
            client.pull(image, ref)
            seconds = time.perf_counter() - started
            read_after, written_after = disk_bytes()
            made.append(Pull(target, number, which, image.blob_bytes / seconds / 1e6,
                             cached // MiB, (read_after - read) // MiB,
                             (written_after - written) // MiB))  # fmt: skip
        client.clear_pulled(image)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.first_pull",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--client", default="ctr", choices=["skopeo", "podman", "ctr", "docker"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--targets", default=f"{DOCKYARD},{REGISTRY2}")
    parser.add_argument("--large-mib", type=int, default=256)
    parser.add_argument("--lock", type=Path, default=None, help="flock this file for the rounds")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    options = Options(clients=[args.client], images=["large"], targets=targets)
    os.setpriority(os.PRIO_PROCESS, 0, 19)  # preparing: behind every benchmark
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-first-pull-"))
    cenv = ClientEnv(Path(tempfile.mkdtemp(prefix="dy-fp-", dir="/tmp")))
    clients: list[BenchClient] = []
    containerd: Containerd | None = None
    pulls: list[Pull] = []
    try:
        image = build(large_spec(3, args.large_mib), tmp / "images" / "large")
        (tmp / "scratch").mkdir()
        clients, containerd = make_clients(options, cenv, tmp / "scratch")
        client = clients[0]
        client.prepare(image)
        with held(args.lock):
            print(f"load average at the start: {_load()}", flush=True)
            for number in range(1, args.rounds + 1):
                for target in targets:
                    for pull in one_round(client, image, target, number, tmp, options):
                        pulls.append(pull)
                        print(f"{TITLES[target]} round {number} {pull.which}: "
                              f"{pull.mb_per_s:.1f} MB/s, cached before {pull.cached_mib} MiB, "
                              f"read {pull.read_mib} MiB, written {pull.written_mib} MiB",
                              flush=True)  # fmt: skip
            print(f"load average at the end: {_load()}", flush=True)
    finally:
        for made in clients:
            made.close()
        if containerd is not None:
            containerd.stop()
        remove_tree(cenv.root)
        shutil.rmtree(tmp, ignore_errors=True)
    for target in targets:
        rates = {w: [p.mb_per_s for p in pulls if p.target == target and p.which == w]
                 for w in PULLS}  # fmt: skip
        if all(rates.values()):
            first, again = (statistics.median(rates[w]) for w in PULLS)
            print(f"{TITLES[target]}: first {first:.1f} MB/s, again {again:.1f} MB/s, "
                  f"first / again {first / again:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
