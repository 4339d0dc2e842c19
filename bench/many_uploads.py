"""Memory check: a server's PSS while it receives many large uploads at once.

    python -m bench.many_uploads URL --pid PID [--uploads 32] [--gib 1]
                                [--mode monolithic|chunked] [--json out.json]

``--uploads`` clients each send one blob of ``--gib`` GiB at the same time, streamed from
a generator (this process holds one 4 MiB block, never a blob):

* ``monolithic``: ``POST /blobs/uploads/`` then one ``PUT <location>?digest=`` with a
  declared ``Content-Length`` (containerd, skopeo);
* ``chunked``: ``POST``, one ``PATCH`` with ``Transfer-Encoding: chunked`` and no length
  (how docker and buildah stream a layer), then ``PUT ?digest=`` without a body.

The blobs share everything but their last 4 MiB, so their digests cost one pass over one
blob plus 4 MiB each, not 32 GiB of hashing on the machine being measured.

A thread samples the PSS of the server's whole process tree (``/proc/PID/smaps_rollup``
of the pid and its descendants: pages the workers share count once) every 100 ms; the
report gives the idle PSS before the uploads, the peak during them and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

from bench.big_upload import idle_pss, process_tree, pss_kib
from bench.harness import Harness
from bench.report import Row
from bench.servers import DOCKYARD, TITLES, ServerError

MiB = 1 << 20
GiB = 1 << 30
CHUNK = 4 * MiB
MODES = ("monolithic", "chunked")


class PssSampler(threading.Thread):
    """Peak of the summed PSS of a process tree, sampled every ``interval`` seconds."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        pids = process_tree(self.root)
        while not self._halt.is_set():
            if self.samples % 10 == 0:
                pids = process_tree(self.root)
            self.peak_kib = max(self.peak_kib, pss_kib(pids))
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


class Blobs:
    """``count`` blobs of ``size`` bytes that differ only in their last chunk."""

    def __init__(self, count: int, size: int) -> None:
        self.size = size
        self.chunks = max(1, -(-size // CHUNK))
        self._tail = os.urandom(CHUNK)[16:]
        common = hashlib.sha256()
        for index in range(self.chunks - 1):
            common.update(self._piece(index, 0))
        self.digests = []
        for blob in range(count):
            hasher = common.copy()
            hasher.update(self._piece(self.chunks - 1, blob))
            self.digests.append("sha256:" + hasher.hexdigest())

    def _piece(self, index: int, blob: int) -> bytes:
        """Chunk ``index`` of blob ``blob`` (only the last chunk depends on ``blob``)."""
        last = index == self.chunks - 1
        head = index.to_bytes(8, "big") + (blob if last else 0).to_bytes(8, "big")
        piece = head + self._tail
        return piece[: self.size - index * CHUNK] if last else piece

    async def body(self, blob: int, sent: list[int]) -> AsyncIterator[bytes]:
        for index in range(self.chunks):
            piece = self._piece(index, blob)
            sent[blob] += len(piece)
            yield piece


async def _expect(answer: aiohttp.ClientResponse, status: int, what: str) -> None:
    if answer.status != status:
        raise RuntimeError(f"{what} -> {answer.status}: {(await answer.text())[:300]}")


async def upload(
    session: aiohttp.ClientSession, url: str, mode: str, blobs: Blobs, blob: int, sent: list[int]
) -> None:
    repo = f"bench/many-{blob % 4}"
    digest = blobs.digests[blob]
    async with session.post(f"{url}/v2/{repo}/blobs/uploads/") as answer:
        await _expect(answer, 202, "POST blobs/uploads/")
        location = urljoin(url + "/", answer.headers["Location"])
    join = "&" if "?" in location else "?"
    headers = {"Content-Type": "application/octet-stream"}
    if mode == "monolithic":
        headers["Content-Length"] = str(blobs.size)
        target = f"{location}{join}digest={digest}"
        async with session.put(target, data=blobs.body(blob, sent), headers=headers) as answer:
            await _expect(answer, 201, "PUT ?digest= with the body")
    else:
        async with session.patch(location, data=blobs.body(blob, sent), headers=headers) as answer:
            await _expect(answer, 202, "PATCH, chunked")
            location = urljoin(url + "/", answer.headers["Location"])
        join = "&" if "?" in location else "?"
        async with session.put(f"{location}{join}digest={digest}") as answer:
            await _expect(answer, 201, "PUT ?digest=")
    async with session.head(f"{url}/v2/{repo}/blobs/{digest}", allow_redirects=True) as answer:
        length = int(answer.headers.get("Content-Length", "-1"))
        if answer.status != 200 or length != blobs.size:
            raise RuntimeError(f"HEAD after upload -> {answer.status}, size {length}")


async def measure(url: str, pid: int, mode: str, uploads: int, size: int) -> dict[str, Any]:
    started = time.monotonic()
    blobs = Blobs(uploads, size)
    result: dict[str, Any] = {
        "url": url,
        "pid": pid,
        "mode": mode,
        "uploads": uploads,
        "size": size,
        "hash_s": time.monotonic() - started,
        "loadavg_start": os.getloadavg()[0],
    }
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=900)
    connector = aiohttp.TCPConnector(limit=uploads)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, trust_env=False
    ) as session:
        async with session.get(f"{url}/v2/") as answer:
            await answer.read()
        result["idle_pss_kib"] = await asyncio.to_thread(idle_pss, pid, 1.0)
        result["idle_nproc"] = len(process_tree(pid))
        sampler = PssSampler(pid)
        sampler.start()
        sent = [0] * uploads
        t0 = time.monotonic()
        outcomes = await asyncio.gather(
            *(upload(session, url, mode, blobs, i, sent) for i in range(uploads)),
            return_exceptions=True,
        )
        wall = time.monotonic() - t0
        sampler.stop()
    errors = [repr(o)[:300] for o in outcomes if isinstance(o, BaseException)]
    result.update(
        wall_s=wall,
        sent_bytes=sum(sent),
        mbps=sum(sent) / wall / 1e6 if wall else None,
        peak_pss_kib=sampler.peak_kib,
        pss_samples=sampler.samples,
        growth_mib=(sampler.peak_kib - result["idle_pss_kib"]) / 1024,
        failed=len(errors),
        loadavg_end=os.getloadavg()[0],
    )
    if errors:
        result["error"] = f"{len(errors)} of {uploads} uploads failed; first: {errors[0]}"
    return result


