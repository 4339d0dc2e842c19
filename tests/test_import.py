"""``dockyard import``: taking over a registry:2 store in place.

Two halves:

* fast tests that lay out a Distribution store by hand (through a storage driver) and run
  :func:`dockyard.registry2.importer.import_store` on it, one odd case at a time; the
  ``dockyard import`` command refusing (no store, or a store ``dockyard serve`` has
  written to) and its exit status;
* an end-to-end test: real ``docker-registry`` (Distribution 2.8.2) filled with skopeo, then
  ``python -m dockyard import`` and ``python -m dockyard serve`` on the same config file and
  store, and every tag, manifest and blob compared over HTTP with what registry:2 served.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import select

from dockyard.config import load_config
from dockyard.metadata import schema
from dockyard.metadata.engine import create_engine, migrate
from dockyard.metadata.records import ManifestToStore
from dockyard.metadata.store import MetadataStore
from dockyard.oci.digest import Digest
from dockyard.registry2.importer import ImportReport, import_store
from dockyard.registry2.reports import EXIT_CLEAN, EXIT_PROBLEMS, EXIT_REFUSED, Report
from dockyard.registry2_commands import run_import
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver
from tests.e2e.server import RegistryServer, write_config
from tests.storage.object_stores import make_azure_driver, make_gcs_driver

REPO_ROOT = Path(__file__).resolve().parents[1]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_bytes(content: bytes, name: str = "data.bin") -> bytes:
    """A gzipped tar holding one file (fixed mtime, so equal content gives equal bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 1_700_000_000
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue(), mtime=0)


def config_bytes(layers: list[bytes], architecture: str = "amd64") -> bytes:
    diff_ids = [sha256(gzip.decompress(layer)) for layer in layers]
    return json.dumps(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {"Cmd": ["/data.bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
        },
        sort_keys=True,
    ).encode()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def image_manifest(config: bytes, layers: list[bytes], media_type: str = OCI_MANIFEST) -> bytes:
    config_type = (
        OCI_CONFIG
        if media_type == OCI_MANIFEST
        else ("application/vnd.docker.container.image.v1+json")
    )
    layer_type = (
        OCI_LAYER
        if media_type == OCI_MANIFEST
        else ("application/vnd.docker.image.rootfs.diff.tar.gzip")
    )
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": descriptor(config_type, config),
            "layers": [descriptor(layer_type, layer) for layer in layers],
        },
        indent=2,
    ).encode()


def index_manifest(children: list[tuple[bytes, str]], media_type: str = OCI_INDEX) -> bytes:
    """An index of ``(manifest bytes, architecture)`` children."""
    entries = []
    for payload, architecture in children:
        child_type = json.loads(payload).get("mediaType", OCI_MANIFEST)
        platform = {"architecture": architecture, "os": "linux"}
        entries.append(descriptor(child_type, payload, platform=platform))
    return json.dumps(
        {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}, indent=2
    ).encode()


# =========================================================================================
# A Distribution store written by hand, through a storage driver


@dataclass
class Image:
    manifest: bytes
    config: bytes
    layers: list[bytes]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> list[bytes]:
        return [self.config, *self.layers]


class Store:
    """Writes blobs and link files the way registry:2 lays them out."""

    def __init__(self, storage: StorageDriver) -> None:
        self.storage = storage

    async def blob(self, data: bytes) -> Digest:
        digest = Digest.parse(sha256(data))
        await self.storage.put_content(paths.blob_data(digest), data)
        return digest

    async def link_layer(self, repo: str, data: bytes) -> None:
        digest = await self.blob(data)
        await self.storage.put_content(paths.layer_link(repo, digest), str(digest).encode())

    async def link_revision(self, repo: str, payload: bytes) -> Digest:
        digest = await self.blob(payload)
        await self.storage.put_content(
            paths.manifest_revision_link(repo, digest), str(digest).encode()
        )
        return digest

    async def tag(self, repo: str, tag: str, payload: bytes) -> None:
        digest = Digest.parse(sha256(payload))
        await self.storage.put_content(paths.tag_current_link(repo, tag), str(digest).encode())
        await self.storage.put_content(
            paths.tag_index_link(repo, tag, digest), str(digest).encode()
        )

    async def image(
        self,
        repo: str,
        tag: str | None = None,
        *,
        architecture: str = "amd64",
        media_type: str = OCI_MANIFEST,
        link_blobs: bool = True,
    ) -> Image:
        layers = [layer_bytes(b"base layer"), layer_bytes(os.urandom(64))]
        config = config_bytes(layers, architecture)
        image = Image(image_manifest(config, layers, media_type), config, layers)
        for blob in image.blobs:
            if link_blobs:
                await self.link_layer(repo, blob)
            else:
                await self.blob(blob)
        await self.link_revision(repo, image.manifest)
        if tag is not None:
            await self.tag(repo, tag, image.manifest)
        return image


