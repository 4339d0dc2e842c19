"""The real clients of the real-client benchmark, each with a private home and storage.

The isolation (HOME, policy, registries.conf, a private containerd and dockerd) is the
end-to-end suite's (tests/e2e/clients.py); this module adds what a benchmark does with a
client: push an image, pull it into an empty store, and copy it locally, which is the
client's own pull ceiling: the same work with no registry in between. (The push ceiling
is a push to the sink registry, bench/sink_registry.py.)

============  ==========================================  =====================================
client        push / pull                                 pull ceiling (local copy)
============  ==========================================  =====================================
skopeo        ``copy oci: docker://`` / ``docker:// oci:`` ``copy oci: oci:``
podman        ``push`` (gzips the layers) / ``pull``       ``pull oci:`` (unpacks too)
ctr           ``images push`` / ``images pull`` (unpacks)  ``images import``
docker        ``push`` (gzips the layers) / ``pull``       ``load``
============  ==========================================  =====================================

A pull always lands in a store without the image: podman and ctr pull into a second
storage / namespace, and docker's image is removed before it pulls.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from bench.client_images import REF_NAME, BuiltImage
from tests.e2e.clients import (
    ClientEnv,
    Containerd,
    ContainersTool,
    Ctr,
    Dockerd,
    run,
)

CLIENTS = ("skopeo", "podman", "ctr", "docker")
#: the binaries each client needs
BINARIES = {
    "skopeo": ("skopeo",),
    "podman": ("podman", "skopeo"),
    "ctr": ("ctr", "containerd", "runc"),
    "docker": ("docker", "dockerd", "containerd", "runc", "skopeo"),
}
TIMEOUT = 1800.0
Step = Callable[[], None]
#: a local copy: (untimed step before, the timed copy, untimed cleanup after)
Ceiling = tuple[Step, Step, Step]


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def _nothing() -> None:
    pass


class BenchClient:
    """One client. ``push``/``pull`` act against ``ref`` (``HOST/REPO:TAG``); ``prepare``,
    ``before_push`` and ``clear_pulled`` are the untimed steps around them."""

    name = ""

    def __init__(self, cenv: ClientEnv, scratch: Path) -> None:
        self.cenv = cenv
        self.scratch = scratch

    def prepare(self, image: BuiltImage) -> None:
        """Make ``image`` the client's own (its local store), ready to push."""

    def before_push(self, image: BuiltImage, ref: str) -> None:
        """Untimed work a push needs (a tag)."""

    def push(self, image: BuiltImage, ref: str) -> None:
        raise NotImplementedError

    def pull(self, image: BuiltImage, ref: str) -> None:
        raise NotImplementedError

    def clear_pulled(self, image: BuiltImage) -> None:
        """Remove what ``pull`` stored, so that the next pull downloads everything."""

    def pull_ceiling(self, image: BuiltImage) -> Ceiling:
        """The local copy that a pull is compared with."""
        raise NotImplementedError

    def close(self) -> None:
        """Remove what the client stored and stop what it started."""


class SkopeoClient(BenchClient):
    name = "skopeo"

    def _copy(self, src: str, dst: str) -> None:
        flags = ["--preserve-digests"]
        if src.startswith("docker://"):
            flags.append("--src-tls-verify=false")
        if dst.startswith("docker://"):
            flags.append("--dest-tls-verify=false")
        argv = ["skopeo", "--policy", str(self.cenv.policy), "copy", "--quiet", *flags, src, dst]
        self.cenv.run(argv, timeout=TIMEOUT)

    def push(self, image: BuiltImage, ref: str) -> None:
        self._copy(image.oci_ref, f"docker://{ref}")

    def pull(self, image: BuiltImage, ref: str) -> None:
        self._copy(f"docker://{ref}", f"oci:{_fresh(self.scratch / 'pulled')}:{image.tag}")

    def clear_pulled(self, image: BuiltImage) -> None:
        _fresh(self.scratch / "pulled")

    def pull_ceiling(self, image: BuiltImage) -> Ceiling:
        target = self.scratch / "copied"

        def copy() -> None:
            self._copy(image.oci_ref, f"oci:{_fresh(target)}:{image.tag}")

        def remove() -> None:
            _fresh(target)

        return _nothing, copy, remove


