"""Wiring the storage driver from the ``storage`` section, apart from the server's wiring
(:mod:`dockyard.app`) so that commands that only need storage (garbage-collect, import,
export, du, fsck) do not import the HTTP server to get it."""

from __future__ import annotations

from dockyard.config import Config
from dockyard.storage.driver import StorageDriver
from dockyard.storage.factory import DriverOptions, create_driver


def make_storage(config: Config) -> StorageDriver:
    options = DriverOptions(redirect_expiry=config.storage.redirect.expiry_or_none)
    return create_driver(config.storage.driver, config.storage.parameters, options)
