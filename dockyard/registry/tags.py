"""A repository's tags: its tag list, page by page, and deleting one tag.

Tags move with manifest pushes (:mod:`dockyard.registry.manifests`); this is the rest.
"""

from __future__ import annotations

from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.names import validate_tag
from dockyard.oci.pagination import Page
from dockyard.registry.listing import Listing, page_of, probe


def _name_unknown(name: str) -> errors.RegistryError:
    return errors.RegistryError(errors.NAME_UNKNOWN, detail={"name": name})


class TagService:
    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata

    async def list(self, name: str, page: Page) -> Listing:
        if page.limit == 0:
            if not await self._metadata.repository_exists(name):
                raise _name_unknown(name)
            return Listing([], None)
        if page.limit is None and page.last is None:
            whole = await self._metadata.tag_list(name)
            if whole is None:
                raise _name_unknown(name)
            return Listing(None, None, whole)
        found = await self._metadata.list_tags(name, probe(page), page.last)
        if found is None:
            raise _name_unknown(name)
        return page_of(found, page)

    async def delete(self, name: str, tag: str) -> None:
        """Delete the tag only; the manifest it pointed at stays."""
        if not await self._metadata.delete_tag(name, validate_tag(tag)):
            raise errors.RegistryError(
                errors.MANIFEST_UNKNOWN, detail={"name": name, "reference": tag}
            )
