"""``dockyard export``: the way back to registry:2 (CNCF Distribution 2.8).

Dockyard keeps what each repository holds in its database and writes none of Distribution's
link files, so registry:2, and its ``garbage-collect``, cannot see what was pushed to Dockyard
and would serve again what was deleted there. The export writes, through the storage driver,
the link files registry:2 2.8.2 keeps for the database's current state:

* ``_layers/<alg>/<hex>/link``: a blob linked into the repository (when its data exists);
* ``_manifests/revisions/<alg>/<hex>/link``: a manifest. Dockyard keeps manifest bytes in
  the blob store, where registry:2 reads them; bytes found missing are written back from
  the database;
* ``_manifests/tags/<tag>/current/link`` and ``_manifests/tags/<tag>/index/<alg>/<hex>/link``:
  a tag and its current digest in the tag's history;

and removes the link files of blobs and manifests the database does not hold, and the
directory of each tag it does not hold (as registry:2 removes a tag), so that what was
deleted in Dockyard stays deleted. A tag's history entry is removed once its manifest is gone.

What Dockyard could never hold is left as it is: Docker schema1 manifests and the tags that
point at them, tag names that break the naming rules, and repositories the database does not
know (Dockyard never deletes a repository, so their directories were never Dockyard's). Link
files that are already right are not rewritten: a second export changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import is_schema1
from dockyard.oci.names import is_valid_tag
from dockyard.registry.blob_mover import finish_moves
from dockyard.registry2.reports import Counts, Report, plural
from dockyard.storage import layout, paths
from dockyard.storage.driver import PathNotFoundError, StorageDriver
from dockyard.storage.layout import basename, gather_bounded, location

log = logging.getLogger("dockyard.export")

#: Called after each repository with (repositories done, repositories in all, name).
Progress = Callable[[int, int, str], None]
#: Only a manifest's bytes are read to tell schema1 apart; a larger file is not one.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


@dataclass
class ExportReport(Report):
    """What an export wrote and removed (or, in a dry run, would)."""

    #: repositories of the database, all exported
    repositories: int = 0
    written: Counts = field(default_factory=Counts)
    removed: Counts = field(default_factory=Counts)
    #: link files that were already right, left untouched
    in_place: Counts = field(default_factory=Counts)
    #: manifests whose bytes were missing from the blob store, written back
    restored_manifests: int = 0
    #: tag history entries removed because their manifest is gone
    removed_history: int = 0

    def summary(self) -> str:
        would = "Would " if self.dry_run else ""
        lines = ["Dry run: nothing was changed."] if self.dry_run else []
        exported = plural(self.repositories, "repository", "repositories")
        lines.append(f"{would}{'export' if would else 'Exported'} {exported}.")
        lines.append(f"{would}{'write' if would else 'Wrote'} {self.written.describe(False)}.")
        removed = self.removed.describe(False)
        if self.removed_history:
            removed += ", " + plural(self.removed_history, "tag history entry", "history entries")
        lines.append(f"{would}{'remove' if would else 'Removed'} {removed}.")
        lines.append(f"Already in place: {self.in_place.describe(False)}.")
        if self.restored_manifests:
            restored = plural(self.restored_manifests, "manifest", "manifests")
            lines.append(
                f"{would}{'write' if would else 'Wrote'} back the bytes of {restored} "
                "missing from the blob store."
            )
        if self.problems:
            lines.append(f"{plural(len(self.problems), 'problem', 'problems')} reported.")
        return "\n".join(lines)


async def export_store(
    metadata: MetadataStore,
    storage: StorageDriver,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Write registry:2's link files in ``storage`` for what ``metadata`` holds, after the
    deferred copies still pending are made (registry:2 reads blobs at their own path only;
    a dry run changes nothing, so it reports those blobs missing)."""
    if not dry_run:
        await finish_moves(metadata, storage)
    return await _Exporter(metadata, storage, dry_run, progress).run()


@dataclass
class _Links:
    """Link files to write and to remove in one directory tree, and how many are right."""

    write: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    in_place: int = 0


