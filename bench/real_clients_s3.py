"""``python -m bench.real_clients --storage s3``: the real clients on one SeaweedFS.

SeaweedFS is started once for the run (tests/seaweedfs.py, as ``bench.run --storage s3``
does), and every registry gets a new bucket of it for every round, through
``bench.run.make_server``. Dockyard keeps its default ``storage.s3.deferredcopy: false``
unless ``--deferred-copy``. A push to it is then done for the store only once the mover
has copied every pending blob: a ``CopyWatch`` started at the end of each push records when
that happened (while the first pull runs, or before it with ``--copies-before-pull``), and
what SeaweedFS spent until then, so the client's time and the store's later cost are
reported side by side.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from bench.deferred_moves import pending_moves
from bench.servers import DOCKYARD, REGISTRY2, Server

if TYPE_CHECKING:
    from bench.client_images import BuiltImage
    from bench.real_clients import Figures, Options
    from tests.seaweedfs import SeaweedServer

_READY_BUCKET = "ready"  # made by SeaweedServer itself, to probe readiness
#: the figures of the S3 table, by operation
_OPS = ("push", "copies pending", "copies done", "copies wait", "store cpu push",
        "store cpu copies", "store cpu pull first")  # fmt: skip


@dataclass
class CopyWatch:
    """Polls Dockyard's database from the end of a push until no blob waits for its copy."""

    database: Path
    stores: S3Stores
    timeout: float = 300.0
    started: float = field(default_factory=time.monotonic)
    done_after_s: float | None = None
    store_cpu_s: float | None = None
    pending_at_start: int = 0

    def __post_init__(self) -> None:
        self._cpu = self.stores.store_cpu()
        self.pending_at_start = pending_moves(self.database)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        deadline = self.started + self.timeout
        while pending_moves(self.database):
            if time.monotonic() > deadline:
                return  # never done: record() says so
            time.sleep(0.05)
        self.done_after_s = time.monotonic() - self.started
        after = self.stores.store_cpu()
        if self._cpu is not None and after is not None:
            self.store_cpu_s = after - self._cpu

    def record(self, figures: Figures, key: tuple[str, str]) -> None:
        """Wait for the copies; add when they were done after the push, how long this
        call still waited, and SeaweedFS's CPU from the push's end until then."""
        before = time.monotonic()
        self._thread.join(self.timeout + 5)
        figures.add((*key, "copies wait", DOCKYARD), time.monotonic() - before)
        figures.add((*key, "copies pending", DOCKYARD), self.pending_at_start)
        if self.done_after_s is None:
            figures.failures.append(f"{' '.join(key)}: copies still pending after "
                                    f"{self.timeout:.0f} s")  # fmt: skip
            return
        figures.add((*key, "copies done", DOCKYARD), self.done_after_s)
        if self.store_cpu_s is not None:
            figures.add((*key, "store cpu copies", DOCKYARD), self.store_cpu_s)


