"""A real nginx (Debian's) in front of a live registry, configured with docs/nginx/dockyard.conf."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.clients import find_binary
from tests.e2e.server import REPO_ROOT, free_port

from .pki import Pki

DOC_CONFIG = REPO_ROOT / "docs" / "nginx" / "dockyard.conf"


def site_config(
    text: str, *, port: int, upstream: int | Sequence[int], cert: Path, key: Path
) -> str:
    """The documented server block with this test's port, upstreams and certificate.

    Every placeholder must be found exactly once, so the test fails if the document drifts
    away from what it runs."""
    ports = [upstream] if isinstance(upstream, int) else list(upstream)
    servers = "\n    ".join(f"server 127.0.0.1:{p};" for p in ports)
    replacements = [
        ("    listen 443 ssl http2;\n", f"    listen 127.0.0.1:{port} ssl http2;\n"),
        ("    listen [::]:443 ssl http2;\n", ""),
        ("server 127.0.0.1:5000;", servers),
        ("/etc/nginx/tls/registry.example.com.crt", str(cert)),
        ("/etc/nginx/tls/registry.example.com.key", str(key)),
    ]
    for old, new in replacements:
        assert text.count(old) == 1, f"{DOC_CONFIG} no longer has {old.strip()!r}"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    workdir: Path
    upstream: int | Sequence[int]
    pki: Pki
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def body_temp(self) -> Path:
        return self.workdir / "client_body_temp"

    def start(self) -> None:
        binary = find_binary("nginx")
        self.workdir.mkdir(parents=True, exist_ok=True)
        site = self.workdir / "dockyard.conf"
        site.write_text(
            site_config(
                DOC_CONFIG.read_text(),
                port=self.port,
                upstream=self.upstream,
                cert=self.pki.server_cert,
                key=self.pki.server_key,
            )
        )
        temp = "\n".join(
            f"    {name}_temp_path {self.workdir / (name + '_temp')};"
            for name in ("proxy", "fastcgi", "uwsgi", "scgi")
        )
        main = self.workdir / "nginx.conf"
        main.write_text(
            "daemon off;\n"
            "worker_processes 1;\n"
            f"pid {self.workdir / 'nginx.pid'};\n"
            f"error_log {self.workdir / 'error.log'} info;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {self.workdir / 'access.log'};\n"
            f"    client_body_temp_path {self.body_temp};\n"
            f"{temp}\n"
            f"    include {site};\n"
            "}\n"
        )
        with (self.workdir / "stdout.log").open("ab") as log:
            argv = [binary, "-p", str(self.workdir), "-c", str(main)]
            argv += ["-e", str(self.workdir / "error.log")]
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port}:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGQUIT)  # graceful: the master stops its workers
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.workdir / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no nginx log)"
        return "\n".join(text.splitlines()[-lines:])

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
