"""``dockyard import``: take over a registry:2 (CNCF Distribution 2.8) store in place.

Distribution records what each repository holds in small *link files* beside the blobs (the
tree is drawn in :mod:`dockyard.storage.paths`). The importer reads them through the storage
driver, so it works on any driver, and writes the same facts into Dockyard's database:

* ``_layers/<alg>/<hex>/link`` whose blob data exists: a blob linked into the repository;
* ``_manifests/revisions/<alg>/<hex>/link``: a manifest, once its bytes have been read from
  the blob store, checked against their digest and parsed; children before their indexes;
* ``_manifests/tags/<tag>/current/link``: a tag.

The store itself is only read: no blob or link file is copied, moved or changed, and the
bytes stay where registry:2 wrote them. The import only adds to the database, so running it
again is a no-op, and ``dry_run`` reports what it would do without writing anything (not even
creating the database). What cannot be taken over (Docker schema1 manifests, links to data
that is gone, names Dockyard refuses) is skipped and explained in ``ImportReport.problems``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from dockyard.metadata.records import ManifestToStore, MissingReferencesError
from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import parse_manifest
from dockyard.oci.names import MAX_NAME_LENGTH, is_valid_name, is_valid_tag
from dockyard.registry.manifests import manifest_to_store
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFoundError, StorageDriver, StorageError

log = logging.getLogger("dockyard.import")

#: registry:2 put no limit on manifest size; this bound only keeps a link that points at a
#: layer by mistake from being read into memory.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
#: How many link files or blob stats are in flight at once (object stores are slow per call).
READ_CONCURRENCY = 32
#: A link file holds one digest; anything much longer is not a link.
_MAX_LINK_BYTES = 1024

_T = TypeVar("_T")


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


@dataclass
class ImportCounts:
    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    blob_links: int = 0

    def describe(self) -> str:
        return ", ".join(
            [
                _plural(self.repositories, "repository", "repositories"),
                _plural(self.tags, "tag", "tags"),
                _plural(self.manifests, "manifest", "manifests"),
                _plural(self.blob_links, "blob link", "blob links"),
            ]
        )


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do)."""

    dry_run: bool = False
    #: added to the database by this run (a dry run: would be added)
    imported: ImportCounts = field(default_factory=ImportCounts)
    #: found in the store and already in the database, left as they were
    present: ImportCounts = field(default_factory=ImportCounts)
    #: one line per thing skipped or adjusted, for the operator
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = []
        if self.dry_run:
            lines.append("Dry run: nothing was changed.")
            lines.append(f"Would import {self.imported.describe()}.")
        else:
            lines.append(f"Imported {self.imported.describe()}.")
        lines.append(f"Already in the database: {self.present.describe()}.")
        if self.problems:
            lines.append(f"{_plural(len(self.problems), 'problem', 'problems')} reported.")
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


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