class _Exporter:
    def __init__(
        self,
        metadata: MetadataStore,
        storage: StorageDriver,
        dry_run: bool,
        progress: Progress | None,
    ) -> None:
        self._metadata = metadata
        self._storage = storage
        self._dry_run = dry_run
        self._progress = progress
        self._report = ExportReport(dry_run=dry_run)
        #: whether a blob's data exists, by digest (blobs are shared by repositories)
        self._present: dict[str, bool] = {}

    def _problem(self, message: str) -> None:
        log.debug("export: %s", message)
        self._report.problems.append(message)

    def _where(self, path: str) -> str:
        return location(self._storage, path)

    async def run(self) -> ExportReport:
        names = await self._metadata.list_repositories(None, None)
        known = set(names)
        for found in await layout.find_repositories(self._storage.list, self._too_deep):
            if found.holds_content and found.name not in known:
                self._problem(
                    f"repository {found.name!r} is in the store but not in Dockyard's "
                    "database (skipped by the import, or pushed to registry:2 after it): "
                    "its link files are left as they are"
                )
        for done, name in enumerate(names, 1):
            log.info("export: repository %s", name)
            await self._export_repository(name)
            if self._progress is not None:
                self._progress(done, len(names), name)
        self._report.repositories = len(names)
        return self._report

    def _too_deep(self, directory: str) -> None:
        self._problem(f"{self._where(directory)}: deeper than any repository name can be; left")

    async def _export_repository(self, name: str) -> None:
        blobs = await self._metadata.repository_blob_digests(name)
        manifests = await self._metadata.repository_manifest_digests(name)
        tags = await self._metadata.tag_targets(name)
        await self._export_blob_links(name, blobs)
        kept = await self._export_revisions(name, manifests)
        await self._export_tags(name, tags, manifests | kept, kept)

    # -- the store, read -------------------------------------------------------------------

    async def _digest_links(self, directory: str) -> dict[str, str | None]:
        """``directory/<alg>/<hex>/link`` files by the digest their path names, with their
        content; None where the ``<hex>`` directory has no link (deleted content)."""
        entries = [
            entry
            for algorithm_dir in await self._storage.list(directory)
            for entry in await self._storage.list(algorithm_dir)
        ]
        contents = await gather_bounded(
            layout.read_link(self._storage, f"{entry}/link") for entry in entries
        )
        found: dict[str, str | None] = {}
        for entry, content in zip(entries, contents, strict=True):
            algorithm, encoded = entry.rsplit("/", 2)[-2:]
            try:
                digest = Digest.parse(f"{algorithm}:{encoded}")
            except errors.RegistryError:
                if content is not None:
                    self._problem(f"{self._where(entry)}: not a digest's directory; left")
                continue
            found[str(digest)] = content
        return found

    async def _blob_present(self, digest: str) -> bool:
        present = self._present.get(digest)
        if present is None:
            size = await self._storage.stat(paths.blob_data(Digest.parse(digest)))
            present = self._present[digest] = size is not None
        return present

    async def _is_schema1(self, digest: str) -> bool:
        data_path = paths.blob_data(Digest.parse(digest))
        size = await self._storage.stat(data_path)
        if size is None or size > MAX_MANIFEST_BYTES:
            return False
        try:
            return is_schema1(await self._storage.get_content(data_path))
        except PathNotFoundError:
            return False

    # -- the store, written ----------------------------------------------------------------

    def _plan(
        self, existing: dict[str, str | None], wanted: Iterable[str], keep: set[str]
    ) -> _Links:
        """Write each wanted digest whose link is absent or wrong; remove each present link
        of a digest neither wanted nor kept."""
        wanted = set(wanted)
        links = _Links()
        for digest in sorted(wanted):
            if existing.get(digest) == digest:
                links.in_place += 1
            else:
                links.write.append(digest)
        links.remove = sorted(
            digest
            for digest, content in existing.items()
            if content is not None and digest not in wanted and digest not in keep
        )
        return links

    async def _apply(self, links: _Links, path_of: Callable[[Digest], str]) -> None:
        if self._dry_run:
            return
        await gather_bounded(
            self._storage.put_content(path_of(Digest.parse(d)), d.encode()) for d in links.write
        )
        await gather_bounded(self._delete(path_of(Digest.parse(d))) for d in links.remove)

    async def _delete(self, path: str) -> None:
        with contextlib.suppress(PathNotFoundError):  # gone meanwhile: as good
            await self._storage.delete(path)

    # -- blob links ------------------------------------------------------------------------

    async def _export_blob_links(self, name: str, blobs: set[str]) -> None:
        ordered = sorted(blobs)
        present = await gather_bounded(self._blob_present(d) for d in ordered)
        missing = {d for d, there in zip(ordered, present, strict=True) if not there}
        for digest in sorted(missing):
            self._problem(
                f"{name}: blob {digest} is linked in Dockyard's database but its data is "
                f"missing from the store ({self._where(paths.blob_data(Digest.parse(digest)))})"
                ": no link written"
            )
        existing = await self._digest_links(f"{paths.repository(name)}/_layers")
        links = self._plan(existing, blobs - missing, keep=missing)
        await self._apply(links, lambda digest: paths.layer_link(name, digest))
        self._count("blob_links", links)

    def _count(self, kind: Literal["manifests", "blob_links"], links: _Links) -> None:
        for counts, value in (
            (self._report.written, len(links.write)),
            (self._report.removed, len(links.remove)),
            (self._report.in_place, links.in_place),
        ):
            setattr(counts, kind, getattr(counts, kind) + value)

    # -- manifests -------------------------------------------------------------------------

    async def _export_revisions(self, name: str, manifests: set[str]) -> set[str]:
        """Link every manifest of the database; return the schema1 manifests left in place."""
        ordered = sorted(manifests)
        present = await gather_bounded(self._blob_present(d) for d in ordered)
        for digest, there in zip(ordered, present, strict=True):
            if not there:
                await self._restore_manifest_bytes(name, digest)
        existing = await self._digest_links(f"{paths.repository(name)}/_manifests/revisions")
        stale = sorted(
            d for d, content in existing.items() if content is not None and d not in manifests
        )
        schema1 = await gather_bounded(self._is_schema1(d) for d in stale)
        kept = {digest for digest, old in zip(stale, schema1, strict=True) if old}
        for digest in sorted(kept):
            self._problem(
                f"{name}: manifest {digest} is Docker schema1, which Dockyard never held: "
                "left as it is, with the tags that point at it"
            )
        links = self._plan(existing, manifests, keep=kept)
        await self._apply(links, lambda digest: paths.manifest_revision_link(name, digest))
        self._count("manifests", links)
        return kept

    async def _restore_manifest_bytes(self, name: str, digest: str) -> None:
        record = await self._metadata.get_manifest(name, digest, by_digest=True)
        if record is None:  # deleted meanwhile
            return
        if not self._dry_run:
            await self._storage.put_content(paths.blob_data(Digest.parse(digest)), record.payload)
        self._present[digest] = True
        self._report.restored_manifests += 1

    # -- tags ------------------------------------------------------------------------------

    async def _export_tags(
        self, name: str, tags: dict[str, str], manifests: set[str], kept: set[str]
    ) -> None:
        """Set every tag of the database; remove the others, except those of ``kept``
        (schema1) manifests and names Dockyard refuses. ``manifests``: what the repository
        holds after the export, for the tags' history."""
        in_store = [basename(d) for d in await self._storage.list(paths.tags_dir(name))]
        await gather_bounded(self._export_tag(name, tag, tags[tag], manifests) for tag in tags)
        stale = sorted(tag for tag in in_store if tag not in tags)
        for tag in stale:
            if not is_valid_tag(tag):
                self._problem(f"{name}: tag {tag!r} is not a valid tag name: left as it is")
                continue
            current = await layout.read_link(self._storage, paths.tag_current_link(name, tag))
            if current in kept:
                continue
            if not self._dry_run:
                await self._delete(paths.tag_dir(name, tag))
            self._report.removed.tags += 1

    async def _export_tag(self, name: str, tag: str, target: str, manifests: set[str]) -> None:
        current_path = paths.tag_current_link(name, tag)
        current = await layout.read_link(self._storage, current_path)
        history = await self._digest_links(f"{paths.tag_dir(name, tag)}/index")
        links = self._plan(history, [target], keep=manifests)
        self._report.removed_history += len(links.remove)
        await self._apply(links, lambda digest: paths.tag_index_link(name, tag, digest))
        changed = current != target or bool(links.write)
        if current != target and not self._dry_run:
            await self._storage.put_content(current_path, target.encode())
        if changed:
            self._report.written.tags += 1
        else:
            self._report.in_place.tags += 1
