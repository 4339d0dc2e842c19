"""Pushers that share layers as CI does, beside collections that run again and again: the
driver of tests/gc/test_stress.py and of the long run in bench/gc_stress.py.

A real Dockyard application (``app.open_registry`` and ``app.make_web_app``, so with the
scheduled collection of ``gc.enabled`` and the ``HEAD`` that keeps blobs) serves on
127.0.0.1; ``python -m dockyard garbage-collect -m`` runs in a loop beside it on the same
database and storage. Each pusher owns its tags, and for each push ``HEAD``s every layer
(and skips the upload when it is there), else mounts it from another repository, else
uploads it; then pushes the manifest (sometimes an index of two children pushed by digest)
to one of its tags, overwriting what the tag had, and sometimes deletes the manifest a tag
had before. What each tag should hold is remembered, and checked at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from yarl import URL

from dockyard.app import make_web_app, open_registry
from dockyard.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
REPOSITORIES = ("ci/app", "ci/api", "ci/worker")
#: base layers every image starts with, as CI images share their base
BASE_LAYERS = [os.urandom(2048 + i) for i in range(6)]
#: build-cache layers that images use now and then: unreferenced for a while, then found
#: by a HEAD and used again (the case the review delay of a HEAD is for)
CACHE_LAYERS = [os.urandom(1024 + i) for i in range(40)]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_config(path: Path, root: Path, database_url: str, review_after: str) -> Path:
    path.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        "http:\n  addr: 127.0.0.1:5000\n"
        f"database:\n  url: {database_url}\n"
        f"gc:\n  enabled: true\n  interval: 1s\n  reviewafter: {review_after}\n"
        "  deleteuntagged: true\n"
    )
    return path


@dataclass
class Pushed:
    """What a tag holds: its manifest and every blob and child below it."""

    repository: str
    manifest: bytes
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    children: list[bytes] = field(default_factory=list)

    def digests(self) -> Iterator[str]:
        yield digest_of(self.manifest)
        yield from (digest_of(c) for c in self.children)
        yield from self.blobs


@dataclass
class Outcome:
    pushes: int = 0
    heads_skipped: int = 0
    mounts: int = 0
    uploads: int = 0
    deletes: int = 0
    commands: int = 0
    #: seconds from the first request of a push to the end of its last manifest push
    longest_push: float = 0.0
    refused: list[str] = field(default_factory=list)
    tags: dict[tuple[str, str], Pushed] = field(default_factory=dict)


class Pusher:
    def __init__(self, number: int, session: aiohttp.ClientSession, outcome: Outcome) -> None:
        self.number = number
        self.session = session
        self.outcome = outcome
        self.random = random.Random(number)

    async def _check(self, response: aiohttp.ClientResponse, what: str, *ok: int) -> None:
        if response.status not in ok:
            self.outcome.refused.append(f"{what}: {response.status} {await response.text()}")

    async def blob(self, repository: str, data: bytes) -> None:
        """HEAD and skip, else mount from another repository, else upload."""
        digest = digest_of(data)
        async with self.session.head(f"/v2/{repository}/blobs/{digest}") as r:
            if r.status == 200:
                self.outcome.heads_skipped += 1
                return
        source = self.random.choice([n for n in REPOSITORIES if n != repository])
        url = f"/v2/{repository}/blobs/uploads/?mount={digest}&from={source}"
        async with self.session.post(url) as r:
            if r.status == 201:
                self.outcome.mounts += 1
                return
            await self._check(r, f"mount {digest}", 202)
            location = str(URL(r.headers["Location"]).relative())
        separator = "&" if "?" in location else "?"
        async with self.session.put(f"{location}{separator}digest={digest}", data=data) as r:
            await self._check(r, f"upload {digest}", 201)
        self.outcome.uploads += 1

    async def image(self, repository: str) -> tuple[bytes, dict[str, bytes]]:
        layers = [
            *self.random.sample(BASE_LAYERS, 2),
            self.random.choice(CACHE_LAYERS),
            os.urandom(self.random.randint(64, 4096)),
        ]
        config = json.dumps({"os": "linux", "n": os.urandom(8).hex()}).encode()
        for blob in (*layers, config):
            await self.blob(repository, blob)
        # The window in which a client has been told a blob exists and not yet used it.
        await asyncio.sleep(self.random.uniform(0, 0.6))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": digest_of(config),
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": LAYER, "digest": digest_of(b), "size": len(b)} for b in layers
                ],
            }
        ).encode()
        return manifest, {digest_of(b): b for b in (*layers, config)}

    async def put_manifest(self, repository: str, reference: str, body: bytes, kind: str) -> bool:
        headers = {"Content-Type": kind}
        async with self.session.put(
            f"/v2/{repository}/manifests/{reference}", data=body, headers=headers
        ) as r:
            await self._check(r, f"manifest {repository}:{reference}", 201)
            return r.status == 201

    async def push(self) -> None:
        repository = self.random.choice(REPOSITORIES)
        started = time.monotonic()
        if self.random.random() < 0.2:
            # A job that failed after its uploads: cache layers nothing references, which
            # the collector may take once the delay has passed, unless a HEAD finds them.
            for layer in self.random.sample(CACHE_LAYERS, 3):
                await self.blob(repository, layer)
        tag = f"p{self.number}-t{self.random.randint(0, 2)}"
        if self.random.random() < 0.25:
            pushed = await self._index(repository)
        else:
            manifest, blobs = await self.image(repository)
            pushed = Pushed(repository, manifest, OCI_MANIFEST, blobs)
        pushed_ok = await self.put_manifest(repository, tag, pushed.manifest, pushed.media_type)
        took = time.monotonic() - started
        self.outcome.longest_push = max(self.outcome.longest_push, took)
        if not pushed_ok:
            return
        self.outcome.pushes += 1
        before = self.outcome.tags.get((repository, tag))
        self.outcome.tags[(repository, tag)] = pushed
        if before is not None and self.random.random() < 0.3:
            # The tag's old manifest, untagged now: delete it as a cleanup job would.
            digest = digest_of(before.manifest)
            async with self.session.delete(f"/v2/{repository}/manifests/{digest}") as r:
                # 404: the collector took it first (untagged, and older than the delay).
                await self._check(r, f"delete {digest}", 202, 404)
            self.outcome.deletes += 1

    async def _index(self, repository: str) -> Pushed:
        pushed = Pushed(repository, b"", OCI_INDEX)
        entries = []
        for _ in range(2):
            child, blobs = await self.image(repository)
            await self.put_manifest(repository, digest_of(child), child, OCI_MANIFEST)
            pushed.children.append(child)
            pushed.blobs.update(blobs)
            entries.append(
                {"mediaType": OCI_MANIFEST, "digest": digest_of(child), "size": len(child)}
            )
        pushed.manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        ).encode()
        return pushed

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            await self.push()


async def command_loop(config: Path, until: float, outcome: Outcome) -> None:
    """``dockyard garbage-collect -m`` again and again, as an operator's cron would."""
    while time.monotonic() < until:
        await run_command(config, outcome)