@pytest.fixture(params=["filesystem", "inmemory", "azure", "gcs"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    """A store of each kind; the object stores on the session's emulators."""
    if request.param == "filesystem":
        driver: StorageDriver = FilesystemDriver(tmp_path / "store")
    elif request.param == "inmemory":
        driver = InMemoryDriver()
    else:
        make = make_azure_driver if request.param == "azure" else make_gcs_driver
        driver = make(request)
    yield driver
    await driver.close()


@pytest.fixture
def store(storage: StorageDriver) -> Store:
    return Store(storage)


@pytest.fixture
async def metadata() -> AsyncIterator[MetadataStore]:
    engine = create_engine("sqlite://")
    await migrate(engine)
    store = MetadataStore(engine)
    try:
        yield store
    finally:
        await store.close()


async def dump(metadata: MetadataStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for comparing whole databases."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with metadata.engine.connect() as connection:
        for table in schema.metadata.sorted_tables:
            rows = (await connection.execute(select(table))).all()
            tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return tables


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    c = report.imported
    return (c.repositories, c.tags, c.manifests, c.blob_links)


def problem_with(report: Report, *words: str) -> str:
    found = [p for p in report.problems if all(w in p for w in words)]
    assert len(found) == 1, (words, report.problems)
    return found[0]


async def test_imports_images_indexes_tags_and_nested_names(
    store: Store, metadata: MetadataStore
) -> None:
    plain = await store.image("plain", "v1")
    await store.tag("plain", "latest", plain.manifest)
    amd = await store.image("team/app/api", architecture="amd64")
    arm = await store.image("team/app/api", architecture="arm64")
    index = index_manifest([(amd.manifest, "amd64"), (arm.manifest, "arm64")])
    await store.link_revision("team/app/api", index)
    await store.tag("team/app/api", "multi", index)
    docker = await store.image("team/app", "1.0", media_type=DOCKER_MANIFEST)

    report = await import_store(metadata, store.storage)

    assert report.problems == []
    assert counts(report) == (3, 4, 5, 3 + 5 + 3)
    assert await metadata.list_repositories(None, None) == ["plain", "team/app", "team/app/api"]
    assert await metadata.list_tags("plain", None, None) == ["latest", "v1"]
    found = await metadata.get_manifest("team/app/api", "multi", by_digest=False)
    assert found is not None and found.payload == index and found.media_type == OCI_INDEX
    found = await metadata.get_manifest("team/app", docker.digest, by_digest=True)
    assert found is not None and found.media_type == DOCKER_MANIFEST
    for blob in plain.blobs:
        assert await metadata.repository_blob_size("plain", sha256(blob)) == len(blob)
    assert "Imported 3 repositories, 4 tags, 5 manifests, 11 blob links." in report.summary()


async def test_second_import_changes_nothing(store: Store, metadata: MetadataStore) -> None:
    image = await store.image("app", "v1")
    await store.tag("app", "v2", image.manifest)
    await store.image("app", "v3", link_blobs=False)  # linked on import, with a notice
    first = await import_store(metadata, store.storage)
    before = await dump(metadata)

    second = await import_store(metadata, store.storage)

    assert await dump(metadata) == before
    assert counts(second) == (0, 0, 0, 0)
    present = second.present
    assert (present.repositories, present.tags, present.manifests, present.blob_links) == (
        counts(first)
    )
    assert second.problems == []  # the notice was about linking, which is done now


async def test_import_again_moves_tags_and_keeps_what_dockyard_added(
    store: Store, metadata: MetadataStore
) -> None:
    first = await store.image("app", "v1")
    await import_store(metadata, store.storage)
    pushed_to_dockyard = await metadata.get_manifest("app", first.digest, by_digest=True)
    assert pushed_to_dockyard is not None
    await metadata.put_manifest(
        "app",
        await _record_of(store, "app", first),
        tag="dockyard-only",
    )
    second = await store.image("app")
    await store.tag("app", "v1", second.manifest)  # v1 moved in registry:2

    report = await import_store(metadata, store.storage)

    assert report.problems == []
    assert (report.imported.tags, report.imported.manifests) == (1, 1)
    moved = await metadata.get_manifest("app", "v1", by_digest=False)
    assert moved is not None and moved.digest == second.digest
    assert await metadata.list_tags("app", None, None) == ["dockyard-only", "v1"]


async def _record_of(store: Store, repo: str, image: Image) -> ManifestToStore:
    from dockyard.oci.manifest import parse_manifest
    from dockyard.registry.manifests import manifest_to_store

    digest = Digest.parse(image.digest)
    return manifest_to_store(digest, parse_manifest(image.manifest, None), image.manifest)


async def test_run_import_on_inmemory_storage_has_nothing_to_do(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yml"
    config_file.write_text("version: 0.1\nstorage:\n  inmemory:\n")
    config = load_config(config_file).config

    report = await run_import(config, dry_run=False)

    assert report.refused == "storage driver inmemory holds no registry:2 store: nothing to import"
    assert report.exit_status == EXIT_REFUSED


async def test_dry_run_writes_nothing_and_counts_the_same(
    store: Store, metadata: MetadataStore
) -> None:
    await store.image("app", "v1")
    await store.image("other/app", "v1", link_blobs=False)
    before = await dump(metadata)

    dry = await import_store(metadata, store.storage, dry_run=True)
    without_database = await import_store(None, store.storage, dry_run=True)

    assert await dump(metadata) == before
    real = await import_store(metadata, store.storage)
    assert counts(dry) == counts(without_database) == counts(real) == (2, 2, 2, 6)
    assert dry.problems == without_database.problems == real.problems
    assert dry.summary().startswith("Dry run: nothing was changed.\nWould import 2 repositories")


async def test_real_import_needs_a_database(store: Store) -> None:
    with pytest.raises(ValueError, match="metadata store"):
        await import_store(None, store.storage)


async def test_index_is_imported_after_its_children_even_nested(
    store: Store, metadata: MetadataStore
) -> None:
    child = await store.image("app")
    inner = index_manifest([(child.manifest, "amd64")])
    outer = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_INDEX, inner)]}
    ).encode()
    await store.link_revision("app", inner)
    await store.link_revision("app", outer)
    await store.tag("app", "outer", outer)

    report = await import_store(metadata, store.storage)

    assert report.problems == []
    assert counts(report)[1:3] == (1, 3)
    assert await metadata.get_manifest("app", "outer", by_digest=False) is not None