class _Importer:
    def __init__(
        self, metadata: MetadataStore | None, storage: StorageDriver, dry_run: bool
    ) -> None:
        self._metadata = metadata
        self._storage = storage
        self._dry_run = dry_run
        self._report = ImportReport(dry_run=dry_run)
        self._unfinished_uploads = 0

    def _problem(self, message: str) -> None:
        collected = _task_problems.get()
        if collected is not None:
            collected.append(message)
            return
        # The caller prints the report's problems; the log keeps them in sequence.
        log.debug("import: %s", message)
        self._report.problems.append(message)

    async def _bounded(self, awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
        """Await all of ``awaitables``, at most READ_CONCURRENCY at a time; results and
        problems come out in the order of ``awaitables``, however the reads finish."""
        limit = asyncio.Semaphore(READ_CONCURRENCY)
        pending = list(awaitables)
        collected: list[list[str]] = [[] for _ in pending]

        async def one(awaitable: Awaitable[_T], problems: list[str]) -> _T:
            _task_problems.set(problems)  # each task runs in its own copy of the context
            async with limit:
                return await awaitable

        results = await asyncio.gather(*map(one, pending, collected))
        for problems in collected:
            for message in problems:
                self._problem(message)
        return list(results)

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

    async def _list(self, directory: str) -> list[str]:
        try:
            return await self._storage.list(directory)
        except StorageError as exc:
            self._problem(f"cannot list {directory}: {exc}; skipped")
            return []

    async def _read_link(self, path: str) -> str | None:
        """The text of a link file; None when it is absent (deleted content)."""
        try:
            size = await self._storage.stat(path)
            if size is None:
                return None
            if size > _MAX_LINK_BYTES:
                return ""
            data = await self._storage.get_content(path)
        except PathNotFoundError:
            return None
        return data.decode("ascii", errors="replace").strip()

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
            try:
                digest = Digest.parse(content)
            except errors.RegistryError:
                self._problem(
                    f"{name}: {what} link {entry}/link does not hold a digest "
                    f"({content[:80]!r}); skipped"
                )
                continue
            if str(digest) != f"{algorithm}:{encoded}":
                self._problem(
                    f"{name}: {what} link {entry}/link holds {digest}, not the digest its "
                    "path names; skipped"
                )
                continue
            found.append(digest)
        return found

    async def _safe_read_link(self, path: str) -> str | None:
        try:
            return await self._read_link(path)
        except StorageError as exc:
            self._problem(f"cannot read {path}: {exc}; skipped")
            return None

    async def _blob_size(self, digest: Digest) -> int | None:
        try:
            return await self._storage.stat(paths.blob_data(digest))
        except StorageError:
            return None

    # -- the walk --------------------------------------------------------------------------

    async def run(self) -> ImportReport:
        repositories = await self._find_repositories()
        if not repositories:
            self._problem(
                f"no registry:2 repositories found under {paths.repositories_root()} in the "
                "configured storage: check storage.filesystem.rootdirectory"
            )
        for name, has_manifests_dir in repositories:
            if not is_valid_name(name):
                self._problem(f"repository {name!r}: not a valid repository name; skipped")
                continue
            log.info("import: repository %s", name)
            contents = await self._contents(name)
            repo = _Repository(name, has_manifests_dir, contents or _Contents())
            await self._import_repository(repo, existed=contents is not None)
        if self._unfinished_uploads:
            self._problem(
                f"{_plural(self._unfinished_uploads, 'unfinished upload', 'unfinished uploads')}"
                " of registry:2 left in _uploads directories: Dockyard does not resume them "
                "(clients start those uploads again) and does not purge them; delete them "
                "before Dockyard serves, as its own uploads go to the same directories"
            )
        return self._report

    async def _find_repositories(self) -> list[tuple[str, bool]]:
        """(name, has ``_manifests``) for every directory holding ``_manifests`` or
        ``_layers``; names may nest (``team/app`` and ``team/app/api``)."""
        found: list[tuple[str, bool]] = []
        pending: list[tuple[str, str]] = [(paths.repositories_root(), "")]
        while pending:
            directory, name = pending.pop()
            children = {_basename(child): child for child in await self._list(directory)}
            if name and ("_manifests" in children or "_layers" in children):
                found.append((name, "_manifests" in children))
            for base, child in children.items():
                if base.startswith("_"):
                    continue
                child_name = f"{name}/{base}" if name else base
                if len(child_name) > MAX_NAME_LENGTH:
                    self._problem(f"{child}: deeper than any repository name can be; skipped")
                    continue
                pending.append((child, child_name))
        return sorted(found)

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
            if self._metadata is None or await self._metadata.get_upload(_basename(upload)) is None:
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
        if _schema_version(payload) == 1:
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
            tag = _basename(tag_dir)
            if is_valid_tag(tag):
                tags.append(tag)
            else:
                self._problem(f"{name}: tag {tag!r} is not a valid tag name; skipped")
        contents = await self._bounded(
            self._safe_read_link(paths.tag_current_link(name, tag)) for tag in tags
        )
        found: dict[str, Digest] = {}
        for tag, content in zip(tags, contents, strict=True):
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


def _schema_version(payload: bytes) -> object:
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return body.get("schemaVersion") if isinstance(body, dict) else None
