"""A client for remote OCI registries, shared by sync, the pull-through cache and
replication. See :class:`RemoteRegistry`."""

from .client import (
    ALL_MANIFEST_TYPES,
    BlobStream,
    FetchedManifest,
    ManifestInfo,
    RemoteRegistry,
    fallback_tag,
)
from .errors import RemoteError, RemoteUnavailable

__all__ = [
    "ALL_MANIFEST_TYPES",
    "BlobStream",
    "FetchedManifest",
    "ManifestInfo",
    "RemoteError",
    "RemoteRegistry",
    "RemoteUnavailable",
    "fallback_tag",
]