async def test_index_with_missing_child_is_skipped_with_its_tags(
    store: Store, metadata: MetadataStore
) -> None:
    child = await store.image("app")
    ghost = Image(b'{"schemaVersion": 2}', b"", [])  # never stored
    index = index_manifest([(child.manifest, "amd64"), (ghost.manifest, "arm64")])
    await store.link_revision("app", index)
    await store.tag("app", "multi", index)

    report = await import_store(metadata, store.storage)

    problem_with(report, f"index {sha256(index)}", ghost.digest, "skipped")
    problem_with(report, "tag multi", "which was skipped")
    assert await metadata.get_manifest("app", sha256(index), by_digest=True) is None
    assert await metadata.get_manifest("app", child.digest, by_digest=True) is not None


async def test_link_to_missing_blob_is_skipped(store: Store, metadata: MetadataStore) -> None:
    gone = Digest.parse(sha256(b"garbage-collected"))
    await store.storage.put_content(paths.layer_link("app", gone), str(gone).encode())
    await store.image("app", "v1")

    report = await import_store(metadata, store.storage)

    problem_with(report, f"blob {gone} is linked but its data is missing")
    assert await metadata.repository_blob_size("app", str(gone)) is None
    assert counts(report) == (1, 1, 1, 3)


async def test_manifest_using_a_missing_blob_is_skipped(
    store: Store, metadata: MetadataStore
) -> None:
    image = await store.image("app", "v1")
    await store.storage.delete(paths.blob_data(Digest.parse(sha256(image.layers[1]))))
    await store.storage.delete(paths.layer_link("app", Digest.parse(sha256(image.layers[1]))))

    report = await import_store(metadata, store.storage)

    problem_with(report, f"manifest {image.digest} uses blobs whose data is missing")
    problem_with(report, "tag v1", "which was skipped")
    assert await metadata.get_manifest("app", image.digest, by_digest=True) is None


async def test_unlinked_blob_of_a_manifest_is_linked_with_a_notice(
    store: Store, metadata: MetadataStore
) -> None:
    image = await store.image("app", "v1")
    layer = Digest.parse(sha256(image.layers[1]))
    await store.storage.delete(paths.layer_link("app", layer))  # DELETE /v2/app/blobs/...

    report = await import_store(metadata, store.storage)

    problem_with(report, f"blob {layer} is used by manifest {image.digest}", "linked it")
    assert await metadata.repository_blob_size("app", str(layer)) == len(image.layers[1])
    assert await metadata.get_manifest("app", "v1", by_digest=False) is not None
    # nothing was written to the store: the link file is still absent
    assert await store.storage.stat(paths.layer_link("app", layer)) is None


async def test_schema1_manifest_is_skipped_with_its_tag(
    store: Store, metadata: MetadataStore
) -> None:
    await store.link_layer("legacy", b"layer")
    schema1 = json.dumps(
        {
            "schemaVersion": 1,
            "name": "legacy",
            "tag": "old",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": sha256(b"layer")}],
            "history": [{"v1Compatibility": "{}"}],
        }
    ).encode()
    await store.link_revision("legacy", schema1)
    await store.tag("legacy", "old", schema1)
    await store.image("legacy", "new")

    report = await import_store(metadata, store.storage)

    problem_with(report, f"manifest {sha256(schema1)}", "schema1")
    problem_with(report, "tag old", "which was skipped")
    assert await metadata.list_tags("legacy", None, None) == ["new"]


async def test_corrupt_manifest_bytes_are_skipped(store: Store, metadata: MetadataStore) -> None:
    image = await store.image("app", "v1")
    await store.storage.put_content(
        paths.blob_data(Digest.parse(image.digest)), image.manifest + b" "
    )

    report = await import_store(metadata, store.storage)

    problem_with(report, f"manifest {image.digest}", "do not match the digest")
    assert await metadata.get_manifest("app", image.digest, by_digest=True) is None


async def test_problems_come_in_store_order(store: Store, metadata: MetadataStore) -> None:
    broken = []
    for _ in range(40):  # more than READ_CONCURRENCY, read concurrently
        image = await store.image("app")
        await store.storage.put_content(paths.blob_data(Digest.parse(image.digest)), b"{}")
        broken.append(image.digest)

    report = await import_store(metadata, store.storage)

    assert [p.split()[2].rstrip(":") for p in report.problems] == sorted(broken)


async def test_bad_links_names_and_tags_are_reported(store: Store, metadata: MetadataStore) -> None:
    await store.image("good", "v1")
    await store.image("Bad", "v1")  # registry:2 would never have written an upper-case name
    image = await store.image("good")
    other = Digest.parse(sha256(b"another"))
    await store.storage.put_content(
        f"{paths.repository('good')}/_layers/sha256/{other.hex}/link", b"not a digest"
    )
    wrong = Digest.parse(image.digest)
    await store.storage.put_content(
        f"{paths.repository('good')}/_manifests/revisions/sha256/{other.hex}/link",
        str(wrong).encode(),
    )
    await store.storage.put_content(f"{paths.tags_dir('good')}/-dash/current/link", b"x")
    await store.storage.put_content(
        paths.tag_current_link("good", "dangling"), sha256(b"nothing").encode()
    )

    report = await import_store(metadata, store.storage)

    problem_with(report, "'Bad'", "not a valid repository name")
    problem_with(report, "does not hold a digest")
    problem_with(report, f"holds {wrong}, not the digest its path names")
    problem_with(report, "'-dash'", "not a valid tag name")
    problem_with(report, "tag dangling", "not a manifest of the repository")
    assert await metadata.list_repositories(None, None) == ["good"]
    assert await metadata.list_tags("good", None, None) == ["v1"]


