"""Storage drivers by name. Each driver module registers itself and its parameters (the
keys of its ``storage.<name>`` section) with :func:`register_driver`; the configuration
and the wiring ask here, and name no driver themselves.

:data:`DRIVER_MODULES` says which module holds each driver, so that knowing the names
imports no driver: a module is imported when its driver is configured (to validate its
parameters) or created. A driver module keeps heavy dependencies (an object-store SDK)
out of its own import, inside its driver class or in a module of its own, so that
checking a configuration stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Final, TypeVar

from pydantic import BaseModel, ConfigDict

from dockyard.storage.driver import StorageDriver

DRIVER_MODULES: Final[Mapping[str, str]] = {
    "azure": "dockyard.storage.azure",
    "filesystem": "dockyard.storage.filesystem",
    "gcs": "dockyard.storage.gcs",
    "inmemory": "dockyard.storage.inmemory",
    "s3": "dockyard.storage.s3",
}
# Drivers Distribution ships that Dockyard does not implement yet: a configuration naming
# one is refused, never served from other storage than it asks for.
NOT_IMPLEMENTED: Final = frozenset({"swift", "oss"})
# What a configuration built in code (no file, no storage section) stores into.
FALLBACK_DRIVER: Final = "inmemory"


class DriverParameters(BaseModel):
    """A driver's ``storage.<name>`` section; a driver's subclass adds its keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The data lives inside the serving process: one worker, nothing shared with another.
    in_process: ClassVar[bool] = False
    #: The key (inside the driver's section) of the local directory that holds the store.
    local_root_key: ClassVar[str | None] = None

    def local_root(self) -> str | None:
        """The local directory that holds the store, if there is one: ``serve`` checks
        that it is writable, and the embedded database lives there by default."""
        return None

    def preload(self) -> None:
        """Load what this driver's SDK needs, in the parent before it forks the workers,
        so that those pages are shared rather than built again in every worker."""


@dataclass(frozen=True)
class DriverOptions:
    """What the wiring tells every driver beside its own section.

    ``redirect_expiry``: how long a presigned URL that ``redirect_url`` returns stays
    valid; None when redirects are off (``storage.redirect.disable``), and the driver
    streams everything through Dockyard.
    """

    redirect_expiry: timedelta | None = None


_Parameters = TypeVar("_Parameters", bound=DriverParameters)
_Make = TypeVar("_Make", bound=Callable[..., StorageDriver])


@dataclass(frozen=True)
class _Registration:
    parameters: type[DriverParameters]
    make: Callable[[Any, DriverOptions], StorageDriver]


_registered: dict[str, _Registration] = {}


class UnknownDriverError(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no storage driver {name!r} (drivers: {', '.join(driver_names())})")
        self.name = name


def register_driver(name: str, parameters: type[_Parameters]) -> Callable[[_Make], _Make]:
    """Decorate the function that makes driver ``name`` from its ``parameters`` and the
    :class:`DriverOptions`."""
    if name not in DRIVER_MODULES:
        raise UnknownDriverError(name)

    def register(make: _Make) -> _Make:
        _registered[name] = _Registration(parameters, make)
        return make

    return register


def driver_names() -> tuple[str, ...]:
    """The drivers Dockyard implements, sorted."""
    return tuple(sorted(DRIVER_MODULES))


def _registration(name: str) -> _Registration:
    if name not in DRIVER_MODULES:
        raise UnknownDriverError(name)
    if name not in _registered:
        importlib.import_module(DRIVER_MODULES[name])
    return _registered[name]


def parameters_model(name: str) -> type[DriverParameters]:
    """The model of driver ``name``'s section (importing its module, not its SDK)."""
    return _registration(name).parameters


def create_driver(
    name: str, parameters: DriverParameters, options: DriverOptions | None = None
) -> StorageDriver:
    """A new driver ``name`` with ``parameters`` (an instance of its model)."""
    registration = _registration(name)
    if not isinstance(parameters, registration.parameters):
        kind = type(parameters).__name__
        raise TypeError(f"the {name} driver takes {registration.parameters.__name__}, not {kind}")
    return registration.make(parameters, options or DriverOptions())
