"""The metadata store: one facade over the queries of each aggregate.

:class:`MetadataStore` is what the rest of Dockyard uses. Its transactions and shared
helpers are in :mod:`~dockyard.metadata.transactions`; the queries per aggregate in
``repositories``, ``blob_links``, ``manifest_queries``, ``tag_queries``,
``upload_queries`` and ``outbox``; whole tag lists and their cache in
:mod:`~dockyard.metadata.tag_lists`."""

from __future__ import annotations

from dockyard.metadata.blob_links import BlobQueries
from dockyard.metadata.gc_queries import CollectorQueries
from dockyard.metadata.gc_recovery import GcRecoveryQueries
from dockyard.metadata.integrity_queries import IntegrityQueries
from dockyard.metadata.manifest_queries import ManifestQueries
from dockyard.metadata.outbox import OutboxQueries
from dockyard.metadata.pending_blobs import PendingBlobQueries
from dockyard.metadata.push_sessions import PushSessionQueries
from dockyard.metadata.replication_queue import ReplicationQueries
from dockyard.metadata.repositories import RepositoryQueries
from dockyard.metadata.retention_queries import RetentionQueries
from dockyard.metadata.tag_lists import TAG_CACHE_CHARS, TagList, TagListCache
from dockyard.metadata.tag_queries import TagQueries
from dockyard.metadata.transactions import SERVED_WRITE_KEY
from dockyard.metadata.upload_queries import UploadQueries
from dockyard.metadata.usage_queries import UsageQueries

__all__ = ["SERVED_WRITE_KEY", "TAG_CACHE_CHARS", "MetadataStore", "TagList", "TagListCache"]


class MetadataStore(
    RepositoryQueries,
    BlobQueries,
    RetentionQueries,
    CollectorQueries,
    GcRecoveryQueries,
    ManifestQueries,
    TagQueries,
    UploadQueries,
    UsageQueries,
    IntegrityQueries,
    OutboxQueries,
    ReplicationQueries,
    PushSessionQueries,
    PendingBlobQueries,
):
    """Repositories, blobs, manifests, tags, referrers, upload sessions, the
    notification outbox, the replication queue, and what the garbage collector asks."""