async def test_manifest_linked_under_layers_by_distribution_2_1(
    store: Store, metadata: MetadataStore
) -> None:
    image = await store.image("old")
    digest = Digest.parse(image.digest)
    await store.storage.delete(paths.manifest_revision_link("old", digest))
    await store.link_layer("old", image.manifest)
    await store.tag("old", "v1", image.manifest)

    report = await import_store(metadata, store.storage)

    assert report.problems == []
    found = await metadata.get_manifest("old", "v1", by_digest=False)
    assert found is not None and found.digest == image.digest


async def test_empty_store_is_reported(store: Store, metadata: MetadataStore) -> None:
    report = await import_store(metadata, store.storage)
    problem_with(report, "no registry:2 repositories found")
    assert counts(report) == (0, 0, 0, 0)


async def test_leftovers_of_deletes_and_uploads(tmp_path: Path, metadata: MetadataStore) -> None:
    """What registry:2 leaves on disk: empty <hex> directories after a delete, an empty
    repository after all its manifests went, unfinished uploads."""
    storage = FilesystemDriver(tmp_path / "store")
    store = Store(storage)
    image = await store.image("app", "v1")
    deleted = await store.image("app")
    root = tmp_path / "store" / paths.repository("app").lstrip("/")
    (root / "_manifests/revisions/sha256" / deleted.digest[7:] / "link").unlink()
    (root / "_layers/sha256" / sha256(deleted.layers[1])[7:] / "link").unlink()
    (root / "_uploads/0d0e3a4c-upload").mkdir(parents=True)
    (root / "_uploads/0d0e3a4c-upload/data").write_bytes(b"partial")
    (root / "_uploads/dockyards-own").mkdir()  # an upload Dockyard itself is receiving
    await metadata.create_upload("dockyards-own", "app")
    emptied = tmp_path / "store" / paths.tags_dir("emptied").lstrip("/")
    emptied.mkdir(parents=True)

    report = await import_store(metadata, storage)

    assert report.problems == [
        "1 unfinished upload of registry:2 left in _uploads directories under "
        f"{tmp_path / 'store/docker/registry/v2/repositories'}: Dockyard does not "
        "resume them (clients start those uploads again) and does not purge them; delete "
        "them before Dockyard serves, as its own uploads go to the same directories"
    ]
    assert await metadata.list_repositories(None, None) == ["app", "emptied"]
    assert await metadata.list_tags("emptied", None, None) == []
    assert await metadata.get_manifest("app", deleted.digest, by_digest=True) is None
    assert await metadata.get_manifest("app", image.digest, by_digest=True) is not None


async def test_unfinished_upload_in_a_repository_without_content_is_counted(
    store: Store, metadata: MetadataStore
) -> None:
    """A push that never finished its first blob leaves a repository of only _uploads."""
    await store.image("app", "v1")
    await store.storage.put_content(paths.upload_data("team/pending", "c0ffee-upload"), b"part")

    report = await import_store(metadata, store.storage)

    problem_with(report, "1 unfinished upload of registry:2")
    assert await metadata.list_repositories(None, None) == ["app"]
    assert report.exit_status == EXIT_PROBLEMS


async def test_warnings_name_where_the_files_are(
    store: Store, metadata: MetadataStore, tmp_path: Path
) -> None:
    await store.image("app", "v1")
    bad = Digest.parse(sha256(b"bad"))
    await store.storage.put_content(paths.layer_link("app", bad), b"not a digest")

    report = await import_store(metadata, store.storage)

    warning = problem_with(report, "does not hold a digest")
    if isinstance(store.storage, FilesystemDriver):  # the real file, under rootdirectory
        where = str(tmp_path / "store" / paths.layer_link("app", bad).lstrip("/"))
    else:
        where = f"{paths.layer_link('app', bad)} (in the {store.storage.name} storage)"
    assert f" {where} " in warning


def error_of(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a command's standard error."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def write_store_config(path: Path, root: Path) -> Path:
    path.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n")
    return path


@pytest.mark.parametrize("dry_run", [False, True])
def test_missing_rootdirectory_is_refused_and_nothing_created(
    tmp_path: Path, dry_run: bool
) -> None:
    root = tmp_path / "var/lib/registyr"  # mistyped
    config = write_store_config(tmp_path / "config.yml", root)

    result = dockyard("import", *(["--dry-run"] if dry_run else []), str(config))

    assert result.returncode == EXIT_REFUSED, result
    assert f"refused: storage.filesystem.rootdirectory {root} does not exist" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "var").exists()


def test_root_without_a_registry2_store_is_refused(tmp_path: Path) -> None:
    """An existing directory that is not a registry:2 root gets no database either."""
    root = tmp_path / "var/lib"
    (root / "registry/docker/registry/v2/repositories/app/_manifests").mkdir(parents=True)
    config = write_store_config(tmp_path / "config.yml", root)

    result = dockyard("import", str(config))

    assert result.returncode == EXIT_REFUSED, result
    assert f"{root / 'docker/registry/v2/repositories'} does not exist or is empty" in (
        result.stderr
    )
    assert sorted(p.name for p in root.iterdir()) == ["registry"]