async def run_command(config: Path, outcome: Outcome) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dockyard",
        "garbage-collect",
        "--delete-untagged",
        "--quiet",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=REPO_ROOT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        outcome.refused.append(f"garbage-collect exited {process.returncode}: {output.decode()}")
    outcome.commands += 1


async def verify(session: aiohttp.ClientSession, outcome: Outcome) -> list[str]:
    """Every tag pulls byte-identical: manifest, children, blobs."""
    wrong: list[str] = []
    accept = f"{OCI_MANIFEST}, {OCI_INDEX}"
    for (repository, tag), pushed in outcome.tags.items():
        pulls = [(tag, pushed.manifest), *((digest_of(c), c) for c in pushed.children)]
        for reference, expected in pulls:
            url = f"/v2/{repository}/manifests/{reference}"
            async with session.get(url, headers={"Accept": accept}) as r:
                if r.status != 200 or await r.read() != expected:
                    wrong.append(f"{repository}:{reference}: manifest {r.status}")
        for digest, data in pushed.blobs.items():
            async with session.get(f"/v2/{repository}/blobs/{digest}") as r:
                if r.status != 200 or await r.read() != data:
                    wrong.append(f"{repository}:{tag}: blob {digest} {r.status}")
    return wrong


def stored_digests(root: Path) -> set[str]:
    blobs = root / "docker/registry/v2/blobs/sha256"
    return {"sha256:" + data.parent.name for data in blobs.glob("*/*/data")}


async def stress(
    root: Path,
    database_url: str,
    *,
    seconds: float,
    pushers: int,
    review_after: float = 2.0,
) -> tuple[Outcome, list[str], set[str]]:
    """Run the pushers, the scheduled collection and the command for ``seconds``; then
    verify every tag, wait past the review delay, collect once more with the command,
    and return the outcome, what pulled wrong, and the unreferenced digests in storage."""
    config_path = write_config(
        root.parent / f"{root.name}.yml", root, database_url, f"{int(review_after * 1000)}ms"
    )
    config = load_config(config_path).config
    registry = await open_registry(config, migrate_first=True)
    server = TestServer(make_web_app(config, registry))
    await server.start_server()
    outcome = Outcome()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession(base) as session:
            until = time.monotonic() + seconds
            workers: list[Any] = [Pusher(n, session, outcome).run(until) for n in range(pushers)]
            await asyncio.gather(*workers, command_loop(config_path, until, outcome))
            wrong = await verify(session, outcome)
            await asyncio.sleep(review_after * 1.125 + 0.5)
            await run_command(config_path, outcome)
            wrong += await verify(session, outcome)
    finally:
        await server.close()
        await registry.close()
    wanted = {d for pushed in outcome.tags.values() for d in pushed.digests()}
    stored = stored_digests(root)
    wrong += [f"{digest}: wanted, not in storage" for digest in sorted(wanted - stored)]
    return outcome, wrong, stored - wanted
