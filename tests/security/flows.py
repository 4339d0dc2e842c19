"""What each real client does against a registry that wants TLS and a login: log in,
push, pull back, check the bytes. Shared by the TLS, token-service and nginx suites."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import oras.client

from tests.e2e.clients import ContainersTool, Ctr, Docker, Skopeo
from tests.e2e.images import Image, layout_manifest, read_file_from_layout, write_oci_archive

DOCKER_CERTS = Path("/etc/docker/certs.d")


@dataclass
class Endpoint:
    """Where a client finds the registry: ``host`` is ``127.0.0.1:PORT``; ``cert_dir`` a
    containers certificate directory (``ca.crt``, and a client certificate for mutual TLS),
    None for plain HTTP."""

    host: str
    cert_dir: Path | None

    @property
    def ca_file(self) -> Path | None:
        return self.cert_dir / "ca.crt" if self.cert_dir else None

    @property
    def client_cert(self) -> tuple[Path, Path] | None:
        if self.cert_dir and (self.cert_dir / "client.cert").exists():
            return self.cert_dir / "client.cert", self.cert_dir / "client.key"
        return None

    def tls(self, prefix: str = "") -> list[str]:
        """``--cert-dir`` (or ``--tls-verify=false``) flags of the containers tools."""
        if self.cert_dir is None:
            return [f"--{prefix}tls-verify=false"]
        return [f"--{prefix}cert-dir={self.cert_dir}"]

    def ref(self, repo: str, tag: str = "v1") -> str:
        return f"{self.host}/{repo}:{tag}"


def _authfile(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}-auth.json"
    path.write_text("{}")
    return path


def check_layout(out: Path, image: Image, tag: str = "v1") -> None:
    _, manifest = layout_manifest(out, tag)
    assert json.loads(manifest)["config"]["digest"] == image.config_digest
    assert read_file_from_layout(out, image.data_path, tag) == image.data


def skopeo_flow(
    skopeo: Skopeo,
    endpoint: Endpoint,
    credentials: tuple[str, str] | None,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    """``skopeo login``, then copy in and out with the stored login."""
    authfile = _authfile(tmp_path, "skopeo")
    if credentials:
        user, password = credentials
        skopeo("login", "--authfile", str(authfile), *endpoint.tls(), "-u", user,
               "--password-stdin", endpoint.host, input=password)  # fmt: skip
    skopeo("copy", "--quiet", "--preserve-digests", "--authfile", str(authfile),
           *endpoint.tls("dest-"), image.ref, f"docker://{endpoint.ref(repo)}")  # fmt: skip
    out = tmp_path / "skopeo-pulled"
    skopeo("copy", "--quiet", "--authfile", str(authfile), *endpoint.tls("src-"),
           f"docker://{endpoint.ref(repo)}", f"oci:{out}:v1")  # fmt: skip
    assert layout_manifest(out, "v1")[1] == image.manifest_bytes
    check_layout(out, image)


def podman_flow(
    podman: ContainersTool,
    endpoint: Endpoint,
    credentials: tuple[str, str],
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    """``podman login``, push, remove the local image, pull it back."""
    authfile = str(_authfile(tmp_path, "podman"))
    user, password = credentials
    podman("login", "--authfile", authfile, *endpoint.tls(), "-u", user, "--password-stdin",
           endpoint.host, input=password)  # fmt: skip
    image_id = podman("pull", "--quiet", image.ref).stdout.split()[-1]
    local = f"localhost/{repo}:v1"
    podman("tag", image_id, local)
    podman("push", "--quiet", "--authfile", authfile, *endpoint.tls(), local,
           f"docker://{endpoint.ref(repo)}")  # fmt: skip
    podman("rmi", "--force", image_id)
    podman("pull", "--quiet", "--authfile", authfile, *endpoint.tls(), endpoint.ref(repo))
    pulled = podman("image", "inspect", "--format", "{{.Id}}", endpoint.ref(repo)).stdout.strip()
    assert f"sha256:{pulled}" == image.config_digest
    podman("logout", "--authfile", authfile, endpoint.host)
    podman("rmi", "--force", endpoint.ref(repo))


def buildah_flow(
    buildah: ContainersTool,
    endpoint: Endpoint,
    credentials: tuple[str, str],
    repo: str,
    tmp_path: Path,
) -> None:
    """``buildah login``, build from scratch, push, remove, pull back."""
    authfile = str(_authfile(tmp_path, "buildah"))
    user, password = credentials
    buildah("login", "--authfile", authfile, *endpoint.tls(), "-u", user, "--password-stdin",
            endpoint.host, input=password)  # fmt: skip
    payload = tmp_path / "payload.txt"
    payload.write_text(f"built for {repo}\n")
    container = buildah("from", "--quiet", "scratch").stdout.strip()
    try:
        buildah("copy", "--quiet", container, str(payload), "/payload.txt")
        image_id = buildah("commit", "--quiet", container, f"localhost/{repo}:built").stdout.strip()
    finally:
        buildah("rm", container)
    buildah("push", "--quiet", "--authfile", authfile, *endpoint.tls(), f"localhost/{repo}:built",
            f"docker://{endpoint.ref(repo)}")  # fmt: skip
    buildah("rmi", f"localhost/{repo}:built")
    buildah("pull", "--quiet", "--authfile", authfile, *endpoint.tls(), endpoint.ref(repo))
    pulled = buildah("images", "--quiet", "--no-trunc", endpoint.ref(repo)).stdout.strip()
    assert pulled.removeprefix("sha256:") == image_id.removeprefix("sha256:")
    buildah("rmi", endpoint.ref(repo))


@contextlib.contextmanager
def docker_trust(endpoint: Endpoint) -> Iterator[None]:
    """dockerd reads registry CAs (and client certificates) only from
    /etc/docker/certs.d/<host:port>/: put ours there for the test, remove it after."""
    if endpoint.cert_dir is None:
        yield
        return
    target = DOCKER_CERTS / endpoint.host
    target.mkdir(parents=True, exist_ok=True)
    try:
        for name in ("ca.crt", "client.cert", "client.key"):
            if (endpoint.cert_dir / name).exists():
                shutil.copy(endpoint.cert_dir / name, target / name)
        yield
    finally:
        shutil.rmtree(target, ignore_errors=True)


def docker_flow(
    docker: Docker,
    skopeo: Skopeo,
    endpoint: Endpoint,
    credentials: tuple[str, str],
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    """``docker login``, load, push, remove, pull back, ``docker logout``."""
    user, password = credentials
    archive = tmp_path / "docker-image.tar"
    name = f"dockyard-sec/{repo}:loaded"
    skopeo.copy(image.ref, f"docker-archive:{archive}:{name}", preserve_digests=False)
    docker("load", "--input", str(archive))
    remote = endpoint.ref(repo)
    with docker_trust(endpoint):
        docker("login", "--username", user, "--password-stdin", endpoint.host, input=password)
        try:
            docker("tag", name, remote)
            docker("push", remote)
            docker("rmi", remote, name)
            docker("pull", "--quiet", remote)
            assert docker.image_id(remote) == image.config_digest
            docker("rmi", remote)
        finally:
            docker("logout", endpoint.host)


def ctr_hosts_dir(endpoint: Endpoint, tmp_path: Path) -> Path:
    """A containerd hosts directory: https to ``endpoint``, trusting its CA."""
    assert endpoint.ca_file is not None
    root = tmp_path / "ctr-hosts"
    host_dir = root / endpoint.host
    host_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f'server = "https://{endpoint.host}"',
        f'[host."https://{endpoint.host}"]',
        '  capabilities = ["pull", "resolve", "push"]',
        f'  ca = "{endpoint.ca_file}"',
    ]
    if endpoint.client_cert:
        cert, key = endpoint.client_cert
        lines.append(f'  client = [["{cert}", "{key}"]]')
    (host_dir / "hosts.toml").write_text("\n".join(lines) + "\n")
    return root


def ctr_flow(
    ctr: Ctr,
    endpoint: Endpoint,
    credentials: tuple[str, str] | None,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    """``ctr images push``/``pull`` with ``--user`` (ctr has no login)."""
    name = f"{endpoint.host}/{repo}"
    archive = write_oci_archive(image.layout, tmp_path / "ctr-image.tar", image_name=name)
    ctr("images", "import", "--snapshotter", "native", str(archive))
    ref = f"{name}:{image.tag}"
    flags = ["--user", ":".join(credentials)] if credentials else []
    if endpoint.ca_file is None:
        flags.append("--plain-http")
    else:
        # containerd 1.6 talks plain HTTP to a loopback host with a port unless a hosts.toml
        # names the https server (--tlscacert alone does not switch the scheme)
        flags += ["--hosts-dir", str(ctr_hosts_dir(endpoint, tmp_path))]
    ctr("images", "push", *flags, ref)
    ctr("images", "rm", "--sync", ref)
    ctr("images", "pull", *flags, "--snapshotter", "native", ref)
    assert ctr.image_digest(ref) == image.manifest_digest
    assert (
        ctr("content", "get", image.layers[-1].digest, text=False).stdout == image.layers[-1].blob
    )
    ctr("images", "rm", "--sync", ref)


def oras_flow(
    endpoint: Endpoint,
    credentials: tuple[str, str],
    repo: str,
    tmp_path: Path,
    *,
    auth_backend: str = "basic",
) -> None:
    """oras (Python SDK): log in, push an artifact, pull it back."""
    client = oras.client.OrasClient(
        hostname=endpoint.host,
        insecure=endpoint.cert_dir is None,
        tls_verify=str(endpoint.ca_file) if endpoint.ca_file else False,
        auth_backend=auth_backend,
    )
    try:
        client.login(*credentials, hostname=endpoint.host, config_path=str(tmp_path / "oras.json"))
        artifact = tmp_path / "artifact.txt"
        artifact.write_text(f"an artifact for {repo}\n")
        target = endpoint.ref(repo)
        response = client.push(
            target=target, files=[str(artifact)], disable_path_validation=True, quiet=True
        )
        assert response.status_code == 201, response.text
        out = tmp_path / "oras-out"
        files = client.pull(target=target, outdir=str(out))
        assert [Path(f).read_text() for f in files] == [artifact.read_text()]
    finally:
        client.session.close()
