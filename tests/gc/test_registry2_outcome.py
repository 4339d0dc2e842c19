"""``dockyard garbage-collect`` on a store imported from registry:2, against Debian's
``docker-registry garbage-collect`` (Distribution 2.8.2) on a copy of the same store: the
same blobs are left, but for registry:2's multi-arch bug, which ``--delete-untagged``
shows (it deletes the configs and layers of a tagged index's untagged children).

The store is written in Distribution's layout (tests/test_import.py's ``Store``), both
commands run as real programs, and the outcome is read from the two trees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.storage.filesystem import FilesystemDriver
from tests.e2e.server import REPO_ROOT
from tests.test_import import (
    Store,
    config_bytes,
    image_manifest,
    index_manifest,
    layer_bytes,
    sha256,
)

BLOBS = Path("docker/registry/v2/blobs")


def config_for(root: Path, extra: str = "") -> Path:
    path = root.parent / f"{root.name}.yml"
    path.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
        + extra
    )
    return path


def run(argv: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def registry2_gc(root: Path, *flags: str) -> str:
    binary = shutil.which("docker-registry", path="/usr/bin:/usr/sbin")
    assert binary is not None, "docker-registry (Debian package) is not installed"
    return run([binary, "garbage-collect", *flags, str(config_for(root))])


def dockyard_gc(root: Path, *flags: str) -> str:
    config = config_for(root, "gc:\n  reviewafter: 0s\n")
    run([sys.executable, "-m", "dockyard", "import", str(config)])
    return run([sys.executable, "-m", "dockyard", "garbage-collect", *flags, str(config)])


def fsck_findings(config: Path) -> str:
    """What ``dockyard fsck`` finds (one line each; exit status 1 when it finds any)."""
    argv = [sys.executable, "-m", "dockyard", "fsck", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def blobs_left(root: Path) -> set[str]:
    return {"sha256:" + data.parent.name for data in (root / BLOBS).glob("sha256/*/*/data")}


async def fill(root: Path) -> dict[str, set[str]]:
    """A store with what collections disagree on; returns named groups of digests."""
    store = Store(FilesystemDriver(root))
    kept = await store.image("plain", "v1")
    overwritten = await store.image("plain")  # untagged: a tag moved away from it
    await store.link_layer("plain", os.urandom(200))  # uploaded, never referenced
    amd = await store.image("multi", architecture="amd64")
    arm = await store.image("multi", architecture="arm64")
    index = index_manifest([(amd.manifest, "amd64"), (arm.manifest, "arm64")])
    await store.link_revision("multi", index)
    await store.tag("multi", "latest", index)
    # "shared" uses a layer of the untagged image: it stays whatever happens to "plain".
    reused = overwritten.layers[1]
    config = config_bytes([reused])
    shared = image_manifest(config, [reused])
    for blob in (config, reused):
        await store.link_layer("shared", blob)
    await store.link_revision("shared", shared)
    await store.tag("shared", "v1", shared)
    return {
        "tagged": {kept.digest, *(sha256(b) for b in kept.blobs), sha256(index)},
        "children": {sha256(b) for b in (*amd.blobs, *arm.blobs)},
        "child manifests": {amd.digest, arm.digest},
        "untagged": {overwritten.digest, *(sha256(b) for b in overwritten.blobs)},
        "shared": {sha256(shared), sha256(config), sha256(reused)},
        "base layer": {sha256(layer_bytes(b"base layer"))},
    }


@pytest.fixture
async def stores(tmp_path: Path) -> tuple[Path, Path, dict[str, set[str]]]:
    original = tmp_path / "original"
    groups = await fill(original)
    shutil.copytree(original, tmp_path / "registry2")
    shutil.copytree(original, tmp_path / "dockyard")
    return tmp_path / "registry2", tmp_path / "dockyard", groups


async def test_without_delete_untagged_both_leave_the_same_blobs(
    stores: tuple[Path, Path, dict[str, set[str]]],
) -> None:
    registry2, dockyard, _groups = stores
    before = blobs_left(registry2)

    registry2_gc(registry2)
    output = dockyard_gc(dockyard)

    assert blobs_left(dockyard) == blobs_left(registry2)
    assert len(before - blobs_left(dockyard)) == 1  # only the blob nothing referenced
    assert "Removed 0 manifests and 1 blob" in output


async def test_delete_untagged_differs_only_by_registry2s_multi_arch_bug(
    stores: tuple[Path, Path, dict[str, set[str]]],
) -> None:
    registry2, dockyard, groups = stores

    registry2_gc(registry2, "--delete-untagged")
    output = dockyard_gc(dockyard, "-m")

    left = blobs_left(dockyard)
    for kept in ("tagged", "children", "child manifests", "shared", "base layer"):
        assert groups[kept] <= left, kept
    assert not (groups["untagged"] - groups["shared"] - groups["base layer"]) & left
    # registry:2 deleted what the tagged index needs: its children's configs and layers
    # (the base layer survives there only because other images use it too).
    lost = left - blobs_left(registry2)
    assert lost == groups["children"] - groups["base layer"]
    assert blobs_left(registry2) <= left
    assert "Removed 1 manifest and" in output


async def test_bytes_no_link_file_names_are_collected_after_the_review_delay(
    stores: tuple[Path, Path, dict[str, set[str]]],
) -> None:
    """Blob data with no link file anywhere (registry:2 leaves a deleted manifest's bytes,
    or an upload's whose link went): registry:2's collector removes it, and so does
    Dockyard's after an import, once ``gc.reviewafter`` has passed; fsck agrees."""
    registry2, dockyard, _groups = stores
    leftovers = set()
    for root in (registry2, dockyard):
        store = Store(FilesystemDriver(root))
        for data in (b"bytes of a manifest registry:2 deleted", b"an upload whose link went"):
            leftovers.add(str(await store.blob(data)))
    assert leftovers <= blobs_left(registry2)

    registry2_gc(registry2)
    assert not leftovers & blobs_left(registry2)

    waiting = config_for(dockyard, "gc:\n  reviewafter: 1h\n")
    imported = run([sys.executable, "-m", "dockyard", "import", str(waiting)])
    assert "Recorded 2 blobs that no link file names" in imported
    assert "bytes-without-row" not in fsck_findings(waiting)
    run([sys.executable, "-m", "dockyard", "garbage-collect", str(waiting)])
    assert leftovers <= blobs_left(dockyard)  # within the review delay: kept

    output = run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "garbage-collect",
            str(config_for(dockyard, "gc:\n  reviewafter: 0s\n")),
        ]
    )

    assert not leftovers & blobs_left(dockyard)
    assert blobs_left(dockyard) == blobs_left(registry2)
    assert "Removed 0 manifests and 3 blobs" in output  # and the never referenced layer
