"""The copy engine: whole images from an :class:`ImageSource` to an
:class:`ImageDestination`, manifests byte for byte (digests preserved), blobs streamed.

Incremental by construction: a blob the destination repository has is skipped (HEAD), a blob
this run has seen in another destination repository is mounted from there, and a manifest
the destination tag already points at is not pushed again. Indexes bring their children,
every copied manifest brings its referrers (signatures, SBOMs), and a destination without
the referrers API gets the ``sha256-<hex>`` fallback tag that OCI 1.1 clients read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dockyard.oci import errors as oci_errors
from dockyard.oci import mediatypes
from dockyard.oci.manifest import ParsedManifest, parse_manifest
from dockyard.remote import FetchedManifest, RemoteError, RemoteUnavailable, fallback_tag

from .protocols import BlobChunks, ImageDestination, ImageSource
from .rules import PrefixMap, SyncRules


@dataclass
class SyncSummary:
    images_copied: int = 0
    images_skipped: int = 0
    manifests_copied: int = 0
    manifests_skipped: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    bytes_copied: int = 0
    referrers_copied: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: SyncSummary) -> None:
        for name, value in vars(other).items():
            if name == "errors":
                self.errors.extend(value)
            else:
                setattr(self, name, getattr(self, name) + value)


CopyResult = SyncSummary


@dataclass(frozen=True)
class ProgressEvent:
    """``kind``: "plan" (``total`` images found), "bytes" (``amount`` moved), "image"
    (one done: ``name``, ``status`` copied / skipped / failed / planned)."""

    kind: str
    name: str = ""
    status: str = ""
    amount: int = 0
    total: int = 0


Progress = Callable[[ProgressEvent], None]
T = TypeVar("T")
RETRY_ATTEMPTS = 3


NO_PREFIXES = PrefixMap()


def _ignore(_: ProgressEvent) -> None:
    pass


class Copier:
    """One copy run between two registries: its counters, the blobs it has placed (for
    mounts), and its concurrency limit on blob transfers."""

    def __init__(
        self,
        source: ImageSource,
        dest: ImageDestination,
        *,
        same_registry: bool = False,
        blob_concurrency: int = 4,
        progress: Progress | None = None,
    ) -> None:
        self.source, self.dest = source, dest
        self.same_registry = same_registry
        self.summary = SyncSummary()
        self.progress = progress or _ignore
        self._blob_slots = asyncio.Semaphore(blob_concurrency)
        self._placed: dict[str, str] = {}  # digest -> a destination repository holding it
        self._digest_locks: dict[str, asyncio.Lock] = {}
        self._done: set[tuple[str, str]] = set()  # (destination repository, digest)

    # ------------------------------------------------------------------ images

    async def copy_image(
        self, src_repo: str, reference: str, dest_repo: str, dest_reference: str
    ) -> bool:
        """Copy ``src_repo:reference`` to ``dest_repo:dest_reference``; False: already there."""
        fetched = await self.source.get_manifest(src_repo, reference)
        existing = await self.dest.head_manifest(dest_repo, dest_reference)
        if existing is not None and existing.digest == fetched.digest:
            self.summary.manifests_skipped += 1
            await self._copy_referrers(src_repo, fetched.digest, dest_repo)
            return False
        await self._copy_manifest(src_repo, fetched, dest_repo, dest_reference)
        return True

    async def _copy_manifest(
        self, src_repo: str, fetched: FetchedManifest, dest_repo: str, dest_reference: str
    ) -> None:
        parsed = _parse(fetched)
        if parsed.is_index:
            await asyncio.gather(
                *(self._copy_child(src_repo, str(c.digest), dest_repo) for c in parsed.manifests)
            )
        else:
            await asyncio.gather(
                *(
                    self.copy_blob(src_repo, str(b.digest), b.size, dest_repo)
                    for b in parsed.blob_references()
                )
            )
        await self.dest.put_manifest(dest_repo, dest_reference, fetched.body, fetched.media_type)
        self.summary.manifests_copied += 1
        await self._copy_referrers(src_repo, fetched.digest, dest_repo)

    async def _copy_child(self, src_repo: str, digest: str, dest_repo: str) -> None:
        if await self.dest.head_manifest(dest_repo, digest) is not None:
            self.summary.manifests_skipped += 1
            return
        fetched = await self.source.get_manifest(src_repo, digest)
        await self._copy_manifest(src_repo, fetched, dest_repo, digest)

    async def _copy_referrers(self, src_repo: str, subject: str, dest_repo: str) -> None:
        found = [r for r in await self.source.referrers(src_repo, subject) if "digest" in r]
        if not found:
            return
        for referrer in found:
            if await self.dest.head_manifest(dest_repo, referrer["digest"]) is None:
                fetched = await self.source.get_manifest(src_repo, referrer["digest"])
                await self._copy_manifest(src_repo, fetched, dest_repo, referrer["digest"])
                self.summary.referrers_copied += 1
        await self._publish_fallback_tag(dest_repo, subject, found)

    async def _publish_fallback_tag(
        self, dest_repo: str, subject: str, referrers: list[dict[str, Any]]
    ) -> None:
        """Where the destination lists no referrers of its own (no referrers API), write
        the ``sha256-<hex>`` tag index that lists them."""
        listed = await self.dest.referrers(dest_repo, subject)
        known = {entry.get("digest") for entry in listed}
        missing = [r for r in referrers if r["digest"] not in known]
        if not missing:
            return
        index = {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [*listed, *missing],
        }
        body = json.dumps(index, separators=(",", ":")).encode()
        await self.dest.put_manifest(dest_repo, fallback_tag(subject), body, mediatypes.OCI_INDEX)

    # ------------------------------------------------------------------ blobs

    async def copy_blob(self, src_repo: str, digest: str, size: int, dest_repo: str) -> None:
        """Place one blob in ``dest_repo``. Placements of one digest take turns, so that
        the second repository mounts what the first received instead of receiving it too."""
        lock = self._digest_locks.setdefault(digest, asyncio.Lock())
        async with lock:
            if (dest_repo, digest) in self._done:
                self.summary.blobs_skipped += 1
                return
            async with self._blob_slots:
                await self._place_blob(src_repo, digest, size, dest_repo)
            self._done.add((dest_repo, digest))
            self._placed.setdefault(digest, dest_repo)

    async def _place_blob(self, src_repo: str, digest: str, size: int, dest_repo: str) -> None:
        if await self.dest.blob_size(dest_repo, digest) is not None:
            self.summary.blobs_skipped += 1
            return
        for candidate in self._mount_candidates(src_repo, digest, dest_repo):
            if await self.dest.mount_blob(dest_repo, digest, candidate):
                self.summary.blobs_mounted += 1
                return
        async with self.source.open_blob(src_repo, digest) as stream:
            await self.dest.push_blob(dest_repo, digest, size, self._counted(stream))
        self.summary.blobs_copied += 1

    def _mount_candidates(self, src_repo: str, digest: str, dest_repo: str) -> list[str]:
        candidates = []
        if self.same_registry and src_repo != dest_repo:
            candidates.append(src_repo)
        placed = self._placed.get(digest)
        if placed is not None and placed != dest_repo and placed not in candidates:
            candidates.append(placed)
        return candidates

    async def _counted(self, chunks: BlobChunks) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.summary.bytes_copied += len(chunk)
            self.progress(ProgressEvent("bytes", amount=len(chunk)))
            yield chunk


def _parse(fetched: FetchedManifest) -> ParsedManifest:
    try:
        return parse_manifest(fetched.body, fetched.media_type)
    except oci_errors.RegistryError as exc:
        raise RemoteError(f"manifest {fetched.digest}: {exc}") from exc


# ---------------------------------------------------------------------- entry points


async def copy_image(
    source: ImageSource,
    src_repo: str,
    reference: str,
    dest: ImageDestination,
    dest_repo: str,
    dest_reference: str,
    *,
    same_registry: bool = False,
    progress: Progress | None = None,
) -> CopyResult:
    """One image (with its children and referrers); the counters of what it took."""
    copier = Copier(source, dest, same_registry=same_registry, progress=progress)
    if await copier.copy_image(src_repo, reference, dest_repo, dest_reference):
        copier.summary.images_copied += 1
    else:
        copier.summary.images_skipped += 1
    return copier.summary


@dataclass(frozen=True)
class PlannedImage:
    src_repo: str
    tag: str
    dest_repo: str


async def plan_sync(
    source: ImageSource, rules: SyncRules, prefixes: PrefixMap = NO_PREFIXES
) -> list[PlannedImage]:
    """Every (repository, tag) of the source the rules select, and where it goes."""
    planned: list[PlannedImage] = []
    for repo in sorted(await source.list_repositories()):
        relative = prefixes.relative(repo)
        if relative is None or not rules.wants_repository(relative or repo):
            continue
        for tag in sorted(await source.list_tags(repo)):
            if rules.wants_tag(relative or repo, tag):
                planned.append(PlannedImage(repo, tag, prefixes.destination(relative)))
    return planned


async def sync_registries(
    source: ImageSource,
    dest: ImageDestination,
    rules: SyncRules,
    *,
    prefixes: PrefixMap = NO_PREFIXES,
    image_concurrency: int = 4,
    blob_concurrency: int = 4,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> SyncSummary:
    """Copy every selected tag; a failed image is counted and named, the others go on."""
    report = progress or _ignore
    planned = await plan_sync(source, rules, prefixes)
    report(ProgressEvent("plan", total=len(planned)))
    copier = Copier(source, dest, blob_concurrency=blob_concurrency, progress=progress)
    slots = asyncio.Semaphore(image_concurrency)

    async def attempt(image: PlannedImage) -> bool:
        if dry_run:
            return await _differs(source, dest, image)
        return await copier.copy_image(image.src_repo, image.tag, image.dest_repo, image.tag)

    async def one(image: PlannedImage) -> None:
        name = f"{image.src_repo}:{image.tag}"
        async with slots:
            try:
                changed = await with_retries(lambda: attempt(image))
            except RemoteError as exc:
                copier.summary.errors.append(f"{name}: {exc}")
                report(ProgressEvent("image", name=name, status="failed"))
                return
        if changed:
            copier.summary.images_copied += 1
        else:
            copier.summary.images_skipped += 1
        copied = "planned" if dry_run else "copied"
        report(ProgressEvent("image", name=name, status=copied if changed else "skipped"))

    await asyncio.gather(*(one(image) for image in planned))
    return copier.summary


async def with_retries(
    work: Callable[[], Awaitable[T]], attempts: int = RETRY_ATTEMPTS, delay: float = 1.0
) -> T:
    """Run ``work`` again after a failure a registry may recover from (unreachable, 429,
    5xx), waiting ``delay`` seconds, then twice as long. An image copy may be re-run: what
    the destination already has is skipped."""
    for attempt in range(attempts - 1):
        try:
            return await work()
        except RemoteUnavailable:
            await asyncio.sleep(delay * 2**attempt)
    return await work()


async def _differs(source: ImageSource, dest: ImageDestination, image: PlannedImage) -> bool:
    fetched = await source.get_manifest(image.src_repo, image.tag)
    existing = await dest.head_manifest(image.dest_repo, image.tag)
    return existing is None or existing.digest != fetched.digest
