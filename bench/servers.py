"""Start and stop the programs under test: Dockyard, Distribution's docker-registry, nginx.

Each server runs on 127.0.0.1 on a port picked at start, in its own session (so it and
every child it forks can be stopped together), with stdout and stderr going to a log file.
Both registries get the same configuration file, apart from the store path and the port.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DOCKYARD = "dockyard"
DOCKYARD_METRICS = "dockyard-metrics"  # Dockyard with the debug server and metrics on
REGISTRY2 = "registry2"
SINK = "sink"  # bench/sink_registry.py: reads and discards pushes, the push ceiling
SINK_HASH = "sink-hash"  # the same sink computing every blob's sha256 (--hash)
TITLES = {
    DOCKYARD: "Dockyard",
    DOCKYARD_METRICS: "Dockyard+metrics",
    REGISTRY2: "registry:2",
    SINK_HASH: "hashing sink",
}


# Straight to 127.0.0.1, whatever http_proxy says.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(RuntimeError):
    """A server did not come up; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def registry_config(root: Path, port: int, storage: str = "") -> str:
    """The configuration both registries run with.

    It is the file shipped in the registry:2 image (blob descriptor cache in memory, the
    nosniff header) with deletes enabled, logging reduced to warnings and no access log, so
    that writing log lines is not part of what is measured. Dockyard ignores
    ``storage.cache`` with a warning: it keeps blob metadata in its database.

    ``storage``: a driver section (YAML under ``storage:``) in place of the filesystem at
    ``root``, e.g. an S3 bucket; Dockyard's SQLite database then lives in ``root``
    (registry:2 ignores the ``database`` key), and neither purges uploads.
    """
    driver = storage or f"  filesystem:\n    rootdirectory: {root}\n"
    database = f"database:\n  url: sqlite:///{root}/dockyard.db\n" if storage else ""
    if storage:
        # registry:2 2.8.2's upload purger panics walking a SeaweedFS bucket (an index out
        # of range in the S3 driver's Walk) and takes the server down mid-run: off for both.
        driver += "  maintenance:\n    uploadpurging:\n      enabled: false\n"
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: warn\n"
        "  accesslog:\n"
        "    disabled: true\n"
        "  fields:\n"
        "    service: registry\n"
        "storage:\n"
        "  cache:\n"
        "    blobdescriptor: inmemory\n"
        f"{driver}"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        f"  secret: {secrets.token_hex(16)}\n"
        "  headers:\n"
        "    X-Content-Type-Options: [nosniff]\n" + database
    )


@dataclass
class Server:
    """One running server process (the root of its process tree)."""

    name: str
    argv: list[str]
    url: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    log_offset: int = 0
    exits: list[int] = field(default_factory=list)
    probe_path: str = "/v2/"
    any_answer: bool = False  # readiness: any HTTP status, not only 200
    env: dict[str, str] | None = None  # None: this process's environment

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ServerError(f"{self.name} is not running")
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, ready_timeout: float = 60.0) -> None:
        """Start the process and wait until it answers HTTP (``200`` on ``probe_path``)."""
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )
        deadline = time.monotonic() + ready_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.exits.append(code)
                raise ServerError(
                    f"{self.name} exited with status {code} while starting:\n{self.log_tail()}"
                )
            try:
                with _DIRECT.open(self.url + self.probe_path, timeout=2) as answer:
                    if answer.status == 200:
                        return
                    last = f"HTTP {answer.status}"
            except urllib.error.HTTPError as exc:
                if self.any_answer:
                    return
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        self.stop()
        raise ServerError(
            f"{self.name} did not answer {self.probe_path} within {ready_timeout:.0f} s "
            f"({last}):\n{self.log_tail()}"
        )

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the server, then SIGKILL its whole session if it lingers."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                print(f"bench: {self.name} ignored SIGTERM for {grace:.0f} s, killing it")
        # The session id is the server's own pid (start_new_session): this reaches the
        # children it forked and nothing else.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        self.proc = None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def new_log_lines(self) -> list[str]:
        """Log lines written since the previous call."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset)
                data = log.read()
        except OSError:
            return []
        self.log_offset += len(data)
        return data.decode(errors="replace").splitlines()


def metrics_config(port: int) -> str:
    """What turns metrics on (appended to the ``http`` section): what the cost of metrics
    is measured with."""
    return f"  debug:\n    addr: 127.0.0.1:{port}\n    prometheus:\n      enabled: true\n"


def dockyard_server(
    root: Path,
    workdir: Path,
    log_path: Path,
    workers: int | None,
    storage: str = "",
    metrics: bool = False,
) -> Server:
    port = free_port()
    config = workdir / "dockyard.yml"
    text = registry_config(root, port, storage)
    if metrics:
        text += metrics_config(free_port())
    config.write_text(text)
    argv = [sys.executable, "-m", "dockyard", "serve", str(config)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    name = DOCKYARD_METRICS if metrics else DOCKYARD
    return Server(name, argv, f"http://127.0.0.1:{port}", log_path)


def registry2_server(
    root: Path, workdir: Path, log_path: Path, binary: str, storage: str = ""
) -> Server:
    port = free_port()
    config = workdir / "registry2.yml"
    config.write_text(registry_config(root, port, storage))
    # Debian's 2.8.2 panics on S3 storage when AWS_CA_BUNDLE is set. Distribution reads
    # every REGISTRY_* variable as a configuration override, so podman's
    # REGISTRY_AUTH_FILE (in many users' environments) would break the file's `auth`.
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "AWS_CA_BUNDLE" and not k.startswith("REGISTRY_")
    }
    url = f"http://127.0.0.1:{port}"
    return Server(REGISTRY2, [binary, "serve", str(config)], url, log_path, env=env)


def sink_server(log_path: Path, hashing: bool = False) -> Server:
    """The sink registry (bench/sink_registry.py): what a client's push costs the client
    (``hashing``: and the sha256 of every blob, which a verifying registry must spend)."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.sink_registry", "--port", str(port)]
    if hashing:
        argv.append("--hash")
    return Server(SINK_HASH if hashing else SINK, argv, f"http://127.0.0.1:{port}", log_path)


def nginx_server(docroot: Path, workdir: Path, binary: str) -> Server:
    """nginx serving ``docroot`` with sendfile, as regbench's --physical expects."""
    port = free_port()
    prefix = workdir / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    # Workers of an nginx started by root switch to `nobody`, who cannot read a private
    # temporary directory; keep them as root then.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp_paths = "".join(
        f"  {kind}_temp_path {prefix}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}"
        "worker_processes auto;\n"
        "daemon off;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "  access_log off;\n"
        "  sendfile on;\n"
        "  tcp_nopush on;\n"
        "  keepalive_requests 1000000;\n"
        "  default_type application/octet-stream;\n"
        f"{temp_paths}"
        "  server {\n"
        f"    listen 127.0.0.1:{port};\n"
        f"    root {docroot};\n"
        "  }\n"
        "}\n"
    )
    argv = [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    url = f"http://127.0.0.1:{port}"
    return Server("nginx", argv, url, prefix / "stdout.log", probe_path="/", any_answer=True)
