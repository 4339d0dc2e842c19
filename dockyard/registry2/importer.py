"""``dockyard import``: take over a registry:2 (CNCF Distribution 2.8) store in place.

Distribution records what each repository holds in small *link files* beside the blobs (the
tree is drawn in :mod:`dockyard.storage.paths`). The importer reads them through the storage
driver, so it works on any driver, and writes the same facts into Dockyard's database:

* ``_layers/<alg>/<hex>/link`` whose blob data exists: a blob linked into the repository;
* ``_manifests/revisions/<alg>/<hex>/link``: a manifest, once its bytes have been read from
  the blob store, checked against their digest and parsed; children before their indexes;
* ``_manifests/tags/<tag>/current/link``: a tag;
* blob data that no link file of any repository names (registry:2 leaves such bytes, a
  deleted manifest's for one, until its ``garbage-collect`` runs): a blob row linked into
  no repository, which garbage collection removes once ``gc.reviewafter`` has passed,
  as registry:2's collector would.

The store itself is only read: no blob or link file is copied, moved or changed, and the
bytes stay where registry:2 wrote them. The import only adds to the database, so running it
again over an unchanged store is a no-op, and ``dry_run`` reports what it would do without
writing anything (not even creating the database). What cannot be taken over (Docker schema1
manifests, links to data that is gone, names Dockyard refuses) is skipped and explained in
``ImportReport.problems``.

Once Dockyard has served writes to the store, the link files are out of date (Dockyard does
not write them): importing them again would set tags back and bring deleted manifests back.
:func:`served_writes_refusal` says why, and the command refuses unless forced. The import's
own writes do not count as served: it opens its store with ``notes_writes=False``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from dockyard.metadata.records import ManifestToStore, MissingReferencesError
from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import is_schema1, parse_manifest
from dockyard.oci.names import is_valid_name, is_valid_tag
from dockyard.registry.manifests import manifest_to_store
from dockyard.registry2.reports import Counts, Report, plural
from dockyard.storage import layout, paths
from dockyard.storage.driver import PathNotFoundError, StorageDriver, StorageError
from dockyard.storage.layout import basename, location

log = logging.getLogger("dockyard.import")

#: registry:2 put no limit on manifest size; this bound only keeps a link that points at a
#: layer by mistake from being read into memory.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

_T = TypeVar("_T")


@dataclass
class ImportReport(Report):
    """What an import did (or, in a dry run, would do)."""

    #: added to the database by this run (a dry run: would be added)
    imported: Counts = field(default_factory=Counts)
    #: found in the store and already in the database, left as they were
    present: Counts = field(default_factory=Counts)
    #: blobs stored but named by no link file, recorded for the collector
    unlinked_blobs: int = 0

    def summary(self) -> str:
        lines = []
        if self.dry_run:
            lines.append("Dry run: nothing was changed.")
            lines.append(f"Would import {self.imported.describe()}.")
        else:
            lines.append(f"Imported {self.imported.describe()}.")
        lines.append(f"Already in the database: {self.present.describe()}.")
        if self.unlinked_blobs:
            recorded = "Would record" if self.dry_run else "Recorded"
            lines.append(
                f"{recorded} {plural(self.unlinked_blobs, 'blob', 'blobs')} that no link file "
                "names, for garbage collection once gc.reviewafter has passed."
            )
        if self.problems:
            lines.append(f"{plural(len(self.problems), 'problem', 'problems')} reported.")
        return "\n".join(lines)


async def import_store(
    metadata: MetadataStore | None, storage: StorageDriver, *, dry_run: bool = False
) -> ImportReport:
    """Import the registry:2 layout found in ``storage`` into ``metadata``.

    ``metadata`` may be None only in a dry run, when there is no database yet.
    """
    if metadata is None and not dry_run:
        raise ValueError("a real import needs a metadata store")
    return await _Importer(metadata, storage, dry_run).run()


async def no_store_refusal(storage: StorageDriver) -> str | None:
    """Why ``storage`` holds nothing to import (no repositories tree), or None.

    Checked before the database is opened, so that a mistyped root gets no database.
    """
    if await storage.list(paths.repositories_root()):
        return None
    return (
        f"no registry:2 store: {location(storage, paths.repositories_root())} does not exist "
        "or is empty, so there is nothing to import"
    )


async def served_writes_refusal(metadata: MetadataStore, storage: StorageDriver) -> str | None:
    """Why importing ``storage`` into ``metadata`` again would undo what Dockyard served
    (pushes, tag moves, deletions), or None if Dockyard never changed what it holds.

    registry:2's link files do not know what Dockyard did: the import would set tags back
    to the digests they name and bring back manifests Dockyard deleted. A dry run counts
    what exactly.
    """
    since = await metadata.served_write_at()
    if since is None:
        return None
    would = (await import_store(metadata, storage, dry_run=True)).imported
    if would.tags or would.manifests or would.blob_links:
        undo = (
            f"it would set {plural(would.tags, 'tag', 'tags')} to the digests registry:2's "
            f"link files name and add {plural(would.manifests, 'manifest', 'manifests')} "
            f"and {plural(would.blob_links, 'blob link', 'blob links')} that Dockyard does "
            "not hold (deleted there, or pushed to registry:2 since the last import)"
        )
    else:
        undo = (
            "registry:2's link files hold nothing Dockyard lacks now, so nothing would change yet"
        )
    return (
        f"Dockyard has served writes to this store since {_moment(since)} (pushes, tag "
        f"changes or deletions); importing registry:2's link files again would undo them: "
        f"{undo}. Use --force to import anyway."
    )


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


@dataclass
class _Repository:
    name: str
    has_manifests_dir: bool
    #: what the database holds for the repository before this run
    database: _Contents
    #: blobs linked into the repository, by registry:2 or by this run
    linked: set[str] = field(default_factory=set)
    #: manifests read and parsed from the store, by digest
    records: dict[str, ManifestToStore] = field(default_factory=dict)
    #: manifests the repository holds after this run (in a dry run: would hold)
    available: set[str] = field(default_factory=set)
    #: manifests found in the store but skipped (a problem line says why)
    skipped: set[str] = field(default_factory=set)
    #: tags set together with their manifest (one transaction instead of two)
    tagged: set[str] = field(default_factory=set)
    #: whether this run writes (or in a dry run would write) anything for the repository
    touched: bool = False


@dataclass(frozen=True)
class _Contents:
    blobs: set[str] = field(default_factory=set)
    manifests: set[str] = field(default_factory=set)
    tags: dict[str, str] = field(default_factory=dict)


#: Inside :meth:`_Importer._bounded`, where the running task's problems are collected.
_task_problems: ContextVar[list[str] | None] = ContextVar("_task_problems", default=None)


class _Importer:
    def __init__(
        self, metadata: MetadataStore | None, storage: StorageDriver, dry_run: bool
    ) -> None:
        self._metadata = metadata
        self._storage = storage
        self._dry_run = dry_run
        self._report = ImportReport(dry_run=dry_run)
        self._unfinished_uploads = 0
        #: every digest a link file names, in any repository (used or skipped)
        self._named: set[str] = set()

    def _problem(self, message: str) -> None:
        collected = _task_problems.get()
        if collected is not None:
            collected.append(message)
            return
        # The caller prints the report's problems; the log keeps them in sequence.
        log.debug("import: %s", message)
        self._report.problems.append(message)

    async def _bounded(self, awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
        """Await all of ``awaitables``, a bounded number at a time; results and problems
        come out in the order of ``awaitables``, however the reads finish."""
        pending = list(awaitables)
        collected: list[list[str]] = [[] for _ in pending]

        async def one(awaitable: Awaitable[_T], problems: list[str]) -> _T:
            _task_problems.set(problems)  # each task runs in its own copy of the context
            return await awaitable

        results = await layout.gather_bounded(map(one, pending, collected))
        for problems in collected:
            for message in problems:
                self._problem(message)
        return results

    # -- the database, read (absent in a dry run before the first import) ---------------------

    async def _contents(self, name: str) -> _Contents | None:
        """What the database holds for repository ``name``; None if it has no such
        repository (or no database yet, in a dry run). Three queries, not one per item."""
        if self._metadata is None or not await self._metadata.repository_exists(name):
            return None
        return _Contents(
            blobs=await self._metadata.repository_blob_digests(name),
            manifests=await self._metadata.repository_manifest_digests(name),
            tags=await self._metadata.tag_targets(name),
        )

    def _writer(self) -> MetadataStore:
        assert self._metadata is not None and not self._dry_run
        return self._metadata

    # -- the store, read -------------------------------------------------------------------

    def _where(self, path: str) -> str:
        return location(self._storage, path)

    async def _list(self, directory: str) -> list[str]:
        try:
            return await self._storage.list(directory)
        except StorageError as exc:
            self._problem(f"cannot list {self._where(directory)}: {exc}; skipped")
            return []

    async def _read_digest_links(self, name: str, directory: str, what: str) -> list[Digest]:
        """Digests of ``directory/<alg>/<hex>/link`` files (``_layers``, ``revisions``).

        A ``<hex>`` directory without its link is content registry:2 deleted: skipped
        silently. A link whose content is not the digest its path names is reported.
        """
        entries = [
            entry
            for algorithm_dir in await self._list(directory)
            for entry in await self._list(algorithm_dir)
        ]
        contents = await self._bounded(self._safe_read_link(f"{entry}/link") for entry in entries)
        found: list[Digest] = []
        for entry, content in zip(entries, contents, strict=True):
            if content is None:
                continue
            algorithm, encoded = entry.rsplit("/", 2)[-2:]
            self._named.update((f"{algorithm}:{encoded}", content.strip()))
            try:
                digest = Digest.parse(content)
            except errors.RegistryError:
                self._problem(
                    f"{name}: {what} link {self._where(f'{entry}/link')} does not hold a "
                    f"digest ({content[:80]!r}); skipped"
                )
                continue
            if str(digest) != f"{algorithm}:{encoded}":
                self._problem(
                    f"{name}: {what} link {self._where(f'{entry}/link')} holds {digest}, not "
                    "the digest its path names; skipped"
                )
                continue
            found.append(digest)
        return found

    async def _safe_read_link(self, path: str) -> str | None:
        try:
            return await layout.read_link(self._storage, path)
        except StorageError as exc:
            self._problem(f"cannot read {self._where(path)}: {exc}; skipped")
            return None

    async def _blob_size(self, digest: Digest) -> int | None:
        try:
            return await self._storage.stat(paths.blob_data(digest))
        except StorageError:
            return None

    # -- the walk --------------------------------------------------------------------------

    async def run(self) -> ImportReport:
        root = paths.repositories_root()
        found = await layout.find_repositories(self._list, self._too_deep)
        repositories = [repository for repository in found if repository.holds_content]
        if not repositories:
            self._problem(
                f"no registry:2 repositories found under {self._where(root)}: check "
                "storage.filesystem.rootdirectory"
            )
        for repository in found:
            name = repository.name
            if not repository.holds_content:  # only _uploads: nothing to import but those
                await self._count_unfinished_uploads(name)
                continue
            if not is_valid_name(name):
                self._problem(f"repository {name!r}: not a valid repository name; skipped")
                continue
            log.info("import: repository %s", name)
            contents = await self._contents(name)
            repo = _Repository(name, repository.has_manifests, contents or _Contents())
            await self._import_repository(repo, existed=contents is not None)
        await self._record_unlinked_blobs()
        if self._unfinished_uploads:
            uploads = plural(self._unfinished_uploads, "unfinished upload", "unfinished uploads")
            self._problem(
                f"{uploads} of registry:2 left in _uploads directories under "
                f"{self._where(root)}: Dockyard does not resume them (clients start those "
                "uploads again) and does not purge them; delete them before Dockyard serves, "
                "as its own uploads go to the same directories"
            )
        return self._report

    async def _record_unlinked_blobs(self) -> None:
        """Rows for the blob data no link file names and the database does not know, so
        that a collection removes them (registry:2's would): no repository may serve them."""
        known = set(self._named)
        if self._metadata is not None:
            known.update(row.digest for row in await self._metadata.blob_rows())
            known.update(await self._metadata.manifest_sizes())
        unlinked: list[tuple[str, int]] = []
        try:
            async for path in self._storage.walk(paths.blobs_root()):
                digest = paths.digest_of_blob_data(path)
                if digest is None or str(digest) in known:
                    continue
                size = await self._storage.stat(path)
                if size is not None:
                    unlinked.append((str(digest), size))
        except PathNotFoundError:
            return
        if unlinked and not self._dry_run:
            await self._writer().record_blobs_without_links(unlinked)
        self._report.unlinked_blobs = len(unlinked)

    def _too_deep(self, directory: str) -> None:
        self._problem(f"{self._where(directory)}: deeper than any repository name can be; skipped")

    async def _import_repository(self, repo: _Repository, existed: bool) -> None:
        name = repo.name
        await self._import_blob_links(repo)
        revisions = await self._read_digest_links(
            name, f"{paths.repository(name)}/_manifests/revisions", "manifest revision"
        )
        tags = await self._read_tags(repo)
        # Distribution 2.1.0 linked manifests under _layers, and registry:2 still serves a
        # tag whose manifest is linked there only; take those manifests too.
        candidates = {str(d): d for d in revisions}
        for target in tags.values():
            if str(target) not in candidates and str(target) in repo.linked:
                candidates[str(target)] = target
        loaded = await self._bounded(self._load_manifest(name, d) for d in candidates.values())
        for key, record in zip(candidates, loaded, strict=True):
            if record is None:
                repo.skipped.add(key)
            else:
                repo.records[key] = record
        await self._import_manifests(repo, tags)
        await self._import_tags(repo, tags)
        await self._count_unfinished_uploads(name)

        if existed:
            self._report.present.repositories += 1
        elif repo.touched or repo.has_manifests_dir:
            # registry:2 lists a repository with a _manifests directory even when every
            # manifest in it was deleted; keep it in the catalog too.
            if not self._dry_run and not repo.touched:
                await self._writer().ensure_repository(name)
            self._report.imported.repositories += 1

    async def _count_unfinished_uploads(self, name: str) -> None:
        """Count registry:2's leftover uploads; Dockyard's own (in its database) are not."""
        for upload in await self._list(f"{paths.repository(name)}/_uploads"):
            if self._metadata is None or await self._metadata.get_upload(basename(upload)) is None:
                self._unfinished_uploads += 1

    # -- blob links ------------------------------------------------------------------------

    async def _import_blob_links(self, repo: _Repository) -> None:
        name = repo.name
        digests = await self._read_digest_links(name, f"{paths.repository(name)}/_layers", "blob")
        sizes = await self._bounded(self._blob_size(d) for d in digests)
        new: list[tuple[str, int]] = []
        for digest, size in zip(digests, sizes, strict=True):
            if size is None:
                self._problem(
                    f"{name}: blob {digest} is linked but its data is missing from the store "
                    "(garbage-collected?); link skipped"
                )
                continue
            repo.linked.add(str(digest))
            if str(digest) in repo.database.blobs:
                self._report.present.blob_links += 1
            else:
                new.append((str(digest), size))
        await self._link_blobs(repo, new)

    async def _link_blobs(self, repo: _Repository, blobs: list[tuple[str, int]]) -> None:
        if not blobs:
            return
        if not self._dry_run:
            await self._writer().link_blobs(repo.name, blobs)
        repo.linked.update(digest for digest, _ in blobs)
        repo.touched = True
        self._report.imported.blob_links += len(blobs)

    # -- manifests -------------------------------------------------------------------------

    async def _load_manifest(self, name: str, digest: Digest) -> ManifestToStore | None:
        """Read, verify and parse a manifest from the blob store; None (reported) if unusable."""
        where = f"{name}: manifest {digest}"
        data_path = paths.blob_data(digest)
        try:
            size = await self._storage.stat(data_path)
            if size is None:
                self._problem(f"{where}: its bytes are missing from the blob store; skipped")
                return None
            if size > MAX_MANIFEST_BYTES:
                self._problem(f"{where}: {size} bytes is too large for a manifest; skipped")
                return None
            payload = await self._storage.get_content(data_path)
        except StorageError as exc:
            self._problem(f"{where}: cannot read its bytes ({exc}); skipped")
            return None
        if Digest.of(payload, digest.algorithm) != digest:
            self._problem(f"{where}: the stored bytes do not match the digest (corrupt); skipped")
            return None
        if is_schema1(payload):
            self._problem(
                f"{where}: Docker schema1 manifest, which Dockyard does not serve; skipped "
                "(push the image again with a current client to convert it)"
            )
            return None
        try:
            # What registry:2 accepted stays acceptable: no URL policy on foreign layers.
            parsed = parse_manifest(payload, None, MAX_MANIFEST_BYTES, lambda _url: True)
        except errors.RegistryError as exc:
            self._problem(f"{where}: not a manifest Dockyard can store ({exc.message}); skipped")
            return None
        return manifest_to_store(digest, parsed, payload)

    async def _import_manifests(self, repo: _Repository, tags: dict[str, Digest]) -> None:
        """Store manifests children first: an index waits until its children are stored."""
        # A new manifest is stored together with one of its tags that needs setting.
        first_tag: dict[str, str] = {}
        for tag, target in sorted(tags.items(), reverse=True):
            if repo.database.tags.get(tag) != str(target):
                first_tag[str(target)] = tag
        pending = dict(sorted(repo.records.items()))
        while pending:
            ready = [
                digest
                for digest, record in pending.items()
                if not any(child in pending for child in record.child_digests)
            ]
            if not ready:  # a reference cycle: impossible for honest content addressing
                for digest in pending:
                    repo.skipped.add(digest)
                    self._problem(
                        f"{repo.name}: manifest {digest} is in a reference cycle; skipped"
                    )
                return
            for digest in ready:
                await self._import_manifest(repo, pending.pop(digest), first_tag.get(digest))

    async def _import_manifest(
        self, repo: _Repository, record: ManifestToStore, tag: str | None
    ) -> None:
        name, digest = repo.name, record.digest
        missing_children = [d for d in record.child_digests if d not in repo.available]
        if missing_children:
            repo.skipped.add(digest)
            self._problem(
                f"{name}: index {digest} lists manifests the repository does not hold "
                f"({', '.join(missing_children)}); skipped"
            )
            return
        unlinked: list[tuple[str, int]] = []
        missing_blobs: list[str] = []
        for blob in dict.fromkeys(record.blob_digests):
            if blob in repo.linked:
                continue
            if blob in repo.database.blobs:
                repo.linked.add(blob)
                self._report.present.blob_links += 1
                continue
            size = await self._blob_size(Digest.parse(blob))
            if size is None:
                missing_blobs.append(blob)
            else:
                unlinked.append((blob, size))
        if missing_blobs:
            repo.skipped.add(digest)
            self._problem(
                f"{name}: manifest {digest} uses blobs whose data is missing from the store "
                f"({', '.join(missing_blobs)}); skipped"
            )
            return
        # registry:2 serves such a manifest (the link was removed with DELETE on the blob, or
        # never written); Dockyard requires a manifest's blobs to be in its repository.
        await self._link_blobs(repo, unlinked)
        for blob, _ in unlinked:
            self._problem(
                f"{name}: blob {blob} is used by manifest {digest} but was not linked into "
                "the repository; linked it so that the manifest stays pullable"
            )
        if digest in repo.database.manifests:
            self._report.present.manifests += 1
        else:
            if not self._dry_run:
                try:
                    await self._writer().put_manifest(name, record, tag=tag)
                except MissingReferencesError as exc:
                    repo.skipped.add(digest)
                    self._problem(f"{name}: manifest {digest} not stored: {exc}")
                    return
            repo.touched = True
            self._report.imported.manifests += 1
            if tag is not None:
                repo.tagged.add(tag)
                self._report.imported.tags += 1
        repo.available.add(digest)

    # -- tags ------------------------------------------------------------------------------

    async def _read_tags(self, repo: _Repository) -> dict[str, Digest]:
        name = repo.name
        tags: list[str] = []
        for tag_dir in await self._list(paths.tags_dir(name)):
            tag = basename(tag_dir)
            if is_valid_tag(tag):
                tags.append(tag)
            else:
                self._problem(f"{name}: tag {tag!r} is not a valid tag name; skipped")
        contents = await self._bounded(
            self._safe_read_link(paths.tag_current_link(name, tag)) for tag in tags
        )
        found: dict[str, Digest] = {}
        for tag, content in zip(tags, contents, strict=True):
            if content is not None:
                self._named.add(content.strip())
            if content is None:
                self._problem(f"{name}: tag {tag} has no current/link; skipped")
                continue
            try:
                found[tag] = Digest.parse(content)
            except errors.RegistryError:
                self._problem(
                    f"{name}: tag {tag}: current/link does not hold a digest "
                    f"({content[:80]!r}); skipped"
                )
        return found

    async def _import_tags(self, repo: _Repository, tags: dict[str, Digest]) -> None:
        name = repo.name
        for tag, target in sorted(tags.items()):
            digest = str(target)
            if digest not in repo.available:
                why = (
                    "which was skipped (see above)"
                    if digest in repo.skipped
                    else "which is not a manifest of the repository (deleted?)"
                )
                self._problem(f"{name}: tag {tag} points at {digest}, {why}; tag skipped")
                continue
            if tag in repo.tagged:
                continue
            if repo.database.tags.get(tag) == digest:
                self._report.present.tags += 1
                continue
            if not self._dry_run:
                await self._writer().put_manifest(name, repo.records[digest], tag=tag)
            repo.touched = True
            self._report.imported.tags += 1
