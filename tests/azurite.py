"""A real Azurite (Microsoft's Azure Blob Storage emulator) for the tests: one per session.

Azurite comes from npm (package ``azurite``, pinned below). The first session installs it
into ``.test-tools/azurite`` inside the repository (gitignored), under a file lock so that
pytest-xdist workers install it once; later sessions find it there. The blob service runs
on 127.0.0.1 at a free port, in memory, with telemetry off (it is on by default) and
without the API-version check (azure-storage-blob sends versions newer than Azurite knows).
Under pytest-xdist each worker starts its own server. Each test makes its own container.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.emulators import start_on_free_port, stop

AZURITE_VERSION = "3.35.0"
TOOLS = Path(__file__).resolve().parent.parent / ".test-tools"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public: it is in Azurite's documentation).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
READY_SECONDS = 30.0


class AzuriteError(RuntimeError):
    """Azurite could not be installed or started; the message says why."""


def install_azurite() -> Path:
    """The ``azurite-blob`` executable, installed from npm into the repository if missing."""
    home = TOOLS / "azurite"
    executable = home / "node_modules" / ".bin" / "azurite-blob"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if executable.exists():
            return executable
        npm = shutil.which("npm")
        if npm is None:
            raise AzuriteError("npm is missing: install the Debian package npm")
        # npm refuses --prefix in a directory without a package.json.
        (home / "package.json").write_text(json.dumps({"private": True}))
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(home),
             f"azurite@{AZURITE_VERSION}"],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        if done.returncode != 0 or not executable.exists():
            raise AzuriteError(f"npm install azurite failed:\n{done.stdout}{done.stderr}")
    return executable


@dataclass
class AzuriteServer:
    """A running Azurite blob service we started; ``stop()`` ends it."""

    process: subprocess.Popen[bytes]
    port: int
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def endpoint(self) -> str:
        """The account's blob endpoint (what Distribution's ``serviceurl`` names)."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    @classmethod
    def start(cls, location: Path | None = None) -> AzuriteServer:
        """In memory, or with ``location`` on disk (for blobs larger than memory)."""
        executable = install_azurite()
        keep = (
            ["--location", str(location)]
            if location is not None
            else ["--inMemoryPersistence", "--extentMemoryLimit", "1024"]
        )
        process, port = start_on_free_port(
            lambda port: [str(executable), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                          *keep, "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
            lambda port: f"http://127.0.0.1:{port}/",
            READY_SECONDS,
        )  # fmt: skip
        return cls(process, port)

    def stop(self) -> None:
        stop(self.process)

    def new_container_name(self) -> str:
        """A container name no test used before (3 to 63 characters)."""
        return f"test-{os.getpid()}-{next(self._names)}"

    def create_container(self) -> str:
        """Make a new, empty container; its name."""
        from azure.storage.blob import BlobServiceClient

        name = self.new_container_name()
        with BlobServiceClient.from_connection_string(self.connection_string) as service:
            service.create_container(name)
        return name


@contextlib.contextmanager
def running_azurite(location: Path | None = None) -> Iterator[AzuriteServer]:
    server = AzuriteServer.start(location)
    try:
        yield server
    finally:
        server.stop()
