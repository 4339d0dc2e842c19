"""Build test images without a network: OCI image layouts written by hand.

Every image has two layers:

* a base layer (identical bytes in every image of a run) holding Debian's static busybox as
  ``bin/busybox`` plus a few symlinks (``bin/sh``, ``bin/ls``, ...);
* a data layer with fresh random bytes, so that every push really uploads something.

Everything is written as an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/...``) that skopeo, podman, buildah (``oci:DIR:TAG``) read directly, and that
``ctr images import`` reads once tarred with :func:`write_oci_archive`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"

BUSYBOX = Path("/bin/busybox")
BUSYBOX_LINKS = ("sh", "ls", "cat", "echo", "sha256sum")
#: every file in the layers gets this mtime, so that the base layer is reproducible
MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def json_object(text: str | bytes) -> dict[str, Any]:
    """A JSON document that is an object (a manifest, a config, an index)."""
    found = json.loads(text)
    assert isinstance(found, dict), f"not a JSON object: {found!r}"
    return found


def canonical_json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Layer:
    blob: bytes  # the compressed bytes, as stored in the registry
    diff_id: str  # digest of the uncompressed tar
    media_type: str = OCI_LAYER_GZIP

    @property
    def digest(self) -> str:
        return sha256_digest(self.blob)

    @property
    def size(self) -> int:
        return len(self.blob)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass
class Image:
    """A single-platform image written into an OCI layout."""

    layout: Path
    tag: str
    manifest_bytes: bytes
    config_bytes: bytes
    layers: list[Layer]
    #: the random file in the data layer: path inside the image (no leading slash), and content
    data_path: str
    data: bytes
    architecture: str = "amd64"
    os: str = "linux"

    @property
    def ref(self) -> str:
        """The containers-image transport reference: ``oci:DIR:TAG``."""
        return f"oci:{self.layout}:{self.tag}"

    @property
    def manifest(self) -> dict[str, Any]:
        return json_object(self.manifest_bytes)

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest_bytes)

    @property
    def config(self) -> dict[str, Any]:
        return json_object(self.config_bytes)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config_bytes)

    @property
    def layer_digests(self) -> list[str]:
        return [layer.digest for layer in self.layers]

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    @property
    def platform(self) -> str:
        return f"{self.os}/{self.architecture}"


@dataclass
class ImageIndex:
    """A multi-platform OCI image index written into an OCI layout."""

    layout: Path
    tag: str
    index_bytes: bytes
    children: dict[str, Image] = field(default_factory=dict)  # by "os/arch"

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"

    @property
    def digest(self) -> str:
        return sha256_digest(self.index_bytes)

    @property
    def index(self) -> dict[str, Any]:
        return json_object(self.index_bytes)


# --------------------------------------------------------------------------- layers


def _tar_bytes(entries: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in entries:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buf.getvalue()


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, size: int = 0
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _gzip(data: bytes) -> bytes:
    # mtime=0 and no file name: the same tar always gives the same blob
    return gzip.compress(data, compresslevel=6, mtime=0)


def make_layer(files: dict[str, bytes], *, compress: bool = True, mode: int = 0o644) -> Layer:
    """A layer with the given regular files (paths relative, parent directories added)."""
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    dirs: set[str] = set()
    for path in sorted(files):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                entries.append((_info(d + "/", tarfile.DIRTYPE, 0o755), None))
        content = files[path]
        entries.append((_info(path.strip("/"), mode=mode, size=len(content)), content))
    tar = _tar_bytes(entries)
    if compress:
        return Layer(_gzip(tar), sha256_digest(tar), OCI_LAYER_GZIP)
    return Layer(tar, sha256_digest(tar), OCI_LAYER_TAR)


@functools.cache
def busybox_layer() -> Layer:
    """The base layer: ``bin/busybox`` (Debian's busybox-static) and symlinks to it."""
    if not BUSYBOX.is_file():
        raise RuntimeError(f"{BUSYBOX} is missing: install busybox-static")
    binary = BUSYBOX.read_bytes()
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info("bin/", tarfile.DIRTYPE, 0o755), None),
        (_info("bin/busybox", mode=0o755, size=len(binary)), binary),
    ]
    for name in BUSYBOX_LINKS:
        link = _info(f"bin/{name}", tarfile.SYMTYPE, 0o777)
        link.linkname = "busybox"
        entries.append((link, None))
    entries.append((_info("tmp/", tarfile.DIRTYPE, 0o1777), None))
    tar = _tar_bytes(entries)
    return Layer(_gzip(tar), sha256_digest(tar))