class PodmanClient(BenchClient):
    """Two podman stores: ``source`` holds the image it pushes, ``sink`` receives pulls."""

    name = "podman"

    def __init__(self, cenv: ClientEnv, scratch: Path, driver: str) -> None:
        super().__init__(cenv, scratch)
        binary = shutil.which("podman") or "podman"
        self.source = ContainersTool("podman-src", cenv, binary=binary)
        self.sink = ContainersTool("podman-dst", cenv, binary=binary)
        self.driver = driver
        self.image_id = ""

    def _run(self, tool: ContainersTool, *args: str) -> str:
        argv = [tool.binary, "--root", str(tool.graphroot), "--runroot", str(tool.runroot),
                "--storage-driver", self.driver, *args]  # fmt: skip
        return str(run(argv, tool.env, timeout=TIMEOUT).stdout)

    def prepare(self, image: BuiltImage) -> None:
        self.image_id = self._run(self.source, "pull", "--quiet", image.oci_ref).split()[-1]

    def push(self, image: BuiltImage, ref: str) -> None:
        self._run(self.source, "push", "--quiet", "--tls-verify=false", self.image_id,
                  f"docker://{ref}")  # fmt: skip

    def pull(self, image: BuiltImage, ref: str) -> None:
        self._run(self.sink, "pull", "--quiet", "--tls-verify=false", ref)

    def clear_pulled(self, image: BuiltImage) -> None:
        self._run(self.sink, "rmi", "--all", "--force")

    def pull_ceiling(self, image: BuiltImage) -> Ceiling:
        def pull() -> None:
            self._run(self.sink, "pull", "--quiet", image.oci_ref)

        return _nothing, pull, lambda: self.clear_pulled(image)

    def close(self) -> None:
        for tool in (self.source, self.sink):
            self._run(tool, "rmi", "--all", "--force")


def write_oci_archive(image: BuiltImage, archive: Path, name: str) -> Path:
    """The layout as an oci-archive whose index names the image ``name`` for containerd
    (files are streamed into the tar, never read whole)."""
    index = json.loads((image.layout / "index.json").read_text())
    for entry in index["manifests"]:
        entry.setdefault("annotations", {})["io.containerd.image.name"] = name
        entry["annotations"][REF_NAME] = image.tag
    index_path = archive.with_suffix(".index.json")
    index_path.write_text(json.dumps(index))
    with tarfile.open(archive, "w") as tar:
        tar.add(image.layout / "oci-layout", arcname="oci-layout")
        tar.add(index_path, arcname="index.json")
        tar.add(image.layout / "blobs", arcname="blobs")
    index_path.unlink()
    return archive


