"""``storage.gcs``: Google Cloud Storage with Distribution's keys and defaults.

Credentials: ``keyfile`` (a service-account key file) or ``credentials`` (the same key
inline, as a mapping), else Google's Application Default Credentials. The driver itself is
imported only when one is made: :mod:`dockyard.storage.gcs_driver`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import field_serializer, field_validator, model_validator

from dockyard.storage.driver import StorageDriver
from dockyard.storage.factory import DriverOptions, DriverParameters, register_driver

# GCS takes resumable-upload chunks in multiples of 256 KiB.
CHUNK_ALIGNMENT = 256 * 1024
# Where Google's own clients (and so Distribution) find an emulator: host[:port] or a URL.
EMULATOR_VARIABLE = "STORAGE_EMULATOR_HOST"


class GcsParameters(DriverParameters):
    """``storage.gcs``."""

    bucket: str
    keyfile: str | None = None
    credentials: dict[str, Any] | None = None
    rootdirectory: str = ""
    chunksize: int = 5 * 1024 * 1024

    @field_validator("bucket")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("chunksize")
    @classmethod
    def _aligned(cls, value: int) -> int:
        if value < CHUNK_ALIGNMENT or value % CHUNK_ALIGNMENT:
            raise ValueError(f"must be a positive multiple of {CHUNK_ALIGNMENT} (256 KiB)")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> GcsParameters:
        if self.keyfile and self.credentials:
            raise ValueError("give keyfile or credentials, not both")
        return self

    @field_serializer("credentials")
    def _masked(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """What `config check` prints: the key's identity, never its private key."""
        if value is None:
            return None
        return {k: ("***" if k == "private_key" else v) for k, v in value.items()}

    def service_account(self) -> dict[str, Any] | None:
        """The service-account key, read from ``keyfile`` or given as ``credentials``."""
        if self.credentials:
            return dict(self.credentials)
        if self.keyfile:
            with open(self.keyfile) as handle:
                info: dict[str, Any] = json.load(handle)
            return info
        return None


def emulator_endpoint() -> str | None:
    """``STORAGE_EMULATOR_HOST`` as a base URL, if set."""
    host = os.environ.get(EMULATOR_VARIABLE, "").strip().rstrip("/")
    if not host:
        return None
    return host if "://" in host else f"http://{host}"


@register_driver("gcs", GcsParameters)
def _create(parameters: GcsParameters, options: DriverOptions) -> StorageDriver:
    from dockyard.storage.gcs_driver import GcsDriver

    return GcsDriver(
        bucket=parameters.bucket,
        rootdirectory=parameters.rootdirectory,
        chunk_size=parameters.chunksize,
        credentials=parameters.service_account(),
        endpoint=emulator_endpoint(),
        redirect_expiry=options.redirect_expiry,
    )
