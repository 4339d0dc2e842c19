"""``storage.azure``: Azure Blob Storage with Distribution's keys and defaults.

The driver itself (and the Azure SDK) is imported only when one is made:
:mod:`dockyard.storage.azure_driver`.
"""

from __future__ import annotations

from pydantic import field_serializer, field_validator

from dockyard.storage.driver import StorageDriver
from dockyard.storage.factory import DriverOptions, DriverParameters, register_driver


class AzureParameters(DriverParameters):
    """``storage.azure``: the account, its key, the container; ``serviceurl`` (or
    ``realm``) says where the blob service is."""

    accountname: str
    accountkey: str
    container: str
    realm: str = "core.windows.net"
    serviceurl: str | None = None
    rootdirectory: str = ""

    @field_validator("accountname", "accountkey", "container", "realm")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("container")
    @classmethod
    def _container_name(cls, value: str) -> str:
        if not 3 <= len(value) <= 63:
            raise ValueError("a container name has 3 to 63 characters")
        return value

    @field_serializer("accountkey")
    def _masked(self, value: str) -> str:
        return "***"  # what `config check` prints

    def service_url(self) -> str:
        """The account's blob endpoint: ``serviceurl``, else ``https://<account>.blob.<realm>``."""
        if self.serviceurl:
            return self.serviceurl.rstrip("/")
        return f"https://{self.accountname}.blob.{self.realm}"


@register_driver("azure", AzureParameters)
def _create(parameters: AzureParameters, options: DriverOptions) -> StorageDriver:
    from dockyard.storage.azure_driver import AzureDriver

    return AzureDriver(
        account_name=parameters.accountname,
        account_key=parameters.accountkey,
        container=parameters.container,
        service_url=parameters.service_url(),
        rootdirectory=parameters.rootdirectory,
        redirect_expiry=options.redirect_expiry,
    )
