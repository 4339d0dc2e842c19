"""Images for the real-client benchmark, written as OCI layouts without a network.

Every layer is an uncompressed tar holding one file of random bytes (incompressible, so
that no client or registry can make it smaller), streamed to disk while it is hashed: a
256 MiB layer never sits in memory. A client that unpacks the image (podman, ctr, docker)
gets a valid root filesystem of plain files.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"
PIECE = 1 << 20
MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"


@dataclass(frozen=True)
class ImageSpec:
    """What to build: a name and the size of each layer's file in bytes."""

    name: str
    layer_sizes: tuple[int, ...]


def large_spec(layers: int = 3, mib: int = 256) -> ImageSpec:
    return ImageSpec("large", tuple([mib << 20] * layers))


def small_spec(layers: int = 20, seed: int = 13) -> ImageSpec:
    """``layers`` layers of 4-200 KiB, the same sizes in every run."""
    sizes = random.Random(seed).sample(range(4, 201), layers)
    return ImageSpec("small", tuple(kib << 10 for kib in sizes))


@dataclass(frozen=True)
class BuiltImage:
    spec: ImageSpec
    layout: Path
    tag: str
    blob_bytes: int  # what a copy moves: the layers (tar framing included) and the config

    @property
    def oci_ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


def _blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _write_blob(layout: Path, media_type: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob_path(layout, digest).write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _random_pieces(size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        n = min(left, PIECE)
        yield os.urandom(n)
        left -= n


def _write_layer(layout: Path, index: int, size: int) -> dict[str, object]:
    """A tar of one random file, written and hashed piece by piece."""
    info = tarfile.TarInfo(f"data/layer-{index:02d}.bin")
    info.size = size
    info.mtime = MTIME
    info.mode = 0o644
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    trailer = b"\0" * ((-size) % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE)
    digest = hashlib.sha256()
    tmp = layout / "blobs" / f"layer-{index}.tmp"
    written = 0
    with tmp.open("wb") as out:
        for piece in (header, *_random_pieces(size), trailer):
            digest.update(piece)
            out.write(piece)
            written += len(piece)
    name = "sha256:" + digest.hexdigest()
    tmp.rename(_blob_path(layout, name))
    return {"mediaType": OCI_LAYER_TAR, "digest": name, "size": written}


def build(spec: ImageSpec, layout: Path, tag: str = "v1") -> BuiltImage:
    """Write ``spec`` as a fresh OCI layout in ``layout`` (which must not exist)."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layers = [_write_layer(layout, i, size) for i, size in enumerate(spec.layer_sizes)]
    config = {
        "created": CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/data"]},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        "history": [{"created": CREATED, "created_by": "bench"} for _ in layers],
    }
    config_desc = _write_blob(layout, OCI_CONFIG, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
    }
    manifest_desc = _write_blob(layout, OCI_MANIFEST, json.dumps(manifest).encode())
    manifest_desc["annotations"] = {REF_NAME: tag}
    index = {"schemaVersion": 2, "manifests": [manifest_desc]}
    (layout / "index.json").write_text(json.dumps(index))
    total = sum(int(str(d["size"])) for d in (*layers, config_desc))
    return BuiltImage(spec, layout, tag, total)