async def test_exit_status_clean_then_with_problems(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = Store(FilesystemDriver(root))
    await store.image("app", "v1")
    config = write_store_config(tmp_path / "config.yml", root)

    clean = dockyard("import", str(config))
    await store.storage.put_content(paths.tag_current_link("app", "broken"), b"junk")
    with_problems = dockyard("import", str(config))

    assert clean.returncode == EXIT_CLEAN, clean
    assert warnings_of(clean) == []
    assert with_problems.returncode == EXIT_PROBLEMS, with_problems
    assert "warning: app: tag broken: current/link does not hold a digest" in (with_problems.stderr)


# =========================================================================================
# An import onto a store Dockyard has served writes to


async def tag_targets(database: Path, repo: str) -> dict[str, str]:
    store = MetadataStore(create_engine(f"sqlite:///{database}"))
    try:
        return await store.tag_targets(repo)
    finally:
        await store.close()


async def served_write_at(database: Path) -> object:
    store = MetadataStore(create_engine(f"sqlite:///{database}"))
    try:
        return await store.served_write_at()
    finally:
        await store.close()


async def test_import_again_after_dockyard_served_writes_refuses_unless_forced(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    store = Store(FilesystemDriver(root))
    first = await store.image("app", "v1")
    doomed = await store.image("app", "v2")
    port = free_port()
    config = write_config(tmp_path / "config.yml", store=root, port=port)
    database = root / "dockyard.db"
    assert dockyard("import", str(config)).returncode == EXIT_CLEAN
    assert await served_write_at(database) is None  # the import's writes are not served

    server = RegistryServer("dockyard", tmp_path, port=port)
    server.start()
    try:
        layers = [layer_bytes(b"pushed to dockyard")]
        config_blob = config_bytes(layers)
        pushed = image_manifest(config_blob, layers)
        for blob in [config_blob, *layers]:
            server.push_blob("app", blob)
        assert server.put_manifest("app", "v1", pushed, OCI_MANIFEST).status == 201
        assert server.request("DELETE", f"/v2/app/manifests/{doomed.digest}").status == 202
    finally:
        server.stop()
    served = await tag_targets(database, "app")
    assert served == {"v1": sha256(pushed)}
    before = sqlite_dump(database)

    dry = dockyard("import", "--dry-run", str(config))
    refused = dockyard("import", str(config))

    since = await served_write_at(database)
    assert isinstance(since, datetime)
    for result in (dry, refused):
        assert result.returncode == EXIT_REFUSED, result
        assert result.stdout == ""
        message = result.stderr
        assert f"served writes to this store since {since:%Y-%m-%d %H:%M:%S} UTC" in message
        assert "it would set 2 tags" in message and "add 1 manifest" in message
        assert "--force" in message
    assert error_of(dry).startswith("error: dry run: refused: Dockyard has served writes")
    assert error_of(refused).startswith("error: refused: Dockyard has served writes")
    assert sqlite_dump(database) == before

    forced = dockyard("import", "--force", str(config))

    assert forced.returncode == EXIT_CLEAN, forced
    assert "Imported 0 repositories, 2 tags, 1 manifest, 0 blob links." in forced.stdout
    assert await tag_targets(database, "app") == {"v1": first.digest, "v2": doomed.digest}
    assert await served_write_at(database) == since  # still served: refused again next time
    assert dockyard("import", str(config)).returncode == EXIT_REFUSED


# =========================================================================================
# End to end: registry:2 → dockyard import → dockyard serve, compared over HTTP

BIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin:" + os.environ.get("PATH", "")
ACCEPT_ALL = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, SCHEMA1_SIGNED])


def binary(name: str, package: str) -> str:
    path = shutil.which(name, path=BIN_PATH)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package {package})", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str | None
    digest: str | None  # Docker-Content-Digest
    length: str | None
    body_sha: str
    error: str | None  # the first error code of an error body

    @classmethod
    def of(cls, status: int, headers: dict[str, str], body: bytes) -> Reply:
        error = None
        if status >= 400 and body:
            try:
                error = json.loads(body)["errors"][0]["code"]
            except (ValueError, KeyError, IndexError, TypeError):
                error = "(not a registry error body)"
        return cls(
            status,
            headers.get("content-type"),
            headers.get("docker-content-digest"),
            headers.get("content-length"),
            sha256(body),
            error,
        )


class Server:
    """A registry process on 127.0.0.1, stopped by its PID."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.port = port
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        self.log = log
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{argv[0]} exited:\n{log.read_text()[-3000:]}")
            try:
                if self.request("GET", "/v2/")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{argv} not ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            connection.close()

    def reply(self, method: str, path: str, accept: str | None = None) -> Reply:
        return Reply.of(*self.request(method, path, {"Accept": accept} if accept else None))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


class Layout:
    """An OCI image layout on disk, for ``skopeo copy oci:DIR:TAG``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs/sha256").mkdir(parents=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.refs: list[dict[str, Any]] = []
        self._write_index()

    def _write_index(self) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.refs}
        (self.root / "index.json").write_text(json.dumps(index))

    def blob(self, data: bytes) -> None:
        (self.root / "blobs/sha256" / sha256(data)[7:]).write_bytes(data)

    def image(self, architecture: str = "amd64") -> Image:
        layers = [layer_bytes(b"shared base layer"), layer_bytes(os.urandom(2048))]
        config = config_bytes(layers, architecture)
        image = Image(image_manifest(config, layers), config, layers)
        for blob in [*image.blobs, image.manifest]:
            self.blob(blob)
        return image

    def tag(self, tag: str, payload: bytes, media_type: str) -> str:
        self.refs = [r for r in self.refs if r["annotations"][REF_NAME] != tag]
        self.refs.append(descriptor(media_type, payload, annotations={REF_NAME: tag}))
        self._write_index()
        return f"oci:{self.root}:{tag}"