@dataclass
class S3Stores:
    """The run's SeaweedFS and the registries on it."""

    deferred_copy: bool
    workers: int | None
    registry2: str
    seaweedfs: SeaweedServer

    @classmethod
    def start(cls, deferred_copy: bool, workers: int | None, registry2: str) -> S3Stores:
        from tests.seaweedfs import SeaweedServer

        return cls(deferred_copy, workers, registry2, SeaweedServer.start())

    def _run_args(self) -> argparse.Namespace:
        """What ``bench.run``'s helpers read of its arguments."""
        return argparse.Namespace(
            seaweedfs=self.seaweedfs,
            deferred_copy=self.deferred_copy,
            workers=self.workers,
            registry2=self.registry2,
        )

    def server(self, target: str, base: Path, log_path: Path) -> Server:
        """``target`` on a new bucket; Dockyard's SQLite database in ``base/store``."""
        from bench.run import make_server  # bench.run imports bench.real_clients

        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        return make_server(target, base, log_path, self._run_args())

    def store_cpu(self) -> float | None:
        """CPU seconds SeaweedFS has used so far."""
        from bench.run import store_cpu_seconds

        return store_cpu_seconds(self._run_args())

    def watch_copies(self, base: Path) -> CopyWatch:
        return CopyWatch(base / "store" / "dockyard.db", self)

    def empty(self) -> None:
        """Delete every bucket of the round just done (outside the timed steps), so that a
        long run does not fill the disk; a failure to is only reported."""
        try:
            self._delete_buckets()
        except (BotoCoreError, ClientError) as exc:
            print(f"bench clients: could not delete the round's buckets: {exc}", flush=True)

    def _delete_buckets(self) -> None:
        client = self.seaweedfs.client()
        for bucket in client.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            if name == _READY_BUCKET:
                continue
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=name)
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=name, Delete={"Objects": keys})
            uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
            for upload in uploads:
                client.abort_multipart_upload(
                    Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            client.delete_bucket(Bucket=name)

    def stop(self) -> None:
        self.seaweedfs.stop()


def _summed(figures: Figures, *keys: tuple[str, str, str, str]) -> float | None:
    """The median over repetitions of the keys' figures added up repetition by repetition."""
    columns = [figures.seconds.get(key, []) for key in keys]
    sums = [sum(values) for values in zip(*columns, strict=False)]
    return statistics.median(sums) if sums else None


def render_s3(options: Options, figures: Figures, images: list[BuiltImage]) -> list[str]:
    """The store's side of every push: Dockyard's copies after the commit and SeaweedFS's CPU."""
    from bench.real_clients import _fmt, _rate, _ratio

    meanwhile = "the first pull waited for them" if options.copies_before_pull else (
        "the first pull ran meanwhile")  # fmt: skip
    lines = [
        "## On S3: the copies after the commit, and SeaweedFS's CPU",
        "",
        "blobs pending: how many waited for the mover's copy when the push ended; "
        "copies done: seconds from the end of Dockyard's push until its database had no "
        f"blob waiting for the mover's copy (polled every 50 ms; {meanwhile}); waited: "
        "what was left of that when the wait began. push + copies: "
        "the image's MB/s over the push and that delay together, against registry:2's push "
        "(which copies inside its requests). SeaweedFS CPU s: during the push, from the "
        "push's end until the copies were done (Dockyard), and during the first pull.",
        "",
        "| client | image | Dockyard push s | blobs pending | copies done s | waited s "
        "| Dockyard push + copies MB/s | registry:2 push MB/s | ratio "
        "| SeaweedFS CPU push (Dockyard, registry:2) | SeaweedFS CPU until copies done "
        "| SeaweedFS CPU pull first (Dockyard, registry:2) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_name = {image.spec.name: image for image in images}
    for client in options.clients:
        for name in options.images:
            image = by_name[name]
            ours = {op: figures.median((client, name, op, DOCKYARD)) for op in _OPS}
            r2 = {op: figures.median((client, name, op, REGISTRY2)) for op in _OPS}
            whole = _rate(image, _summed(figures, (client, name, "push", DOCKYARD),
                                         (client, name, "copies done", DOCKYARD)))  # fmt: skip
            theirs = _rate(image, r2["push"])
            lines.append(
                f"| {client} | {name} | {_fmt(ours['push'])} | {_fmt(ours['copies pending'])} "
                f"| {_fmt(ours['copies done'])} "
                f"| {_fmt(ours['copies wait'])} | {_fmt(whole)} | {_fmt(theirs)} "
                f"| {_ratio(whole, theirs)} | {_fmt(ours['store cpu push'])}, "
                f"{_fmt(r2['store cpu push'])} | {_fmt(ours['store cpu copies'])} "
                f"| {_fmt(ours['store cpu pull first'])}, {_fmt(r2['store cpu pull first'])} |"
            )
    return lines
