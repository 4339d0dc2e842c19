"""``dockyard retention``, ``dockyard du`` and ``dockyard fsck`` run as a user runs them,
on a store pushed to through the API, on both databases."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.metadata.engine import create_engine
from dockyard.metadata.generation import WriteGeneration
from dockyard.metadata.store import MetadataStore
from dockyard.oci.digest import Digest
from dockyard.registry.service import Registry
from dockyard.registry.settings import RegistrySettings
from dockyard.storage import paths
from dockyard.storage.filesystem import FilesystemDriver
from tests.api.helpers import Client, digest_of, push_image
from tests.test_cli import clean_environment, dockyard


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Client, Path, Path]]:
    """A filesystem store and its database, the API to fill them, and a config for both."""
    root = tmp_path / "store"
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n"
        f"database:\n  url: {database_url}\n"
        "retention:\n"
        "  rules:\n"
        "    - name: ci\n"
        "      repositories: ['ci/**']\n"
        "      keeplast: 1\n"
        "immutabletags:\n"
        "  rules:\n"
        "    - repositories: ['**']\n"
        "      tags: ['v.*']\n"
    )
    # The write counter as a server has it, so that the commands' writes are seen here.
    metadata = MetadataStore(
        create_engine(database_url), WriteGeneration.for_database(database_url)
    )
    registry = Registry(metadata, FilesystemDriver(root), RegistrySettings())
    async with TestClient(TestServer(build_app(registry))) as client:
        yield client, config, root


async def tags(client: Client, name: str) -> list[str]:
    return sorted((await (await client.get(f"/v2/{name}/tags/list")).json())["tags"])


async def test_retention_dry_run_then_run(store: tuple[Client, Path, Path]) -> None:
    client, config, _ = store
    for tag in ("b1", "b2", "v1", "b3"):
        await push_image(client, "ci/app", tag)
    env = clean_environment()

    dry = dockyard("retention", "--dry-run", str(config), env=env)
    assert dry.returncode == 0, dry.stderr
    listed = [line.split("\t")[:2] for line in dry.stdout.splitlines()]
    assert listed == [["tag", "ci/app:b1"], ["tag", "ci/app:b2"]]
    assert "retention would remove 2 tags and 0 untagged manifests" in dry.stderr
    assert await tags(client, "ci/app") == ["b1", "b2", "b3", "v1"]

    done = dockyard("retention", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert "retention removed 2 tags" in done.stderr
    assert await tags(client, "ci/app") == ["b3", "v1"]


async def test_du_prints_the_figures(store: tuple[Client, Path, Path]) -> None:
    client, config, _ = store
    await push_image(client, "team/a", "v1")
    await push_image(client, "team/b", "v1")
    env = clean_environment()

    shown = dockyard("du", "team/a", str(config), env=env)
    assert shown.returncode == 0, shown.stderr
    rows = [line.split("\t") for line in shown.stdout.splitlines() if "\t" in line]
    assert [row[:3] for row in rows] == [["team/a", "1", "1"]]
    assert "deduplication ratio 1.00" in shown.stdout

    as_json = dockyard("du", "--json", str(config), env=env)
    body = json.loads(as_json.stdout)
    assert [r["name"] for r in body["repositories"]] == ["team/a", "team/b"]
    assert body["registry"]["storedBytes"] == sum(r["totalBytes"] for r in body["repositories"])

    unknown = dockyard("du", "no/such", str(config), env=env)
    assert unknown.returncode == 1
    assert "no repository no/such" in unknown.stderr


async def test_fsck_finds_and_repairs(store: tuple[Client, Path, Path]) -> None:
    client, config, root = store
    _, _, layers = await push_image(client, "team/a", "v1")
    env = clean_environment()
    clean = dockyard("fsck", "--verify-digests", str(config), env=env)
    assert clean.returncode == 0, clean.stderr
    assert "0 problems" in clean.stderr

    gone = digest_of(layers[0])
    (root / paths.blob_data(Digest.parse(gone)).lstrip("/")).unlink()
    found = dockyard("fsck", "--repair", str(config), env=env)
    assert found.returncode == 1
    assert found.stdout.splitlines() == [
        f"missing-bytes: {gone}: the database has the blob, the storage no bytes "
        "-> marked missing (unknown until pushed again)"
    ]
    assert "1 problem, 1 repaired" in found.stderr
    assert dockyard("fsck", str(config), env=env).returncode == 0


def test_commands_refuse_a_store_without_database(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}\n")
    for command in (["retention"], ["fsck"], ["du"]):
        result = dockyard(*command, str(config), env=clean_environment())
        assert result.returncode == 2, command
        assert "error: no Dockyard database at" in result.stderr
    assert not (tmp_path / "dockyard.db").exists()