class CtrClient(BenchClient):
    """ctr on a private containerd: namespace ``bench-src`` pushes, ``bench-dst`` pulls
    (content is not shared between namespaces)."""

    name = "ctr"

    def __init__(self, cenv: ClientEnv, scratch: Path, containerd: Containerd,
                 snapshotter: str) -> None:  # fmt: skip
        super().__init__(cenv, scratch)
        self.source = Ctr(containerd, namespace="bench-src")
        self.sink = Ctr(containerd, namespace="bench-dst")
        self.snapshotter = ["--snapshotter", snapshotter]
        self.archives: dict[str, Path] = {}

    def _local(self, image: BuiltImage) -> str:
        return f"bench.local/{image.spec.name}:{image.tag}"

    def prepare(self, image: BuiltImage) -> None:
        archive = self.scratch / f"{image.spec.name}.oci.tar"
        self.archives[image.spec.name] = write_oci_archive(image, archive, self._local(image))
        self.source("images", "import", *self.snapshotter, str(archive), timeout=TIMEOUT)

    def push(self, image: BuiltImage, ref: str) -> None:
        self.source("images", "push", "--plain-http", ref, self._local(image), timeout=TIMEOUT)

    def pull(self, image: BuiltImage, ref: str) -> None:
        self.sink("images", "pull", "--plain-http", *self.snapshotter, ref, timeout=TIMEOUT)

    def clear_pulled(self, image: BuiltImage) -> None:
        names = self.sink("images", "ls", "--quiet").stdout.split()
        if names:
            self.sink("images", "rm", "--sync", *names, timeout=TIMEOUT)

    def pull_ceiling(self, image: BuiltImage) -> Ceiling:
        archive = self.archives[image.spec.name]

        def import_() -> None:
            self.sink("images", "import", *self.snapshotter, str(archive), timeout=TIMEOUT)

        return _nothing, import_, lambda: self.clear_pulled(image)

    def close(self) -> None:
        self.clear_pulled_all()

    def clear_pulled_all(self) -> None:
        for ctr in (self.source, self.sink):
            names = ctr("images", "ls", "--quiet").stdout.split()
            if names:
                ctr("images", "rm", "--sync", *names, timeout=TIMEOUT)


class DockerClient(BenchClient):
    """docker on a private dockerd (its own data-root, exec-root and socket, no bridge, no
    iptables) on the private containerd. One store: the image is removed before a pull,
    and the pulled image is what the next push pushes."""

    name = "docker"

    def __init__(self, cenv: ClientEnv, scratch: Path, containerd: Containerd,
                 driver: str) -> None:  # fmt: skip
        super().__init__(cenv, scratch)
        self.dockerd = Dockerd(cenv, containerd, name="bench-dockerd")
        argv = self.dockerd.daemon.argv
        argv[argv.index("--storage-driver=vfs")] = f"--storage-driver={driver}"
        self.dockerd.start()
        self.archives: dict[str, Path] = {}
        self.ids: dict[str, str] = {}

    def __call__(self, *args: str) -> str:
        argv = [self.dockerd.docker_binary, *args]
        return str(run(argv, self.dockerd.env, timeout=TIMEOUT).stdout)

    def prepare(self, image: BuiltImage) -> None:
        archive = self.scratch / f"{image.spec.name}.docker.tar"
        name = f"bench.local/{image.spec.name}:{image.tag}"
        copy = ["skopeo", "--policy", str(self.cenv.policy), "copy", "--quiet"]
        self.cenv.run([*copy, image.oci_ref, f"docker-archive:{archive}:{name}"], timeout=TIMEOUT)
        self.archives[image.spec.name] = archive
        self("load", "--quiet", "--input", str(archive))
        self.ids[image.spec.name] = self("image", "inspect", "--format", "{{.Id}}", name).strip()

    def before_push(self, image: BuiltImage, ref: str) -> None:
        self("tag", self.ids[image.spec.name], ref)

    def push(self, image: BuiltImage, ref: str) -> None:
        self("push", "--quiet", ref)

    def pull(self, image: BuiltImage, ref: str) -> None:
        self("pull", "--quiet", ref)

    def clear_pulled(self, image: BuiltImage) -> None:
        self("rmi", "--force", self.ids[image.spec.name])

    def pull_ceiling(self, image: BuiltImage) -> Ceiling:
        archive = self.archives[image.spec.name]

        def load() -> None:
            self("load", "--quiet", "--input", str(archive))

        # The image must be gone before a load, and there again afterwards (it is pushed).
        return lambda: self.clear_pulled(image), load, _nothing

    def close(self) -> None:
        self.dockerd.stop()


def missing_binaries(clients: list[str]) -> list[str]:
    needed = {binary for client in clients for binary in BINARIES[client]}
    return sorted(binary for binary in needed if not shutil.which(binary))
