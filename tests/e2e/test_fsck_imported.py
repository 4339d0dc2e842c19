"""``dockyard fsck`` on a store registry:2 itself wrote, once imported: its link files agree
with the database (no false alarm), digests verify, and what goes missing is found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .clients import Skopeo
from .images import Image, ImageIndex
from .server import REPO_ROOT, RegistryServer

pytestmark = pytest.mark.e2e


def dockyard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )


def test_fsck_of_an_imported_registry2_store(
    skopeo: Skopeo, image: Image, image_index: ImageIndex, tmp_path: Path
) -> None:
    reference = RegistryServer("registry2", tmp_path / "registry2")
    reference.start()
    try:
        skopeo.copy(image.ref, reference.docker_ref("team/app", "v1"))
        skopeo.copy(image_index.ref, reference.docker_ref("team/multi", "multi"), "--all")
    finally:
        reference.stop()
    env = reference.environment()
    imported = dockyard("import", str(reference.config), env=env)
    assert imported.returncode == 0, imported.stderr

    clean = dockyard("fsck", "--verify-digests", str(reference.config), env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout == ""
    assert "0 problems" in clean.stderr

    layer = image.layers[-1].digest
    data = reference.store / "docker/registry/v2/blobs/sha256" / layer[7:9] / layer[7:] / "data"
    data.unlink()
    found = dockyard("fsck", "--repair", str(reference.config), env=env)
    assert found.returncode == 1
    assert found.stdout.startswith(f"missing-bytes: {layer}:"), found.stdout
    assert "marked missing" in found.stdout
    assert dockyard("fsck", str(reference.config), env=env).returncode == 0
