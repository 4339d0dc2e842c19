"""Does the storage hold what the database says, and only that? Through the storage
driver contract alone (stat, walk, list, read), so object stores are checked too.

Checks, in order: every present blob row has bytes of its size (with ``verify_digests``,
bytes that hash to its digest); every stored manifest has its copy at the blob path;
every file under the blobs tree has a row; the link files of a store imported from
registry:2 agree with the database's links; every upload directory has a session.

Repairs, only with ``repair`` and only where nothing can be lost: a blob whose bytes are
gone or wrong is marked missing (unknown until pushed again; its bytes are not deleted);
a manifest's copy is written again from the database; a layer link file whose link the
import missed is linked, while Dockyard has served no write to the store (afterwards a
link file may be one Dockyard's own deletes left behind); an upload directory no session
owns is deleted once older than the upload purge age (registry:2's ``startedat``) or when
it has no start time (a Dockyard upload whose session ended); bytes without a row are
recorded as blobs no repository links, never deleted here: garbage collection removes
them after the review delay.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from posixpath import dirname

from dockyard.metadata.integrity_queries import BlobRow
from dockyard.metadata.pending_blobs import PendingBlob
from dockyard.metadata.store import MetadataStore
from dockyard.oci.digest import Digest
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFoundError, StorageDriver
from dockyard.storage.layout import basename, find_repositories, gather_bounded, read_link

# Called as the check goes: (phase, done, total); total 0 when unknown yet.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str  # a digest, or a storage path
    detail: str
    #: what the repair did, or None when nothing was repaired
    repaired: str | None = None

    def line(self) -> str:
        done = f" -> {self.repaired}" if self.repaired else ""
        return f"{self.kind}: {self.subject}: {self.detail}{done}"


@dataclass
class FsckReport:
    repair: bool
    verify_digests: bool
    blobs: int = 0
    manifests: int = 0
    files: int = 0
    hashed_bytes: int = 0
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def repaired(self) -> int:
        return sum(1 for f in self.findings if f.repaired)

    @property
    def exit_status(self) -> int:
        """0 when database and storage agree, 1 when something was found."""
        return 1 if self.findings else 0

    def summary(self) -> str:
        checked = (
            f"checked {self.blobs} blobs, {self.manifests} manifests and {self.files} "
            f"files in storage"
        )
        if self.verify_digests:
            checked += f", hashed {self.hashed_bytes} bytes"
        found = f"{len(self.findings)} problem{'' if len(self.findings) == 1 else 's'}"
        if self.repair:
            found += f", {self.repaired} repaired"
        return f"fsck {checked}: {found} ({self.seconds:.2f}s)"


class _Check:
    def __init__(
        self,
        metadata: MetadataStore,
        storage: StorageDriver,
        report: FsckReport,
        upload_age: timedelta,
        progress: Progress | None,
        pending: Sequence[PendingBlob] = (),
    ) -> None:
        # Deferred copies (storage.s3.deferredcopy): where a blob's bytes are until moved,
        # and the upload directories that rows still point at (not strays).
        self.pending_at = {b.digest: b.path for b in pending if b.moved_at is None}
        self.pointed_at = {dirname(b.path) for b in pending}
        self.metadata = metadata
        self.storage = storage
        self.report = report
        self.upload_age = upload_age
        self.progress = progress or (lambda _phase, _done, _total: None)

    def found(self, kind: str, subject: str, detail: str, repaired: str | None = None) -> None:
        self.report.findings.append(Finding(kind, subject, detail, repaired))

    async def blobs(self, rows: list[BlobRow]) -> None:
        present = [row for row in rows if not row.missing]
        self.report.blobs = len(present)
        done = 0

        async def one(row: BlobRow) -> None:
            nonlocal done
            await self._blob(row)
            done += 1
            self.progress("blobs", done, len(present))

        await gather_bounded(one(row) for row in present)

    async def _blob(self, row: BlobRow) -> None:
        path = self.pending_at.get(row.digest) or paths.blob_data(Digest.parse(row.digest))
        size = await self.storage.stat(path)
        if size is None:
            problem = ("missing-bytes", "the database has the blob, the storage no bytes")
        elif size != row.size:
            problem = ("wrong-size", f"{size} bytes in storage, {row.size} in the database")
        elif self.report.verify_digests and not await self._hashes_to(path, row.digest):
            problem = ("digest-mismatch", "the bytes in storage hash to another digest")
        else:
            return
        repaired = None
        if self.report.repair and await self.metadata.mark_blob_missing(row.digest):
            repaired = "marked missing (unknown until pushed again)"
        self.found(problem[0], row.digest, problem[1], repaired)

    async def _hashes_to(self, path: str, digest: str) -> bool:
        expected = Digest.parse(digest)
        hasher = hashlib.new(expected.algorithm)
        async for chunk in self.storage.reader(path):
            await asyncio.to_thread(hasher.update, chunk)
            self.report.hashed_bytes += len(chunk)
        return hasher.hexdigest() == expected.hex

    async def manifests(self, sizes: dict[str, int]) -> None:
        self.report.manifests = len(sizes)
        done = 0

        async def one(digest: str, size: int) -> None:
            nonlocal done
            await self._manifest(digest, size)
            done += 1
            self.progress("manifests", done, len(sizes))

        await gather_bounded(one(d, s) for d, s in sizes.items())

    async def _manifest(self, digest: str, size: int) -> None:
        path = paths.blob_data(Digest.parse(digest))
        stored = await self.storage.stat(path)
        if stored == size and not (
            self.report.verify_digests and not await self._hashes_to(path, digest)
        ):
            return
        detail = (
            "no copy at the blob path"
            if stored is None
            else "the copy at the blob path differs from the manifest"
        )
        repaired = None
        payload = await self.metadata.manifest_payload(digest) if self.report.repair else None
        if payload is not None:
            await self.storage.put_content(path, payload)
            repaired = "written again from the database"
        self.found("manifest-bytes", digest, detail, repaired)

    async def stray_files(self, known: set[str]) -> None:
        unknown: list[tuple[str, int]] = []
        try:
            async for path in self.storage.walk(paths.blobs_root()):
                self.report.files += 1
                if self.report.files % 1000 == 0:
                    self.progress("files", self.report.files, 0)
                digest = paths.digest_of_blob_data(path)
                if digest is None:
                    self.found("stray-file", path, "not a blob's data file")
                elif str(digest) not in known:
                    size = await self.storage.stat(path)
                    if size is not None:
                        unknown.append((str(digest), size))
        except PathNotFoundError:
            pass
        # A row makes them the collector's: it removes them once the review delay has
        # passed (a push committing such bytes just now finds its row there, and keeps it).
        if unknown and self.report.repair:
            await self.metadata.record_blobs_without_links(unknown)
        for unknown_digest, _size in unknown:
            self.found(
                "bytes-without-row",
                unknown_digest,
                "stored, unknown to the database, so no collection sees them",
                "recorded as a blob no repository links: collected after the review delay"
                if self.report.repair
                else None,
            )

    async def repositories(self, present: dict[str, int], uploads: set[str]) -> None:
        found = await find_repositories(self._list, lambda _path: None)
        served = await self.metadata.served_write_at() is not None
        for done, repository in enumerate(found, start=1):
            if repository.has_layers:
                await self._layer_links(repository.name, present, served)
            if repository.has_uploads:
                await self._uploads(repository.name, uploads)
            self.progress("repositories", done, len(found))

    async def _list(self, path: str) -> list[str]:
        try:
            return await self.storage.list(path)
        except PathNotFoundError:
            return []

    async def _layer_links(self, name: str, present: dict[str, int], served: bool) -> None:
        linked = await self.metadata.repository_blob_digests(name)
        missed: list[tuple[str, int]] = []
        for algorithm_dir in await self._list(f"{paths.repository(name)}/_layers"):
            for directory in await self._list(algorithm_dir):
                digest = f"{basename(algorithm_dir)}:{basename(directory)}"
                if digest in linked:
                    continue
                if digest not in present:
                    detail = "layer link file of a blob the database does not have"
                    self.found("link-file-without-blob", f"{name}@{digest}", detail)
                    continue
                missed.append((digest, present[digest]))
        if not missed:
            return
        repair = self.report.repair and not served
        if repair:
            await self.metadata.link_blobs(name, missed)
        for digest, _ in missed:
            repaired = "linked" if repair else None
            detail = "layer link file, no link in the database" + (
                " (Dockyard has served writes: maybe a link it deleted; not re-linked)"
                if served
                else ""
            )
            self.found("link-file-without-row", f"{name}@{digest}", detail, repaired)

    async def _uploads(self, name: str, sessions: set[str]) -> None:
        for directory in await self._list(f"{paths.repository(name)}/_uploads"):
            upload_id = basename(directory)
            if upload_id in sessions or directory in self.pointed_at:
                continue
            started = await _started_at(self.storage, directory)
            old = started is None or datetime.now(UTC) - started > self.upload_age
            repaired = None
            if self.report.repair and old:
                await self.storage.delete(directory)
                repaired = "deleted"
            when = "no start time" if started is None else f"started {started.isoformat()}"
            self.found("upload-without-session", directory, f"no upload session ({when})", repaired)


async def _started_at(storage: StorageDriver, directory: str) -> datetime | None:
    """registry:2's ``startedat`` file of an upload directory (RFC 3339), if any."""
    text = await read_link(storage, f"{directory}/startedat")
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def check_store(
    metadata: MetadataStore,
    storage: StorageDriver,
    *,
    repair: bool = False,
    verify_digests: bool = False,
    upload_age: timedelta = timedelta(hours=168),
    progress: Progress | None = None,
) -> FsckReport:
    """Compare ``metadata`` with ``storage`` (see the module docstring)."""
    started = time.monotonic()
    report = FsckReport(repair=repair, verify_digests=verify_digests)
    pending = await metadata.pending_blobs(limit=None)
    check = _Check(metadata, storage, report, upload_age, progress, pending)
    rows = await metadata.blob_rows()
    sizes = await metadata.manifest_sizes()
    await check.blobs(rows)
    await check.manifests(sizes)
    await check.stray_files({row.digest for row in rows} | set(sizes))
    # Read again: the repairs above may have marked blobs missing, which nothing may link.
    present = {row.digest: row.size for row in await metadata.blob_rows() if not row.missing}
    await check.repositories(present, await metadata.upload_ids())
    report.seconds = time.monotonic() - started
    return report