@dataclass
class Migration:
    """Everything observed during one registry:2 → Dockyard migration."""

    store: Path
    registry2: dict[str, Reply] = field(default_factory=dict)
    dockyard: dict[str, Reply] = field(default_factory=dict)
    registry2_catalog: list[str] = field(default_factory=list)
    dockyard_catalog: list[str] = field(default_factory=list)
    registry2_tags: dict[str, list[str] | None] = field(default_factory=dict)
    dockyard_tags: dict[str, list[str] | None] = field(default_factory=dict)
    dry_run: subprocess.CompletedProcess[str] | None = None
    first: subprocess.CompletedProcess[str] | None = None
    second: subprocess.CompletedProcess[str] | None = None
    database_exists_after_dry_run: bool = True
    files_before: dict[str, tuple[str, int]] = field(default_factory=dict)
    files_after_dry_run: dict[str, tuple[str, int]] = field(default_factory=dict)
    files_after_import: dict[str, tuple[str, int]] = field(default_factory=dict)
    database_after_first: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    database_after_second: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    schema1_digest: str = ""
    deleted_digest: str = ""
    unlinked_layer: str = ""
    unlinked_layer_bytes: bytes = b""
    seconds: dict[str, float] = field(default_factory=dict)


def store_files(store: Path) -> dict[str, tuple[str, int]]:
    """Every file of the store but Dockyard's database: content hash and mtime."""
    found = {}
    for path in sorted(store.rglob("*")):
        if path.is_file() and not path.name.startswith("dockyard.db"):
            found[str(path.relative_to(store))] = (
                sha256(path.read_bytes()),
                path.stat().st_mtime_ns,
            )
    return found


