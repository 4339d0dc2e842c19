"""The registry service: one object that the API calls for every use case."""

from __future__ import annotations

from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.registry.blobs import BlobReader
from dockyard.registry.listing import ListingService
from dockyard.registry.manifests import ManifestService
from dockyard.registry.settings import RegistrySettings
from dockyard.registry.uploads import UploadService
from dockyard.storage.driver import StorageDriver


class Registry:
    def __init__(
        self, metadata: MetadataStore, storage: StorageDriver, settings: RegistrySettings
    ) -> None:
        self.metadata = metadata
        self.storage = storage
        self.settings = settings
        self.blobs = BlobReader(metadata, storage)
        self.uploads = UploadService(metadata, storage)
        self.manifests = ManifestService(metadata, storage, settings)
        self.listing = ListingService(metadata)

    def check_writable(self) -> None:
        if self.settings.read_only:
            raise errors.RegistryError(
                errors.UNSUPPORTED,
                "the registry is in read-only mode (storage.maintenance.readonly)",
            )

    def check_delete_enabled(self) -> None:
        self.check_writable()
        if not self.settings.delete_enabled:
            raise errors.RegistryError(
                errors.UNSUPPORTED, "deletes are disabled (storage.delete.enabled is false)"
            )

    async def close(self) -> None:
        await self.metadata.close()
        await self.storage.close()
