"""What the registry service needs to know of the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.oci.manifest import DEFAULT_MAX_MANIFEST_BYTES, UrlPolicy


@dataclass(frozen=True)
class RegistrySettings:
    delete_enabled: bool = True
    read_only: bool = False
    manifest_max_bytes: int = DEFAULT_MAX_MANIFEST_BYTES
    url_policy: UrlPolicy = field(default_factory=UrlPolicy)
    catalog_max_entries: int = 1000