def sqlite_dump(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    connection = sqlite3.connect(database)
    try:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {
            table: sorted(connection.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in tables
        }
    finally:
        connection.close()


Request = tuple[str, str, str | None]  # method, path, Accept


class Requester(Protocol):
    """What the observation needs of a server: :class:`Server`, or an adapter."""

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]: ...

    def reply(self, method: str, path: str, accept: str | None = None) -> Reply: ...


def plan_requests(
    server: Requester, deleted: tuple[str, str], tags: dict[str, list[str]]
) -> list[Request]:
    """GET and HEAD of every tag, manifest and blob that ``server`` knows of, plus a deleted
    manifest (repository, digest), and manifests asked for as blobs (never served as blobs)."""
    manifests: dict[tuple[str, str], bytes] = {}
    requests: list[Request] = []
    for repo, repo_tags in tags.items():
        for tag in repo_tags:
            requests += [(m, f"/v2/{repo}/manifests/{tag}", ACCEPT_ALL) for m in ("GET", "HEAD")]
            status, _, body = server.request(
                "GET", f"/v2/{repo}/manifests/{tag}", {"Accept": ACCEPT_ALL}
            )
            assert status == 200, (repo, tag, status, body)
            manifests[(repo, sha256(body))] = body
    for (repo, _), body in list(manifests.items()):
        for child in json.loads(body).get("manifests", []):
            status, _, child_body = server.request(
                "GET", f"/v2/{repo}/manifests/{child['digest']}", {"Accept": ACCEPT_ALL}
            )
            assert status == 200, (repo, child, status)
            manifests[(repo, child["digest"])] = child_body
    digests = {*manifests, deleted}
    blobs: set[tuple[str, str]] = set()
    for (repo, digest), body in manifests.items():
        parsed = json.loads(body)
        if parsed.get("schemaVersion") == 2 and "config" in parsed:
            blobs.add((repo, parsed["config"]["digest"]))
            blobs.update((repo, layer["digest"]) for layer in parsed["layers"])
        blobs.add((repo, digest))
    for repo, digest in sorted(digests):
        requests += [(m, f"/v2/{repo}/manifests/{digest}", ACCEPT_ALL) for m in ("GET", "HEAD")]
    for repo, digest in sorted(blobs):
        requests += [(m, f"/v2/{repo}/blobs/{digest}", None) for m in ("GET", "HEAD")]
    return requests


def observe(server: Requester, requests: list[Request]) -> dict[str, Reply]:
    return {
        f"{method} {path}": server.reply(method, path, accept) for method, path, accept in requests
    }


def list_tags(server: Requester, repos: list[str]) -> dict[str, list[str] | None]:
    listed: dict[str, list[str] | None] = {}
    for repo in repos:
        status, _, body = server.request("GET", f"/v2/{repo}/tags/list")
        assert status == 200, (repo, status, body)
        listed[repo] = json.loads(body)["tags"]
    return listed


def dockyard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def migration(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Migration]:
    registry2_bin = binary("docker-registry", "docker-registry")
    skopeo_bin = binary("skopeo", "skopeo")
    work = tmp_path_factory.mktemp("import")
    store = work / "store"
    port = free_port()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {store}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        # lets registry:2 accept a schema1 push, as older registries did
        "compatibility:\n  schema1:\n    enabled: true\n"
    )
    home = work / "home"
    home.mkdir()
    (work / "auth.json").write_text("{}")
    (work / "registries.conf").write_text("unqualified-search-registries = []\n")
    (work / "policy.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    env = {
        "PATH": BIN_PATH,
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "REGISTRY_AUTH_FILE": str(work / "auth.json"),
        "CONTAINERS_REGISTRIES_CONF": str(work / "registries.conf"),
    }
    host = f"127.0.0.1:{port}"

    def skopeo(*args: str) -> None:
        argv = [skopeo_bin, "--policy", str(work / "policy.json"), *args]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, (argv, result.stdout, result.stderr)

    def push(source: str, destination: str, *extra: str) -> None:
        skopeo("copy", "--dest-tls-verify=false", *extra, source, f"docker://{host}/{destination}")

    migration = Migration(store)
    layout = Layout(work / "layout")
    started = time.monotonic()
    registry2 = Server([registry2_bin, "serve", str(config)], port, work / "registry2.log")
    try:
        one, two, doomed = layout.image(), layout.image(), layout.image()
        push(layout.tag("one", one.manifest, OCI_MANIFEST), "plain:v1")
        push(layout.tag("two", two.manifest, OCI_MANIFEST), "plain:v2")
        push(layout.tag("two", two.manifest, OCI_MANIFEST), "plain:latest")
        push(layout.tag("doomed", doomed.manifest, OCI_MANIFEST), "plain:gone")
        # registry:2 has no tag deletion: deleting a tag deletes its manifest (and tags)
        skopeo("delete", "--tls-verify=false", f"docker://{host}/plain:gone")
        migration.deleted_digest = doomed.digest

        docker = layout.image()
        push(
            layout.tag("docker", docker.manifest, OCI_MANIFEST), "team/app:1.0", "--format", "v2s2"
        )
        # unlink one layer: registry:2 keeps serving the manifest, but no longer the blob
        migration.unlinked_layer = sha256(docker.layers[1])
        migration.unlinked_layer_bytes = docker.layers[1]
        status, _, body = registry2.request(
            "DELETE", f"/v2/team/app/blobs/{migration.unlinked_layer}"
        )
        assert status == 202, body

        amd, arm = layout.image("amd64"), layout.image("arm64")
        index = index_manifest([(amd.manifest, "amd64"), (arm.manifest, "arm64")])
        layout.blob(index)
        multi = layout.tag("multi", index, OCI_INDEX)
        push(multi, "team/app/api:multi", "--all")
        push(multi, "team/app/api:stable", "--all")

        tools = layout.image()
        push(layout.tag("tools", tools.manifest, OCI_MANIFEST), "team-tools:v1")

        modern, legacy = layout.image(), layout.image()
        push(layout.tag("modern", modern.manifest, OCI_MANIFEST), "legacy:ok")
        push(layout.tag("legacy", legacy.manifest, OCI_MANIFEST), "legacy:s1", "--format", "v2s1")
        status, headers, _ = registry2.request(
            "HEAD", "/v2/legacy/manifests/s1", {"Accept": SCHEMA1_SIGNED}
        )
        assert status == 200 and headers["content-type"] == SCHEMA1_SIGNED
        migration.schema1_digest = headers["docker-content-digest"]

        emptied = layout.image()
        push(layout.tag("emptied", emptied.manifest, OCI_MANIFEST), "emptied:only")
        skopeo("delete", "--tls-verify=false", f"docker://{host}/emptied:only")
        migration.seconds["fill registry:2"] = time.monotonic() - started

        status, _, body = registry2.request("GET", "/v2/_catalog")
        migration.registry2_catalog = json.loads(body)["repositories"]
        migration.registry2_tags = list_tags(registry2, migration.registry2_catalog)
        tags = {repo: t or [] for repo, t in migration.registry2_tags.items()}
        requests = plan_requests(registry2, ("plain", migration.deleted_digest), tags)
        migration.registry2 = observe(registry2, requests)
    finally:
        registry2.stop()

    migration.files_before = store_files(store)
    migration.dry_run = dockyard("import", "--dry-run", str(config))
    migration.database_exists_after_dry_run = (store / "dockyard.db").exists()
    migration.files_after_dry_run = store_files(store)
    started = time.monotonic()
    migration.first = dockyard("import", str(config))
    migration.seconds["import"] = time.monotonic() - started
    migration.files_after_import = store_files(store)
    migration.database_after_first = sqlite_dump(store / "dockyard.db")
    migration.second = dockyard("import", str(config))
    migration.database_after_second = sqlite_dump(store / "dockyard.db")

    server = Server(
        [sys.executable, "-m", "dockyard", "serve", str(config)], port, work / "dockyard.log"
    )
    try:
        status, _, body = server.request("GET", "/v2/_catalog")
        assert status == 200, body
        migration.dockyard_catalog = json.loads(body)["repositories"]
        migration.dockyard_tags = list_tags(server, migration.registry2_catalog)
        migration.dockyard = observe(server, requests)
    finally:
        server.stop()
    yield migration


def comparable(key: str, reply: Reply) -> Reply:
    """What must match between two registries: errors by status and code (not message),
    blobs without their Content-Type."""
    if reply.status >= 400:
        return Reply(reply.status, None, None, None, "", reply.error)
    if "/blobs/" in key:
        return Reply(reply.status, None, reply.digest, reply.length, reply.body_sha, None)
    return reply


def summary_line(result: subprocess.CompletedProcess[str] | None, start: str) -> str:
    assert result is not None
    assert result.returncode in (EXIT_CLEAN, EXIT_PROBLEMS), result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(start)]
    assert len(lines) == 1, result.stdout
    return lines[0][len(start) :]


def warnings_of(result: subprocess.CompletedProcess[str] | None) -> list[str]:
    assert result is not None
    return [
        line.removeprefix("warning: ")
        for line in result.stderr.splitlines()
        if line.startswith("warning: ")
    ]


