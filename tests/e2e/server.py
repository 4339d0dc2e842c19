"""The registry under test, run as a real subprocess on 127.0.0.1.

``DOCKYARD_E2E_SERVER`` picks the implementation:

* ``dockyard`` (default): ``python -m dockyard serve CONFIG``
* ``registry2``: ``docker-registry serve CONFIG`` (Debian's CNCF Distribution 2.8.2, the code of
  the ``registry:2`` image), the reference the suite is validated against.

Both read the same Distribution-format config file.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar
from urllib.parse import urlsplit

SERVER_KINDS = ("dockyard", "registry2")
SERVER_KIND = os.environ.get("DOCKYARD_E2E_SERVER", "dockyard").strip() or "dockyard"
REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = float(os.environ.get("DOCKYARD_E2E_START_TIMEOUT", "30"))
STOP_TIMEOUT = 10.0
OCTET_STREAM = "application/octet-stream"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, *, store: Path, port: int, extra: str = "", storage: str = "") -> Path:
    """A Distribution-format config.yml (the same file works for both servers).

    ``storage``: the driver's section (YAML, indented under ``storage:``) in place of the
    filesystem under ``store``; Dockyard's database then lives in ``store`` (registry:2
    ignores the ``database`` key)."""
    driver = storage or f"  filesystem:\n    rootdirectory: {store}\n"
    database = f"database:\n  url: sqlite:///{store}/dockyard.db\n" if storage else ""
    path.write_text(
        "version: 0.1\n"
        "log:\n"
        "  level: info\n"
        "storage:\n"
        f"{driver}"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n" + database + extra
    )
    return path


def server_command(kind: str, config: Path) -> list[str]:
    if kind == "dockyard":
        return [sys.executable, "-m", "dockyard", "serve", str(config)]
    if kind == "registry2":
        binary = shutil.which("docker-registry", path="/usr/bin:/usr/sbin:" + os.environ["PATH"])
        if binary is None:
            raise ServerError(
                "docker-registry is not installed (Debian package docker-registry): "
                "run scripts/install-test-deps.sh"
            )
        return [binary, "serve", str(config)]
    raise ServerError(f"DOCKYARD_E2E_SERVER={kind!r}: expected one of {SERVER_KINDS}")


class ServerError(RuntimeError):
    pass


def _process_stat(pid: int | str) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process from /proc, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
    state, ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
    return state, int(ppid), int(pgrp)


def process_group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _process_stat(entry)
        if stat is not None and stat[2] == pgid and stat[0] != "Z":
            members.append(int(entry))
    return members


def child_pids(pid: int) -> list[int]:
    """Live (non-zombie) children of ``pid``, from /proc: a server's worker processes."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in children if (_process_stat(child) or ("Z",))[0] != "Z"]


def location_path(location: str) -> str:
    """The path (and query) of a ``Location`` header, absolute or relative."""
    return "/" + location.split("/", 3)[3] if location.startswith("http") else location


T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = START_TIMEOUT) -> T:
    """Poll ``condition`` until it returns something true, and return that; fail naming
    ``what`` after ``timeout`` seconds (a guard against hanging, not a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"still waiting after {timeout}s for {what}")
        time.sleep(0.05)


def kill_process_group(pgid: int, timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGKILL what is left of a process group we created; returns the PIDs it found."""
    leftovers = process_group_members(pgid)
    if not leftovers:
        return []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while process_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return leftovers


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def _without_credentials(headers: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}


