"""The metadata store: one facade over the queries of each aggregate.

:class:`MetadataStore` is what the rest of Dockyard uses. Its transactions and shared
helpers are in :mod:`~dockyard.metadata.transactions`; the queries per aggregate in
``repositories``, ``blob_links``, ``manifest_queries``, ``tag_queries`` and
``upload_queries``; whole tag lists and their cache in :mod:`~dockyard.metadata.tag_lists`."""

from __future__ import annotations

from dockyard.metadata.blob_links import BlobQueries
from dockyard.metadata.gc_queries import CollectorQueries
from dockyard.metadata.manifest_queries import ManifestQueries
from dockyard.metadata.repositories import RepositoryQueries
from dockyard.metadata.tag_lists import TAG_CACHE_CHARS, TagList, TagListCache
from dockyard.metadata.tag_queries import TagQueries
from dockyard.metadata.transactions import SERVED_WRITE_KEY
from dockyard.metadata.upload_queries import UploadQueries

__all__ = ["SERVED_WRITE_KEY", "TAG_CACHE_CHARS", "MetadataStore", "TagList", "TagListCache"]


class MetadataStore(
    RepositoryQueries, BlobQueries, CollectorQueries, ManifestQueries, TagQueries, UploadQueries
):
    """Repositories, blobs, manifests, tags, referrers, upload sessions, and what the
    garbage collector asks."""
