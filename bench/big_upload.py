"""Memory check: a server's RSS while it receives one big monolithic blob upload.

    python -m bench.big_upload http://127.0.0.1:PORT --pid SERVER_PID [--gib 5] [--json out.json]

The blob is sent as ``POST /v2/<repo>/blobs/uploads/`` then one ``PUT <location>?digest=``
whose body is streamed from a generator with a declared Content-Length, so neither side has
a reason to hold it in memory. The content is a random 4 MiB block whose first 16 bytes are
replaced by a chunk counter: made twice, once to compute the digest and once to send it.

A thread samples the summed VmRSS of the server's process tree (the given pid and every
descendant) every 50 ms; the report gives the idle RSS before the upload, the peak during
it and the difference, together with this client's own peak RSS as a check that the
client streamed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

MiB = 1 << 20
GiB = 1 << 30
CHUNK = 4 * MiB


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                data = stat.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.append(pid)
            todo.extend(children.get(pid, []))
    return tree


def pss_kib(pids: list[int]) -> int:
    """Proportional set size summed over ``pids``, in KiB: pages shared by the processes
    (a forked server's libraries) count once in all, not once per process as with RSS."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def idle_pss(root: int, settle: float = 3.0, samples: int = 5) -> int:
    """The median PSS of ``root``'s process tree, once it has been idle ``settle`` s."""
    time.sleep(settle)
    values = []
    for _ in range(samples):
        values.append(pss_kib(process_tree(root)))
        time.sleep(0.2)
    return int(statistics.median(values))


def status_kib(pids: list[int], key: str) -> int:
    """Sum of one /proc/<pid>/status field (VmRSS, VmHWM) over ``pids``, in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


class RssSampler(threading.Thread):
    """Peak of the summed VmRSS of a process tree, sampled every ``interval`` seconds."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self.peak_at = 0.0
        self.samples = 0
        self._t0 = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        pids = process_tree(self.root)
        while not self._halt.is_set():
            if self.samples % 20 == 0:
                pids = process_tree(self.root)
            rss = status_kib(pids, "VmRSS")
            if rss > self.peak_kib:
                self.peak_kib = rss
                self.peak_at = time.monotonic() - self._t0
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def chunks(size: int, seed_block: bytes) -> Iterator[bytes]:
    """The blob, ``CHUNK`` bytes at a time; the same bytes on every call."""
    tail = seed_block[16:]
    for index, offset in enumerate(range(0, size, CHUNK)):
        piece = index.to_bytes(16, "big") + tail
        yield piece[: min(CHUNK, size - offset)]


async def body(size: int, seed_block: bytes, sent: list[int]) -> AsyncIterator[bytes]:
    for piece in chunks(size, seed_block):
        sent[0] += len(piece)
        yield piece


def idle_rss(root: int, samples: int = 10) -> int:
    values = []
    for _ in range(samples):
        values.append(status_kib(process_tree(root), "VmRSS"))
        time.sleep(0.1)
    return int(statistics.median(values))


async def upload(url: str, repo: str, size: int, pid: int) -> dict[str, Any]:
    seed_block = os.urandom(CHUNK)
    started = time.monotonic()
    hasher = hashlib.sha256()
    for piece in chunks(size, seed_block):
        hasher.update(piece)
    digest = "sha256:" + hasher.hexdigest()
    result: dict[str, Any] = {
        "url": url,
        "pid": pid,
        "size": size,
        "digest": digest,
        "hash_s": time.monotonic() - started,
    }
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=900)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(f"{url}/v2/") as answer:
            await answer.read()
        await asyncio.sleep(1.0)
        result["idle_rss_kib"] = await asyncio.to_thread(idle_rss, pid)
        result["idle_nproc"] = len(process_tree(pid))
        sampler = RssSampler(pid)
        sampler.start()
        sent = [0]
        t0 = time.monotonic()
        try:
            async with session.post(f"{url}/v2/{repo}/blobs/uploads/") as answer:
                text = await answer.text()
                if answer.status != 202:
                    result["error"] = f"POST blobs/uploads/ -> {answer.status} {text[:300]}"
                    return result
                location = urljoin(url + "/", answer.headers["Location"])
            target = location + ("&" if "?" in location else "?") + "digest=" + digest
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            async with session.put(
                target, data=body(size, seed_block, sent), headers=headers
            ) as answer:
                text = await answer.text()
                result["put_status"] = answer.status
                if answer.status != 201:
                    result["error"] = f"PUT ?digest= -> {answer.status} {text[:300]}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            result["error"] = f"upload failed after {sent[0]} bytes sent: {exc!r}"
        finally:
            wall = time.monotonic() - t0
            sampler.stop()
            tree = process_tree(pid)
            result.update(
                wall_s=wall,
                sent_bytes=sent[0],
                mbps=sent[0] / wall / 1e6 if wall else None,
                peak_rss_kib=sampler.peak_kib,
                peak_at_s=sampler.peak_at,
                rss_samples=sampler.samples,
                end_rss_kib=status_kib(tree, "VmRSS"),
                hwm_sum_kib=status_kib(tree, "VmHWM"),
                nproc=len(tree),
            )
        if "error" not in result:
            # A redirect to the storage (S3) is followed: the object's own size counts.
            blob = f"{url}/v2/{repo}/blobs/{digest}"
            async with session.head(blob, allow_redirects=True) as answer:
                length = int(answer.headers.get("Content-Length", "-1"))
                if answer.status != 200 or length != size:
                    result["error"] = f"HEAD blob after upload -> {answer.status}, size {length}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="registry base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--pid", type=int, required=True, help="server pid (root of its tree)")
    parser.add_argument("--gib", type=float, default=5.0, help="blob size in GiB (default 5)")
    parser.add_argument("--repo", default="bench/bigupload", help="repository to upload into")
    parser.add_argument("--limit-mib", type=float, default=64.0, help="allowed RSS growth")
    parser.add_argument("--json", type=Path, help="write the result to this file")
    args = parser.parse_args()
    size = int(args.gib * GiB)
    result = asyncio.run(upload(args.url.rstrip("/"), args.repo, size, args.pid))
    client_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["client_maxrss_kib"] = client_kib
    result["limit_mib"] = args.limit_mib
    growth = (result.get("peak_rss_kib", 0) - result.get("idle_rss_kib", 0)) / 1024
    result["growth_mib"] = growth
    result["within_limit"] = "error" not in result and growth <= args.limit_mib
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{size / GiB:.1f} GiB monolithic upload to {args.url}: "
        + (f"FAILED: {result['error']}; " if "error" in result else "")
        + f"{result.get('mbps') or 0:.0f} MB/s, server RSS idle "
        f"{result.get('idle_rss_kib', 0) / 1024:.1f} MiB, peak "
        f"{result.get('peak_rss_kib', 0) / 1024:.1f} MiB (+{growth:.1f} MiB, limit "
        f"+{args.limit_mib:.0f}); client peak RSS {client_kib / 1024:.0f} MiB"
    )
    sys.exit(0 if "error" not in result else 1)


if __name__ == "__main__":
    main()