def random_data_layer(size: int = 256 * 1024) -> tuple[Layer, str, bytes]:
    """A layer with one file of ``size`` random bytes; returns (layer, path, content)."""
    path = f"data/{secrets.token_hex(8)}.bin"
    content = os.urandom(size)
    return make_layer({path: content}), path, content


# --------------------------------------------------------------------------- layouts


def _write_blob(layout: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.rename(path)
    return digest


def _init_layout(layout: Path) -> None:
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    oci_layout = layout / "oci-layout"
    if not oci_layout.exists():
        oci_layout.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    if not (layout / "index.json").exists():
        (layout / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        )


def _add_to_index(layout: Path, descriptor: dict[str, object], tag: str) -> None:
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text())
    manifests = [m for m in index["manifests"] if (m.get("annotations") or {}).get(REF_NAME) != tag]
    manifests.append({**descriptor, "annotations": {REF_NAME: tag}})
    index["manifests"] = manifests
    index_path.write_text(json.dumps(index, indent=2))


def _config(architecture: str, os_: str, layers: list[Layer], cmd: list[str]) -> bytes:
    config = {
        "created": CREATED,
        "architecture": architecture,
        "os": os_,
        "config": {"Env": ["PATH=/bin"], "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": CREATED, "created_by": "dockyard e2e: busybox base"},
            {"created": CREATED, "created_by": "dockyard e2e: random data"},
        ][: len(layers)],
    }
    if architecture == "arm64":
        config["variant"] = "v8"
    return canonical_json(config)


def _write_image_blobs(
    layout: Path,
    *,
    architecture: str,
    os_: str,
    data_size: int,
    cmd: list[str],
    annotations: dict[str, str] | None,
) -> tuple[bytes, bytes, list[Layer], str, bytes]:
    data_layer, data_path, data = random_data_layer(data_size)
    layers = [busybox_layer(), data_layer]
    config_bytes = _config(architecture, os_, layers, cmd)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": sha256_digest(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [layer.descriptor() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = annotations
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    for layer in layers:
        _write_blob(layout, layer.blob)
    _write_blob(layout, config_bytes)
    _write_blob(layout, manifest_bytes)
    return manifest_bytes, config_bytes, layers, data_path, data


def build_image(
    layout: Path,
    tag: str = "latest",
    *,
    architecture: str = "amd64",
    os: str = "linux",
    data_size: int = 256 * 1024,
    cmd: list[str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Image:
    """Write a fresh image (busybox base + random data layer) into ``layout`` as ``tag``.

    ``layout`` is created if needed; an existing layout gets one more tagged image.
    """
    layout = Path(layout)
    _init_layout(layout)
    manifest_bytes, config_bytes, layers, data_path, data = _write_image_blobs(
        layout,
        architecture=architecture,
        os_=os,
        data_size=data_size,
        cmd=cmd or ["/bin/sh"],
        annotations=annotations,
    )
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": sha256_digest(manifest_bytes),
        "size": len(manifest_bytes),
    }
    _add_to_index(layout, descriptor, tag)
    return Image(
        layout=layout,
        tag=tag,
        manifest_bytes=manifest_bytes,
        config_bytes=config_bytes,
        layers=layers,
        data_path=data_path,
        data=data,
        architecture=architecture,
        os=os,
    )


DEFAULT_PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))


def build_index(
    layout: Path,
    tag: str = "latest",
    *,
    platforms: Iterable[tuple[str, str]] = DEFAULT_PLATFORMS,
    data_size: int = 64 * 1024,
) -> ImageIndex:
    """Write a multi-platform OCI image index (one fresh image per platform) as ``tag``.

    The children share the busybox base layer (its bytes are amd64 code: the registry does
    not care, and no test runs the arm64 child).
    """
    layout = Path(layout)
    _init_layout(layout)
    children: dict[str, Image] = {}
    entries = []
    for os_, arch in platforms:
        manifest_bytes, config_bytes, layers, data_path, data = _write_image_blobs(
            layout,
            architecture=arch,
            os_=os_,
            data_size=data_size,
            cmd=["/bin/sh"],
            annotations=None,
        )
        child = Image(
            layout=layout,
            tag=f"{tag}@{sha256_digest(manifest_bytes)}",
            manifest_bytes=manifest_bytes,
            config_bytes=config_bytes,
            layers=layers,
            data_path=data_path,
            data=data,
            architecture=arch,
            os=os_,
        )
        children[child.platform] = child
        platform: dict[str, str] = {"architecture": arch, "os": os_}
        if arch == "arm64":
            platform["variant"] = "v8"
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": child.manifest_digest,
                "size": len(manifest_bytes),
                "platform": platform,
            }
        )
    index_bytes = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=2
    ).encode()
    _write_blob(layout, index_bytes)
    _add_to_index(
        layout,
        {"mediaType": OCI_INDEX, "digest": sha256_digest(index_bytes), "size": len(index_bytes)},
        tag,
    )
    return ImageIndex(layout=layout, tag=tag, index_bytes=index_bytes, children=children)


