"""A real ACME server for the tests: Debian's ``pebble`` (Let's Encrypt's test CA).

Started on 127.0.0.1 with its own HTTPS certificate (made here) and a configuration of the
test's making: the ports it validates HTTP-01 and TLS-ALPN-01 answers on (the registry's
``http.tls.letsencrypt.httpaddr`` and TLS port) and the validity of the certificates it
issues (short, to force renewals). No random sleeps, no rejected nonces, no reuse of
validations, so a run is deterministic. Each start makes a new root CA:
:meth:`Pebble.root_pem` fetches it.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.clients import Daemon
from tests.e2e.server import free_port
from tests.security.pki import issue, new_key

START_TIMEOUT = 15.0


@dataclass
class Pebble:
    workdir: Path
    http_port: int  # where it validates HTTP-01 answers
    tls_port: int  # where it validates TLS-ALPN-01 answers
    validity: int  # seconds
    port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    daemon: Daemon | None = None

    @property
    def directory_url(self) -> str:
        return f"https://localhost:{self.port}/dir"

    @property
    def https_ca(self) -> Path:
        """The CA of pebble's own HTTPS endpoint (give it to the ACME client)."""
        return self.workdir / "https-ca.pem"

    @property
    def log_path(self) -> Path:
        return self.workdir / "pebble.log"

    def start(self) -> None:
        binary = shutil.which("pebble", path="/usr/bin:" + os.environ["PATH"])
        if binary is None:
            raise RuntimeError("pebble is not installed: run scripts/install-test-deps.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        https = issue("localhost", new_key(), server_names=["localhost", "127.0.0.1"])
        cert, key = https.write(self.workdir, "https")
        shutil.copy(cert, self.https_ca)
        config = self.workdir / "pebble.json"
        config.write_text(
            json.dumps(
                {
                    "pebble": {
                        "listenAddress": f"127.0.0.1:{self.port}",
                        "managementListenAddress": f"127.0.0.1:{self.management_port}",
                        "certificate": str(cert),
                        "privateKey": str(key),
                        "httpPort": self.http_port,
                        "tlsPort": self.tls_port,
                        "ocspResponderURL": "",
                        "externalAccountBindingRequired": False,
                        "certificateValidityPeriod": self.validity,
                    }
                }
            )
        )
        env = {
            "PATH": os.environ["PATH"],
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
            "PEBBLE_AUTHZREUSE": "0",
        }
        argv = [binary, "-config", str(config), "-strict=false"]
        self.daemon = Daemon("pebble", argv, env, self.log_path)
        self.daemon.start(self._ready, timeout=START_TIMEOUT)

    def _ready(self) -> bool:
        try:
            self._get(self.directory_url)
        except OSError:
            return False
        return True

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.https_ca))
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return bytes(response.read())

    def root_pem(self) -> bytes:
        """The root that signs the certificates this pebble issues."""
        return self._get(f"https://localhost:{self.management_port}/roots/0")

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