@pytest.mark.e2e
def test_import_counts_and_problems(migration: Migration) -> None:
    imported = summary_line(migration.first, "Imported ")
    # 6 repositories (emptied is one: registry:2 lists it), 8 tags, 8 manifests
    assert imported.startswith("6 repositories, 8 tags, 8 manifests, "), imported
    assert summary_line(migration.first, "Already in the database: ") == (
        "0 repositories, 0 tags, 0 manifests, 0 blob links."
    )
    problems = warnings_of(migration.first)
    assert len(problems) == 3, problems
    assert migration.first is not None and migration.first.returncode == EXIT_PROBLEMS
    assert any(
        f"legacy: manifest {migration.schema1_digest}" in p and "schema1" in p for p in problems
    ), problems
    assert any(p.startswith("legacy: tag s1 ") for p in problems), problems
    assert any(
        f"team/app: blob {migration.unlinked_layer} is used by manifest" in p for p in problems
    ), problems


@pytest.mark.e2e
def test_blob_links_are_the_store_links(migration: Migration) -> None:
    """The database links exactly what registry:2 linked, plus the layer it had unlinked."""
    prefix, middle = "docker/registry/v2/repositories/", "/_layers/sha256/"
    in_store = {
        (path[len(prefix) : path.index(middle)], "sha256:" + path.split("/")[-2])
        for path in migration.files_before
        if path.startswith(prefix) and middle in path and path.endswith("/link")
    }
    names = {row[0]: row[1] for row in migration.database_after_first["repositories"]}
    in_database = {
        (names[row[0]], row[1]) for row in migration.database_after_first["repository_blobs"]
    }
    assert in_database == in_store | {("team/app", migration.unlinked_layer)}
    assert len(in_database) == int(summary_line(migration.first, "Imported ").split()[-3])


@pytest.mark.e2e
def test_dry_run_reports_the_same_and_changes_nothing(migration: Migration) -> None:
    would = summary_line(migration.dry_run, "Would import ")
    assert would == summary_line(migration.first, "Imported ")
    assert warnings_of(migration.dry_run) == warnings_of(migration.first)
    assert migration.dry_run is not None and migration.dry_run.returncode == EXIT_PROBLEMS
    assert not migration.database_exists_after_dry_run
    assert migration.files_after_dry_run == migration.files_before


@pytest.mark.e2e
def test_import_leaves_blobs_and_links_untouched(migration: Migration) -> None:
    assert migration.files_after_import == migration.files_before


@pytest.mark.e2e
def test_second_import_is_a_no_op(migration: Migration) -> None:
    assert summary_line(migration.second, "Imported ") == (
        "0 repositories, 0 tags, 0 manifests, 0 blob links."
    )
    assert summary_line(migration.second, "Already in the database: ") == summary_line(
        migration.first, "Imported "
    )
    assert migration.database_after_second == migration.database_after_first
    # the blob it linked the first time is linked now; the schema1 image stays skipped
    assert len(warnings_of(migration.second)) == 2
    # Dockyard only imported and served reads: its own writes are not served writes
    assert migration.second is not None and "refused" not in migration.second.stderr


@pytest.mark.e2e
def test_catalog_and_tag_lists_match(migration: Migration) -> None:
    assert sorted(migration.dockyard_catalog) == sorted(migration.registry2_catalog)
    assert migration.registry2_tags["emptied"] is None  # registry:2 writes null
    expected = {repo: tags or [] for repo, tags in migration.registry2_tags.items()}
    expected["legacy"] = ["ok"]  # the schema1 tag is not imported
    assert {repo: tags or [] for repo, tags in migration.dockyard_tags.items()} == expected


@pytest.mark.e2e
def test_catalog_order_matches(migration: Migration) -> None:
    assert migration.dockyard_catalog == migration.registry2_catalog


@pytest.mark.e2e
def test_every_tag_manifest_and_blob_is_served_identically(migration: Migration) -> None:
    expected = dict(migration.registry2)
    # Known, intended differences:
    # 1. the schema1 image is not imported
    for key in [k for k in expected if "/legacy/manifests/" in k]:
        if key.endswith(("/s1", migration.schema1_digest)):
            expected[key] = migration.dockyard.get(key, expected[key])
            assert expected[key].status == 404, key
            assert expected[key].error in ("MANIFEST_UNKNOWN", None), key
    # 2. the layer registry:2 had unlinked is linked again (Dockyard's manifests always
    #    have their blobs), so Dockyard serves it where registry:2 answered 404
    for method in ("GET", "HEAD"):
        key = f"{method} /v2/team/app/blobs/{migration.unlinked_layer}"
        assert expected[key].status == 404
        data = migration.unlinked_layer_bytes
        served = migration.dockyard[key]
        assert served.status == 200, served
        assert served.digest == migration.unlinked_layer
        assert served.length == str(len(data))
        if method == "GET":
            assert served.body_sha == sha256(data)
        expected[key] = served

    got = {key: comparable(key, reply) for key, reply in migration.dockyard.items()}
    want = {key: comparable(key, reply) for key, reply in expected.items()}
    assert got.keys() == want.keys()
    different = {key: (want[key], got[key]) for key in want if want[key] != got[key]}
    assert not different, "\n".join(
        f"{key}\n  registry:2 {w}\n  dockyard   {g}" for key, (w, g) in different.items()
    )
    ok = [k for k, r in want.items() if r.status == 200]
    assert len(ok) > 50, len(ok)  # the comparison did cover the store
