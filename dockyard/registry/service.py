"""The registry service: the use cases the API calls, and the settings they share.

``Registry`` receives its use cases (:class:`~dockyard.registry.protocols.UseCases`); by
default the plain implementations over one metadata store and one storage driver. A
wrapper replaces one of them without any handler knowing (``UseCases.wrapped``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.registry.blobs import BlobReader
from dockyard.registry.listing import ListingService
from dockyard.registry.manifests import ManifestService
from dockyard.registry.protocols import (
    Blobs,
    Listings,
    Manifests,
    MirrorRouting,
    Tags,
    Uploads,
    Usage,
    UseCases,
)
from dockyard.registry.settings import RegistrySettings
from dockyard.registry.tags import TagService
from dockyard.registry.uploads import UploadService
from dockyard.registry.usage import UsageService
from dockyard.storage.driver import StorageDriver


def default_use_cases(
    metadata: MetadataStore, storage: StorageDriver, settings: RegistrySettings
) -> UseCases:
    return UseCases(
        uploads=UploadService(metadata, storage),
        blobs=BlobReader(metadata, storage),
        manifests=ManifestService(metadata, storage, settings),
        tags=TagService(metadata),
        listings=ListingService(metadata),
        usage=UsageService(metadata),
    )


class Registry:
    """What the API calls. ``metadata`` and ``storage`` are kept for the wiring (closing,
    background jobs, import); handlers go through the use cases."""

    def __init__(
        self,
        metadata: MetadataStore,
        storage: StorageDriver,
        settings: RegistrySettings,
        use_cases: UseCases | None = None,
    ) -> None:
        self.metadata = metadata
        self.storage = storage
        self.settings = settings
        self.use_cases = use_cases or default_use_cases(metadata, storage, settings)
        # The pull-through cache's upstreams, when ``proxy`` is configured.
        self.proxy: MirrorRouting | None = None
        #: what the wrappers started and ``close`` stops first (a heartbeat)
        self.on_close: list[Callable[[], Awaitable[None]]] = []

    @property
    def uploads(self) -> Uploads:
        return self.use_cases.uploads

    @property
    def blobs(self) -> Blobs:
        return self.use_cases.blobs

    @property
    def manifests(self) -> Manifests:
        return self.use_cases.manifests

    @property
    def tags(self) -> Tags:
        return self.use_cases.tags

    @property
    def listings(self) -> Listings:
        return self.use_cases.listings

    @property
    def usage(self) -> Usage:
        return self.use_cases.usage

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
        for stop in self.on_close:
            await stop()
        if self.proxy is not None:
            await self.proxy.close()
        await self.metadata.close()
        await self.storage.close()