# -------------------------------------------------------------- as part of bench.run


def bench(target: str, harness: Harness) -> dict[str, dict[str, Any]]:
    """Each mode against a fresh ``target`` (bench.run --many-uploads); result per mode."""
    args = harness.args
    uploads, gib = args.many_uploads_count, args.many_uploads_gib
    results: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        size = int(gib * GiB)
        free = shutil.disk_usage(harness.tmp).free
        if free < uploads * size + 4 * GiB:
            message = (
                f"skipped: {free / GiB:.1f} GiB free in {harness.tmp}, {uploads} uploads of "
                f"{gib:g} GiB need {uploads * gib + 4:.0f} GiB (--many-uploads-gib smaller?)"
            )
            print(f"bench: many uploads to {TITLES[target]}: {message}", flush=True)
            results[mode] = {"size": size, "uploads": uploads, "error": message, "skipped": True}
            continue
        path = harness.out / f"many-uploads-{mode}-{target}.json"
        print(
            f"bench: {uploads} x {gib:g} GiB {mode} uploads to a fresh {TITLES[target]}",
            flush=True,
        )
        try:
            with harness.server(target, f"many-{mode}") as server:
                argv = [
                    sys.executable,
                    "-m",
                    "bench.many_uploads",
                    server.url,
                    "--pid",
                    str(server.pid),
                    "--mode",
                    mode,
                    "--uploads",
                    str(uploads),
                    "--gib",
                    str(gib),
                    "--json",
                    str(path),
                ]
                run = subprocess.run(
                    argv, cwd=harness.repo_root, env=harness.env, timeout=3600, check=False
                )
                if not path.exists():
                    results[mode] = {"error": f"many_uploads exited with status {run.returncode}"}
                    continue
                results[mode] = json.loads(path.read_text())
                if not server.alive():
                    results[mode]["error"] = f"server died:\n{server.log_tail()}"
        except (ServerError, subprocess.TimeoutExpired) as exc:
            results[mode] = {"error": str(exc)}
    return results


def rows(many: dict[str, dict[str, dict[str, Any]]], limit_mib: float) -> list[Row]:
    """Per mode: the upload rate, idle PSS, peak PSS and their difference."""
    out = []
    for mode in MODES:
        per = {target: modes[mode] for target, modes in many.items() if mode in modes}
        if not per:
            continue
        some = next(iter(per.values()))
        title = f"{some.get('uploads', '?')} x {some.get('size', 0) / GiB:g} GiB {mode} uploads"
        failed = {t: r["error"] for t, r in per.items() if r.get("error")}
        specs = (
            ("at once, total", "mbps", "MB/s", 1.0, True),
            ("server PSS idle", "idle_pss_kib", "MiB", 1 / 1024, False),
            ("server PSS peak", "peak_pss_kib", "MiB", 1 / 1024, False),
            ("peak - idle", "growth_mib", "MiB", 1.0, False),
        )
        for label, key, unit, scale, higher in specs:
            values: dict[str, float | None] = {}
            for target, res in per.items():
                value = res.get(key)
                values[target] = value * scale if value is not None else None
            note = ""
            if key == "growth_mib" and DOCKYARD in per:
                mine = per[DOCKYARD].get("growth_mib")
                ok = mine is not None and not per[DOCKYARD].get("error") and mine <= limit_mib
                note = f"goal for Dockyard: <= +{limit_mib:g} MiB: {'PASS' if ok else 'FAIL'}"
            rows_failed = failed if key == "mbps" else {}
            out.append(Row(f"{title}: {label}", unit, values, rows_failed, higher, note=note))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="registry base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--pid", type=int, required=True, help="server pid (root of its tree)")
    parser.add_argument("--mode", choices=MODES, default="monolithic")
    parser.add_argument("--uploads", type=int, default=32, help="uploads at once (32)")
    parser.add_argument("--gib", type=float, default=1.0, help="size of each blob in GiB (1)")
    parser.add_argument("--json", type=Path, help="write the result to this file")
    args = parser.parse_args()
    size = int(args.gib * GiB)
    result = asyncio.run(measure(args.url.rstrip("/"), args.pid, args.mode, args.uploads, size))
    result["client_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{args.uploads} x {args.gib:g} GiB {args.mode} uploads to {args.url}: "
        + (f"FAILED: {result['error']}; " if "error" in result else "")
        + f"{result.get('mbps') or 0:.0f} MB/s, server PSS idle "
        f"{result['idle_pss_kib'] / 1024:.1f} MiB, peak {result['peak_pss_kib'] / 1024:.1f} "
        f"MiB (+{result['growth_mib']:.1f} MiB); client peak RSS "
        f"{result['client_maxrss_kib'] / 1024:.0f} MiB; load "
        f"{result['loadavg_start']:.2f} -> {result['loadavg_end']:.2f}"
    )
    sys.exit(0 if "error" not in result else 1)


if __name__ == "__main__":
    main()