def write_oci_archive(layout: Path, archive: Path, *, image_name: str | None = None) -> Path:
    """Tar an OCI layout into an ``oci-archive`` (what ``ctr images import`` reads).

    With ``image_name``, every entry of index.json also gets containerd's
    ``io.containerd.image.name`` annotation, so that ``ctr images import`` names the image.
    """
    layout = Path(layout)
    index = json.loads((layout / "index.json").read_text())
    if image_name:
        for m in index["manifests"]:
            tag = (m.get("annotations") or {}).get(REF_NAME, "latest")
            m.setdefault("annotations", {})["io.containerd.image.name"] = f"{image_name}:{tag}"
    index_bytes = json.dumps(index).encode()
    with tarfile.open(archive, "w") as tar:
        tar.add(layout / "oci-layout", arcname="oci-layout")
        info = tarfile.TarInfo("index.json")
        info.size = len(index_bytes)
        info.mtime = MTIME
        tar.addfile(info, io.BytesIO(index_bytes))
        tar.add(layout / "blobs", arcname="blobs")
    return archive


# --------------------------------------------------------------------------- reading back


def read_layout_index(layout: Path) -> dict[str, Any]:
    return json_object((Path(layout) / "index.json").read_text())


def read_blob(layout: Path, digest: str) -> bytes:
    algo, _, hexpart = digest.partition(":")
    return (Path(layout) / "blobs" / algo / hexpart).read_bytes()


def layout_manifest(layout: Path, tag: str | None = None) -> tuple[str, bytes]:
    """(digest, bytes) of the manifest tagged ``tag`` (or the only one) in an OCI layout."""
    manifests = read_layout_index(layout)["manifests"]
    assert isinstance(manifests, list)
    if tag is not None:
        manifests = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) == tag]
    assert len(manifests) == 1, f"expected one manifest for {tag!r} in {layout}: {manifests}"
    digest = manifests[0]["digest"]
    return digest, read_blob(layout, digest)


def uncompress(blob: bytes) -> bytes:
    """A layer blob as a plain tar (gzip is undone; a plain tar is returned as it is)."""
    return gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob


def uncompressed_digest(blob: bytes) -> str:
    """The diff_id of a layer blob."""
    return sha256_digest(uncompress(blob))


def iter_layer_members(blob: bytes) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    """(info, content) for every member of a layer blob (gzip or plain tar)."""
    with tarfile.open(fileobj=io.BytesIO(uncompress(blob)), mode="r:") as tar:
        for info in tar:
            f = tar.extractfile(info) if info.isreg() else None
            yield info, f.read() if f is not None else None


def read_file_from_layers(layer_blobs: Iterable[bytes], path: str) -> bytes:
    """Content of ``path`` in the image made of ``layer_blobs`` (last layer wins)."""
    path = path.strip("/")
    found: bytes | None = None
    for blob in layer_blobs:
        for info, content in iter_layer_members(blob):
            if info.name.strip("/").removeprefix("./") == path and content is not None:
                found = content
    if found is None:
        raise FileNotFoundError(path)
    return found


def read_file_from_layout(layout: Path, path: str, tag: str | None = None) -> bytes:
    """Content of ``path`` in the (single-platform) image ``tag`` of an OCI layout."""
    _, manifest_bytes = layout_manifest(layout, tag)
    manifest = json.loads(manifest_bytes)
    blobs = [read_blob(layout, layer["digest"]) for layer in manifest["layers"]]
    return read_file_from_layers(blobs, path)


def copy_layout(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
