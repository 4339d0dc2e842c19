"""Pages of listings (Listing), the catalog and referrers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dockyard.metadata.store import MetadataStore, TagList
from dockyard.oci import mediatypes
from dockyard.oci.digest import Digest
from dockyard.oci.pagination import Page

# Rows read at a time when a filter hides some repositories from the caller.
_FILTER_BATCH = 500


class Listing:
    """A page of entries. ``next_last`` is the last entry when the page is full and more
    may follow: the Link header's ``last``. ``whole`` is set when the page is a repository's
    whole tag list as the store caches it; the API keeps its response body there."""

    __slots__ = ("_entries", "next_last", "whole")

    def __init__(
        self, entries: list[str] | None, next_last: str | None, whole: TagList | None = None
    ) -> None:
        if entries is None and whole is None:
            raise ValueError("a listing needs entries or a whole tag list")
        self._entries = entries
        self.next_last = next_last
        self.whole = whole

    @property
    def entries(self) -> list[str]:
        if self._entries is None:
            assert self.whole is not None
            return self.whole.tags
        return self._entries


def page_of(entries: list[str], page: Page) -> Listing:
    """A page from up to ``limit + 1`` entries: the extra one only says that more follow,
    so a ``Link`` is sent exactly when there is a next page."""
    if page.limit is not None and len(entries) > page.limit:
        entries = entries[: page.limit]
        return Listing(entries, entries[-1])
    return Listing(entries, None)


def probe(page: Page) -> int | None:
    """How many entries to read for ``page``: one more than it shows."""
    return None if page.limit is None else page.limit + 1


class ListingService:
    """The catalog and the referrers of a manifest."""

    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata

    async def catalog(self, page: Page, visible: Callable[[str], bool] | None = None) -> Listing:
        """A page of repository names; with ``visible``, only the names it accepts (the
        page is filled from further rows, so hidden names never shorten it)."""
        if page.limit == 0:
            return Listing([], None)
        if visible is None:
            names = await self._metadata.list_repositories(probe(page), page.last)
            return page_of(names, page)
        entries: list[str] = []
        batch = max(page.limit or 0, _FILTER_BATCH)
        last = page.last
        while True:
            rows = await self._metadata.list_repositories(batch, last)
            for name in rows:
                if visible(name):
                    entries.append(name)
                    if page.limit is not None and len(entries) > page.limit:
                        return page_of(entries, page)
            if len(rows) < batch:
                return Listing(entries, None)
            last = rows[-1]

    async def referrers(
        self, name: str, subject: Digest, artifact_type: str | None
    ) -> dict[str, Any]:
        """The OCI image index that lists the manifests whose subject is ``subject``."""
        records = await self._metadata.referrers(name, str(subject), artifact_type)
        manifests: list[dict[str, Any]] = []
        for record in records:
            descriptor: dict[str, Any] = {
                "mediaType": record.media_type,
                "digest": record.digest,
                "size": record.size,
            }
            if record.artifact_type:
                descriptor["artifactType"] = record.artifact_type
            if record.annotations:
                descriptor["annotations"] = record.annotations
            manifests.append(descriptor)
        return {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": manifests}
