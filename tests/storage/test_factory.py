"""Drivers are found by name through the factory, which the configuration and the wiring
ask; naming the drivers imports none of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.storage.azure import AzureParameters
from dockyard.storage.factory import (
    DRIVER_MODULES,
    NOT_IMPLEMENTED,
    DriverParameters,
    UnknownDriverError,
    create_driver,
    driver_names,
    parameters_model,
    register_driver,
)
from dockyard.storage.filesystem import FilesystemDriver, FilesystemParameters
from dockyard.storage.gcs import GcsParameters
from dockyard.storage.inmemory import InMemoryDriver, InMemoryParameters
from dockyard.storage.s3 import S3Parameters


def test_every_driver_module_registers_its_driver_and_parameters(tmp_path: Path) -> None:
    names = ("azure", "filesystem", "gcs", "inmemory", "s3")
    assert driver_names() == tuple(sorted(DRIVER_MODULES)) == names
    assert parameters_model("s3") is S3Parameters
    assert parameters_model("filesystem") is FilesystemParameters
    assert parameters_model("inmemory") is InMemoryParameters
    assert parameters_model("azure") is AzureParameters
    assert parameters_model("gcs") is GcsParameters
    driver = create_driver("filesystem", FilesystemParameters(rootdirectory=str(tmp_path)))
    assert isinstance(driver, FilesystemDriver) and driver.root == tmp_path
    assert isinstance(create_driver("inmemory", InMemoryParameters()), InMemoryDriver)


def test_what_the_parameters_say_about_the_driver(tmp_path: Path) -> None:
    filesystem = FilesystemParameters(rootdirectory=str(tmp_path))
    assert filesystem.local_root() == str(tmp_path) and not filesystem.in_process
    assert InMemoryParameters().local_root() is None and InMemoryParameters.in_process


def test_unknown_and_unimplemented_drivers_are_refused() -> None:
    for name in ("floppy", *sorted(NOT_IMPLEMENTED)):
        with pytest.raises(UnknownDriverError, match="azure, filesystem, gcs, inmemory, s3"):
            parameters_model(name)
        with pytest.raises(UnknownDriverError):
            create_driver(name, DriverParameters())
    assert NOT_IMPLEMENTED.isdisjoint(DRIVER_MODULES)
    with pytest.raises(UnknownDriverError):
        register_driver("floppy", DriverParameters)


def test_a_driver_takes_only_its_own_parameters() -> None:
    with pytest.raises(TypeError, match="FilesystemParameters"):
        create_driver("filesystem", InMemoryParameters())


def test_the_configuration_imports_only_the_driver_it_names(tmp_path: Path) -> None:
    """Validating ``storage.inmemory`` loads that driver's module and no other (an object
    store's SDK is imported only when its driver is configured)."""
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage:\n  inmemory: {}\n")
    code = (
        "import sys\n"
        "import dockyard.config\n"
        "assert not [m for m in sys.modules if m.startswith('dockyard.storage.') and "
        "m.rsplit('.', 1)[1] in ('filesystem', 'inmemory')], 'imported before any load'\n"
        f"loaded = dockyard.config.load_config(__import__('pathlib').Path({str(config)!r}))\n"
        "assert loaded.config.storage.driver == 'inmemory'\n"
        "assert 'dockyard.storage.inmemory' in sys.modules\n"
        "assert 'dockyard.storage.filesystem' not in sys.modules\n"
        "assert not [m for m in sys.modules if m.startswith(('azure', 'google'))]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
