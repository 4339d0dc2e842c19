"""Pushing, pulling and deleting manifests, with content negotiation by ``Accept``."""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass

from dockyard.metadata.records import ManifestRecord, ManifestToStore, MissingReferencesError
from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors, mediatypes
from dockyard.oci.digest import Digest, is_digest
from dockyard.oci.manifest import ParsedManifest, parse_manifest
from dockyard.oci.names import is_valid_tag, validate_tag
from dockyard.registry.settings import RegistrySettings
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver
from dockyard.storage.local import LocalFiles

log = logging.getLogger("dockyard.manifests")


@dataclass(frozen=True)
class PushedManifest:
    digest: Digest
    subject: Digest | None


def _manifest_unknown(name: str, reference: str) -> errors.RegistryError:
    return errors.RegistryError(
        errors.MANIFEST_UNKNOWN, detail={"name": name, "reference": reference}
    )


def _references_unknown(exc: MissingReferencesError) -> errors.RegistryError:
    return errors.RegistryError(
        errors.MANIFEST_BLOB_UNKNOWN,
        "manifest references "
        + ", ".join([f"blob {d}" for d in exc.blobs] + [f"manifest {d}" for d in exc.manifests])
        + " unknown to this repository",
        detail={"blobs": exc.blobs, "manifests": exc.manifests},
    )


def parse_reference(reference: str) -> tuple[str, bool]:
    """A manifest reference as (canonical text, is a digest); validates either form."""
    if is_digest(reference):
        return str(Digest.parse(reference)), True
    return validate_tag(reference), False


class ManifestService:
    def __init__(
        self, metadata: MetadataStore, storage: StorageDriver, settings: RegistrySettings
    ) -> None:
        self._metadata = metadata
        self._storage = storage
        self._settings = settings
        self._local = storage.capability(LocalFiles)

    async def _stored_size(self, path: str) -> int | None:
        """The size of the file at ``path``, if there is one. A local file is looked at
        inline: one stat of a cached entry costs less than a thread hop to make it."""
        if self._local is None:
            return await self._storage.stat(path)
        try:
            info = os.stat(self._local.local_path(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    async def push(
        self, name: str, reference: str, payload: bytes, content_type: str | None
    ) -> PushedManifest:
        reference, by_digest = parse_reference(reference)
        parsed = parse_manifest(
            payload,
            content_type,
            self._settings.manifest_max_bytes,
            self._settings.url_policy.allows,
        )
        if by_digest:
            claimed = Digest.parse(reference)
            digest = Digest.of(payload, claimed.algorithm)
            if digest != claimed:
                raise errors.RegistryError(
                    errors.DIGEST_INVALID,
                    f"manifest digest is {digest}, not {claimed}",
                    detail={"digest": reference},
                )
        else:
            digest = Digest.of(payload)
        record = manifest_to_store(digest, parsed, payload)
        # Bytes first, as for blobs: the database row is what makes the manifest visible.
        if await self._stored_size(paths.blob_data(digest)) != len(payload):
            await self._storage.put_content(paths.blob_data(digest), payload)
        try:
            collected = await self._metadata.put_manifest(
                name, record, None if by_digest else reference
            )
        except Exception as exc:
            await self._unclaimed(digest, len(payload))
            if isinstance(exc, MissingReferencesError):
                raise _references_unknown(exc) from None
            raise
        if collected:  # a collector took the copy written above for garbage: a row names it now
            await self._storage.put_content(paths.blob_data(digest), payload)
        return PushedManifest(digest, parsed.subject.digest if parsed.subject else None)

    async def _unclaimed(self, digest: Digest, size: int) -> None:
        """The push was refused or failed: no row names the bytes it wrote, unless another
        push of them commits. Queued, the collector deletes them once that is sure."""
        try:
            await self._metadata.queue_unclaimed_manifest_bytes(str(digest), size)
        except Exception:  # the push's own error is the one to answer with
            log.exception("manifest %s: bytes of a failed push not queued for collection", digest)

    async def get(
        self, name: str, reference: str, accept: set[str] | None, method: str = "GET"
    ) -> ManifestRecord:
        """The manifest at ``reference``, negotiated against the client's ``Accept``."""
        if not is_digest(reference) and not is_valid_tag(reference):
            # No tag can have this name, so nothing is there: 404, as registry:2 answers.
            raise _manifest_unknown(name, reference)
        canonical, by_digest = parse_reference(reference)
        record = await self._metadata.get_manifest(name, canonical, by_digest)
        if record is None:
            raise _manifest_unknown(name, reference)
        if accept is None or record.media_type in accept or by_digest:
            return record
        if record.media_type in mediatypes.INDEXES:
            # As registry:2 does for clients that do not understand lists: the
            # linux/amd64 image, when the client accepts its type.
            fallback = await self._default_platform(name, record, accept)
            if fallback is not None:
                return fallback
        raise errors.RegistryError(
            errors.MANIFEST_UNKNOWN,
            f"manifest is {record.media_type}, which the request's Accept header excludes",
            detail={"name": name, "reference": reference, "mediaType": record.media_type},
        )

    async def _default_platform(
        self, name: str, index: ManifestRecord, accept: set[str]
    ) -> ManifestRecord | None:
        for child in json.loads(index.payload).get("manifests", []):
            platform = child.get("platform") or {}
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                found = await self._metadata.get_manifest(name, child["digest"], True)
                if found is not None and found.media_type in accept:
                    return found
        return None

    async def delete(self, name: str, digest: str) -> None:
        """Delete the manifest at ``digest`` and every tag that points at it."""
        canonical = str(Digest.parse(digest))
        if not await self._metadata.delete_manifest(name, canonical):
            raise _manifest_unknown(name, digest)


def manifest_to_store(digest: Digest, parsed: ParsedManifest, payload: bytes) -> ManifestToStore:
    return ManifestToStore(
        digest=str(digest),
        media_type=parsed.media_type,
        artifact_type=parsed.referrer_artifact_type(),
        payload=payload,
        subject_digest=str(parsed.subject.digest) if parsed.subject else None,
        annotations=dict(parsed.annotations),
        blob_digests=tuple(str(d.digest) for d in parsed.blob_references()),
        child_digests=tuple(str(d.digest) for d in parsed.manifests),
    )