def fetch(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Response:
    """``method`` on an absolute ``http://127.0.0.1:PORT/...`` URL (a presigned one)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1" or parts.port is None:
        raise AssertionError(f"not a URL on this machine: {url}")
    conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
    try:
        conn.request(
            method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {}
        )
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


@dataclass
class RegistryServer:
    """One registry process. ``restart()`` keeps the port, the config and the store."""

    kind: str
    workdir: Path
    port: int = field(default_factory=free_port)
    #: extra environment for the server process (e.g. ``REGISTRY_*`` config overrides)
    env: dict[str, str] = field(default_factory=dict)
    #: the storage driver's section of the config (see :func:`write_config`); "" for the
    #: filesystem under :attr:`store`
    storage: str = ""
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def store(self) -> Path:
        return self.workdir / "store"

    @property
    def config(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def ref(self, repo: str, tag_or_digest: str = "latest") -> str:
        """``127.0.0.1:PORT/repo:tag`` or ``127.0.0.1:PORT/repo@sha256:...``."""
        sep = "@" if ":" in tag_or_digest else ":"
        return f"{self.host}/{repo}{sep}{tag_or_digest}"

    def docker_ref(self, repo: str, tag_or_digest: str = "latest") -> str:
        """The containers-image transport reference ``docker://127.0.0.1:PORT/...``."""
        return "docker://" + self.ref(repo, tag_or_digest)

    def docker_repo(self, repo: str) -> str:
        """``docker://127.0.0.1:PORT/repo`` (no tag: for ``skopeo list-tags``)."""
        return f"docker://{self.host}/{repo}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.proc is not None:
            raise ServerError("already running")
        self.store.mkdir(parents=True, exist_ok=True)
        if not self.config.exists():
            write_config(self.config, store=self.store, port=self.port, storage=self.storage)
        cmd = server_command(self.kind, self.config)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def environment(self) -> dict[str, str]:
        """The server's environment: ours without ``REGISTRY_*`` (both servers read those as
        config overrides, e.g. a client's ``REGISTRY_AUTH_FILE`` would become ``auth:``),
        plus ``self.env``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        if self.kind == "registry2":
            # Debian's 2.8.2 panics on S3 storage when AWS_CA_BUNDLE is set (TESTING.md).
            env.pop("AWS_CA_BUNDLE", None)
        env.update(self.env)
        return env

    #: what ``wait_ready`` sends to ``GET /v2/`` and which answers mean "serving"
    ready_headers: ClassVar[dict[str, str]] = {}
    ready_statuses: ClassVar[tuple[int, ...]] = (200,)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.kind} exited with {self.proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            try:
                r = self.request("GET", "/v2/", timeout=2, headers=self.ready_headers)
                if r.status in self.ready_statuses:
                    return
                last = f"GET /v2/ -> {r.status}"
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise ServerError(f"{self.kind} not ready after {timeout}s ({last}):\n" + self.log_tail())

    def stop(self, *, kill: bool = False) -> list[int]:
        """Stop the server we started; returns the PIDs of workers that outlived it.

        Graceful: SIGTERM to its PID, SIGKILL after a timeout. ``kill``: SIGKILL at once to its
        whole process group (the server leads its own session), as a crash or an OOM kill would:
        a multi-process server's workers must not survive to keep serving the port.

        Processes left in the group once the server has exited are SIGKILLed and returned: after
        a graceful stop that is a bug of the server (see :meth:`restart`).
        """
        proc, self.proc = self.proc, None
        if proc is None:
            return []
        if proc.poll() is None:
            if kill:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT)
        leftovers = kill_process_group(proc.pid)
        if leftovers:
            with self.log_path.open("a") as log:
                log.write(f"\n===== harness: killed leftover processes {leftovers}\n")
        return [] if kill else leftovers

    def restart(self, *, kill: bool = False) -> None:
        """Stop (gracefully, or with ``kill`` as a crash) and start again: same port, store."""
        leftovers = self.stop(kill=kill)
        if leftovers:
            raise ServerError(
                f"{self.kind}: processes {leftovers} outlived a SIGTERM of the server "
                f"(killed now):\n{self.log_tail()}"
            )
        self.start()

    def worker_pids(self, expect: int | None = None) -> list[int]:
        """The worker processes of the running server (its live children); with ``expect``,
        once that many are running (the first worker may answer before the last forked)."""
        assert self.proc is not None
        pid = self.proc.pid
        if expect is None:
            return child_pids(pid)
        return wait_for(
            lambda: found if len(found := child_pids(pid)) == expect else None,
            f"{expect} workers",
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ raw HTTP

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def get_manifest(self, repo: str, reference: str, accept: str | None = None) -> Response:
        accept = accept or ", ".join(
            [
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            ]
        )
        return self.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept})

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> Response:
        return self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            body=body,
            headers={"Content-Type": media_type},
        )

    def get_blob(self, repo: str, digest: str, headers: dict[str, str] | None = None) -> Response:
        """The blob, following a redirect to the storage (a presigned URL) as clients do."""
        r = self.request("GET", f"/v2/{repo}/blobs/{digest}", headers=headers)
        if r.status != 307:
            return r
        return fetch(r.headers["location"], _without_credentials(headers))

    def push_chunked(self, repo: str, data: bytes, chunk: int) -> str:
        """POST, PATCHes of ``chunk`` bytes with Content-Range (each on a new connection),
        PUT; returns the digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        assert r.status == 202, r.body
        location = location_path(r.headers["location"])
        for start in range(0, len(data), chunk):
            piece = data[start : start + chunk]
            end = start + len(piece) - 1
            r = self.request(
                "PATCH",
                location,
                body=piece,
                headers={"Content-Range": f"{start}-{end}", "Content-Type": OCTET_STREAM},
            )
            assert r.status == 202, r.body
            assert r.headers["range"] == f"0-{end}"
            location = location_path(r.headers["location"])
        sep = "&" if "?" in location else "?"
        r = self.request("PUT", f"{location}{sep}digest={digest}")
        assert r.status == 201, r.body
        return digest

    def push_blob(self, repo: str, data: bytes, headers: dict[str, str] | None = None) -> str:
        """Monolithic POST + PUT upload (``headers`` on both); returns the digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", headers=headers)
        assert r.status == 202, (r.status, r.body)
        location = location_path(r.headers["location"])
        sep = "&" if "?" in location else "?"
        r = self.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            body=data,
            headers={**(headers or {}), "Content-Type": OCTET_STREAM},
        )
        assert r.status == 201, (r.status, r.body)
        return digest
