"""What the metadata layer returns: plain frozen records, no SQL types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    payload: bytes


@dataclass(frozen=True)
class ReferrerRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ManifestToStore:
    """A validated manifest ready to commit, with everything it references."""

    digest: str
    media_type: str
    artifact_type: str | None
    payload: bytes
    subject_digest: str | None
    annotations: dict[str, str]
    blob_digests: tuple[str, ...]
    child_digests: tuple[str, ...]


@dataclass(frozen=True)
class UploadProgress:
    """How far an upload got: the bytes it holds, its storage driver's state for them
    (opaque), and the saved sha256 state (oci/resumable.py) with the bytes it covers."""

    size: int = 0
    driver_state: bytes | None = None
    hash_offset: int | None = None
    hash_state: bytes | None = None


@dataclass(frozen=True)
class UploadRecord:
    id: str
    repository: str
    started_at: datetime
    progress: UploadProgress = field(default_factory=UploadProgress)


class MissingReferencesError(Exception):
    """A manifest references blobs or manifests that its repository does not hold."""

    def __init__(self, blobs: list[str], manifests: list[str]) -> None:
        super().__init__(f"missing blobs {blobs}, missing manifests {manifests}")
        self.blobs = blobs
        self.manifests = manifests
