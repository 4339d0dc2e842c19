"""Real registry clients, each fully isolated from the machine it runs on.

Nothing here reads the user's configuration: every client gets its own ``HOME``,
``DOCKER_CONFIG``, ``REGISTRY_AUTH_FILE`` (a file holding ``{}``), ``XDG_*`` directories,
containers.conf / storage.conf / registries.conf / policy.json (podman, buildah, skopeo), its
own containerd (for ``ctr``) and its own dockerd on top of that containerd.

A missing client binary fails the test (never skips it): CI installs everything with
``scripts/install-test-deps.sh``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .images import json_object
from .server import kill_process_group

#: Debian's binaries first: CI installs the Debian packages, and a developer machine may have
#: other builds (e.g. a newer docker CLI in /usr/local/bin) earlier on its PATH.
BIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin:" + os.environ.get("PATH", "")

#: binary -> Debian package that provides it
PACKAGES = {
    "skopeo": "skopeo",
    "podman": "podman",
    "buildah": "buildah",
    "containerd": "containerd",
    "ctr": "containerd",
    "dockerd": "docker.io",
    "docker": "docker.io",
    "runc": "runc",
    "docker-registry": "docker-registry",
}

DEFAULT_TIMEOUT = 240.0


def find_binary(name: str) -> str:
    """Absolute path of a client binary; fails the current test if it is not installed."""
    path = shutil.which(name, path=BIN_PATH)
    if path is None:
        package = PACKAGES.get(name, name)
        pytest.fail(
            f"{name!r} is not installed (Debian package {package!r}); "
            "run scripts/install-test-deps.sh as root",
            pytrace=False,
        )
    return path


class ClientError(AssertionError):
    """A client command exited non-zero (an AssertionError, so it reads as a test failure)."""

    def __init__(self, argv: Sequence[str], result: subprocess.CompletedProcess[Any]) -> None:
        self.argv = list(argv)
        self.returncode = result.returncode
        self.stdout = _text(result.stdout)
        self.stderr = _text(result.stderr)
        super().__init__(
            f"command failed with exit code {result.returncode}: {' '.join(argv)}\n"
            f"--- stdout (tail)\n{_tail(self.stdout)}\n--- stderr (tail)\n{_tail(self.stderr)}"
        )


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join((text or "").splitlines()[-lines:])


def run(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
    cwd: Path | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run a client; a non-zero exit raises :class:`ClientError` (with its output) if ``check``.

    ``text=False`` gives ``stdout`` as bytes (for content that digests are computed on).
    """
    __tracebackhide__ = True
    result = subprocess.run(
        list(argv),
        env=env,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=text,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    if check and result.returncode != 0:
        raise ClientError(argv, result)
    return result


# --------------------------------------------------------------------------- environment


def no_proxy_env() -> dict[str, str]:
    """NO_PROXY / no_proxy with the loopback added: a CI proxy must never see test traffic
    (Go clients skip loopback on their own; Python's requests does not)."""
    current = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    value = ",".join(x for x in (current, "127.0.0.1", "localhost") if x)
    return {"NO_PROXY": value, "no_proxy": value}


@dataclass
class ClientEnv:
    """A private HOME and configuration for every client of one test session.

    ``root`` is short (``/tmp/dy-e2e-XXXXXXXX``): unix socket paths and podman's runroot have
    length limits (108 and 50 characters).
    """

    root: Path

    def __post_init__(self) -> None:
        for d in (self.home, self.docker_config, self.tmp, self.xdg_runtime, self.conf_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.auth_file.write_text("{}")
        (self.docker_config / "config.json").write_text("{}")
        containers = self.home / ".config" / "containers"
        containers.mkdir(parents=True, exist_ok=True)
        # skopeo, podman and buildah read ~/.config/containers/policy.json before /etc/containers
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        (containers / "policy.json").write_text(self.policy.read_text())
        self.registries_conf.write_text(
            'unqualified-search-registries = []\nshort-name-mode = "permissive"\n'
        )
        self.registries_d.mkdir(parents=True, exist_ok=True)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def docker_config(self) -> Path:
        return self.root / "docker-config"

    @property
    def auth_file(self) -> Path:
        return self.root / "auth.json"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def xdg_runtime(self) -> Path:
        return self.root / "xdg-run"

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def policy(self) -> Path:
        return self.conf_dir / "policy.json"

    @property
    def registries_conf(self) -> Path:
        return self.conf_dir / "registries.conf"

    @property
    def registries_d(self) -> Path:
        return self.conf_dir / "registries.d"

    @property
    def env(self) -> dict[str, str]:
        """The environment of every client subprocess (HOME, DOCKER_CONFIG, REGISTRY_AUTH_FILE
        and NO_PROXY also go to this process, for oras and python-dxf: see conftest)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DOCKER_", "CONTAINERS_", "REGISTRY_", "XDG_", "BUILDAH_"))
            and k not in ("CONTAINER_HOST", "CONTAINER_CONNECTION", "TMPDIR")
        }
        env.update(
            HOME=str(self.home),
            PATH=BIN_PATH,
            DOCKER_CONFIG=str(self.docker_config),
            REGISTRY_AUTH_FILE=str(self.auth_file),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            XDG_RUNTIME_DIR=str(self.xdg_runtime),
            CONTAINERS_REGISTRIES_CONF=str(self.registries_conf),
            TMPDIR=str(self.tmp),
            LC_ALL="C.UTF-8",
        )
        env.update(no_proxy_env())
        return env

    def run(self, argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[Any]:
        __tracebackhide__ = True
        return run(argv, self.env, **kw)  # type: ignore[arg-type]


def make_client_env() -> ClientEnv:
    return ClientEnv(Path(tempfile.mkdtemp(prefix="dy-e2e-", dir="/tmp")))


def remove_tree(path: Path) -> None:
    """rm -rf that survives read-only directories left by vfs storage."""

    def retry(func: Callable[..., object], p: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(p), 0o755)
            os.chmod(p, 0o755)
            func(p)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


# --------------------------------------------------------------------------- skopeo


@dataclass
class Skopeo:
    cenv: ClientEnv
    binary: str = field(default_factory=lambda: find_binary("skopeo"))

    @property
    def base_argv(self) -> list[str]:
        return [
            self.binary,
            "--policy",
            str(self.cenv.policy),
            "--registries.d",
            str(self.cenv.registries_d),
        ]

    def __call__(self, *args: str, **kw: object) -> subprocess.CompletedProcess[Any]:
        __tracebackhide__ = True
        return self.cenv.run([*self.base_argv, *args], **kw)

    def copy(
        self, src: str, dst: str, *extra: str, preserve_digests: bool = True, **kw: object
    ) -> subprocess.CompletedProcess[Any]:
        """``skopeo copy`` with TLS verification off on docker:// sides (plain HTTP).

        ``--preserve-digests`` by default: without it skopeo may substitute a layer with another
        compression of it that its blob-info cache knows to be in the registry already (root's
        cache is machine-wide, in /var/lib/containers/cache), which rewrites the manifest.
        """
        __tracebackhide__ = True
        flags = ["--preserve-digests"] if preserve_digests else []
        if src.startswith("docker://"):
            flags.append("--src-tls-verify=false")
        if dst.startswith("docker://"):
            flags.append("--dest-tls-verify=false")
        return self("copy", "--quiet", *flags, *extra, src, dst, **kw)

    def inspect(self, ref: str, *extra: str) -> dict[str, Any]:
        __tracebackhide__ = True
        out = self("inspect", "--tls-verify=false", *extra, ref).stdout
        return json_object(out)

    def inspect_raw(self, ref: str, *, config: bool = False) -> bytes:
        """The manifest (or with ``config``, the config) exactly as served: raw bytes."""
        __tracebackhide__ = True
        args = ["inspect", "--tls-verify=false", "--raw", *(["--config"] if config else []), ref]
        return bytes(self.cenv.run([*self.base_argv, *args], text=False).stdout)

    def list_tags(self, ref: str) -> list[str]:
        __tracebackhide__ = True
        out = self("list-tags", "--tls-verify=false", ref).stdout
        return list(json.loads(out)["Tags"])

    def delete(self, ref: str, **kw: object) -> subprocess.CompletedProcess[Any]:
        __tracebackhide__ = True
        return self("delete", "--tls-verify=false", ref, **kw)


# --------------------------------------------------------------------------- podman & buildah


@dataclass
class ContainersTool:
    """podman or buildah with private storage (vfs), runroot, containers.conf and storage.conf."""

    name: str
    cenv: ClientEnv
    binary: str = ""

    def __post_init__(self) -> None:
        self.binary = self.binary or find_binary(self.name)
        base = self.cenv.root / self.name
        self.graphroot = base / "root"
        self.runroot = base / "run"
        if len(str(self.runroot)) > 50:
            raise RuntimeError(f"runroot {self.runroot} is longer than 50 characters")
        for d in (self.graphroot, self.runroot, base / "tmp", base / "net"):
            d.mkdir(parents=True, exist_ok=True)
        self.containers_conf = base / "containers.conf"
        self.containers_conf.write_text(
            "[engine]\n"
            'events_logger = "file"\n'
            f'events_logfile_path = "{base}/events.log"\n'
            'cgroup_manager = "cgroupfs"\n'
            f'tmp_dir = "{base}/tmp"\n'
            "[network]\n"
            f'network_config_dir = "{base}/net"\n'
        )
        self.storage_conf = base / "storage.conf"
        self.storage_conf.write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f'runroot = "{self.runroot}"\n'
            f'graphroot = "{self.graphroot}"\n'
        )

    @property
    def env(self) -> dict[str, str]:
        env = self.cenv.env
        env.update(
            CONTAINERS_CONF=str(self.containers_conf),
            CONTAINERS_STORAGE_CONF=str(self.storage_conf),
        )
        if self.name == "buildah":
            env["BUILDAH_ISOLATION"] = "chroot"
        return env

    def __call__(self, *args: str, **kw: object) -> subprocess.CompletedProcess[Any]:
        __tracebackhide__ = True
        argv = [
            self.binary,
            "--root",
            str(self.graphroot),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "vfs",
            *args,
        ]
        return run(argv, self.env, **kw)  # type: ignore[arg-type]

    def cleanup(self) -> None:
        """Drop containers and images (unmounts what they mounted) before the tree is removed.

        Not ``podman system reset``: it also removes directories outside our private root.
        """
        self("rm", "--all", "--force", check=False, timeout=120)
        self("rmi", "--all", "--force", check=False, timeout=120)


# --------------------------------------------------------------------------- daemons


@dataclass
class Daemon:
    """A background daemon started by us and stopped by its PID."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"{self.name} exited with {rc}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        # nothing of ours may outlive the session (e.g. containerd shims)
        kill_process_group(proc.pid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except FileNotFoundError:
            return "(no log)"


class Containerd:
    """A private containerd (own root, state, socket; isolated content per namespace)."""

    def __init__(self, cenv: ClientEnv) -> None:
        self.cenv = cenv
        self.binary = find_binary("containerd")
        self.ctr_binary = find_binary("ctr")
        find_binary("runc")
        self.base = cenv.root / "ctrd"
        self.base.mkdir(parents=True, exist_ok=True)
        self.sock = self.base / "sock"
        self.config = self.base / "config.toml"
        self.config.write_text(
            "version = 2\n"
            f'root = "{self.base}/root"\n'
            f'state = "{self.base}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            "[grpc]\n"
            f'  address = "{self.sock}"\n'
            "[ttrpc]\n"
            f'  address = "{self.sock}.ttrpc"\n'
            "[debug]\n"
            '  address = ""\n'
            "[metrics]\n"
            '  address = ""\n'
            '[plugins."io.containerd.metadata.v1.bolt"]\n'
            '  content_sharing_policy = "isolated"\n'
        )
        self.daemon = Daemon(
            "containerd",
            [self.binary, "--config", str(self.config)],
            cenv.env,
            self.base / "containerd.log",
        )

    def start(self) -> None:
        def ready() -> bool:
            if not self.sock.exists():
                return False
            r = run(
                [self.ctr_binary, "-a", str(self.sock), "version"],
                self.cenv.env,
                check=False,
                timeout=10,
            )
            return r.returncode == 0

        self.daemon.start(ready)

    def stop(self) -> None:
        self.daemon.stop()


@dataclass
class Ctr:
    """``ctr`` against the private containerd, in its own namespace."""

    containerd: Containerd
    namespace: str = "dockyard-e2e"

    def __call__(self, *args: str, **kw: object) -> subprocess.CompletedProcess[Any]:
        __tracebackhide__ = True
        argv = [
            self.containerd.ctr_binary,
            "-a",
            str(self.containerd.sock),
            "-n",
            self.namespace,
            *args,
        ]
        try:
            return self.containerd.cenv.run(argv, **kw)
        except ClientError as error:
            # ctr reads and writes content through containerd: its failures are often there
            error.add_note(f"--- containerd log (tail)\n{self.containerd.daemon.log_tail()}")
            raise

    def image_digest(self, name: str) -> str:
        """The target (manifest or index) digest of a local image."""
        __tracebackhide__ = True
        out = self("images", "ls").stdout
        for line in out.splitlines()[1:]:
            cols = line.split()
            if cols and cols[0] == name:
                return str(next(c for c in cols if c.startswith("sha256:")))
        raise AssertionError(f"{name} not in `ctr images ls`:\n{out}")

    def image_names(self) -> list[str]:
        __tracebackhide__ = True
        return str(self("images", "ls", "--quiet").stdout).split()


class Dockerd:
    """A private dockerd (vfs, no networking) on top of the private containerd."""

    def __init__(
        self,
        cenv: ClientEnv,
        containerd: Containerd,
        name: str = "dockerd",
        settings: dict[str, Any] | None = None,
    ) -> None:
        """``name``: its directory under the client root (another name, another daemon);
        ``settings``: its daemon.json (e.g. ``registry-mirrors``)."""
        self.cenv = cenv
        self.binary = find_binary("dockerd")
        self.docker_binary = find_binary("docker")
        self.base = cenv.root / name
        self.base.mkdir(parents=True, exist_ok=True)
        self.sock = self.base / "sock"
        daemon_json = self.base / "daemon.json"
        daemon_json.write_text(json.dumps(settings or {}))
        self.daemon = Daemon(
            "dockerd",
            [
                self.binary,
                "--config-file", str(daemon_json),
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--data-root", str(self.base / "data"),
                "--exec-root", str(self.base / "exec"),
                "--pidfile", str(self.base / "dockerd.pid"),
                "-H", f"unix://{self.sock}",
                "--containerd", str(containerd.sock),
            ],
            cenv.env,
            self.base / "dockerd.log",
        )  # fmt: skip

    @property
    def env(self) -> dict[str, str]:
        env = self.cenv.env
        env["DOCKER_HOST"] = f"unix://{self.sock}"
        return env

    def start(self) -> None:
        def ready() -> bool:
            if not self.sock.exists():
                return False
            r = run([self.docker_binary, "version"], self.env, check=False, timeout=10)
            return r.returncode == 0

        self.daemon.start(ready, timeout=90)

    def stop(self) -> None:
        self.daemon.stop(timeout=30)


@dataclass
class Docker:
    """The docker CLI against the private dockerd."""

    dockerd: Dockerd

    def __call__(self, *args: str, **kw: object) -> subprocess.CompletedProcess[Any]:
        __tracebackhide__ = True
        return run([self.dockerd.docker_binary, *args], self.dockerd.env, **kw)  # type: ignore[arg-type]

    def image_id(self, ref: str) -> str:
        __tracebackhide__ = True
        return str(self("image", "inspect", "--format", "{{.Id}}", ref).stdout).strip()
