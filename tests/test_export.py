"""``dockyard export``: registry:2's link files for what Dockyard holds (the rollback path).

Two halves:

* fast tests: images pushed through the registry service in-process (the aiohttp test
  client), or a registry:2 layout written by hand and imported, then
  :func:`dockyard.registry2.exporter.export_store`, and the link files checked one by one;
* end to end: the same pushes and deletes sent to the real ``docker-registry`` (Distribution
  2.8.2) and to ``dockyard serve``, whose export must give the same link files; and a
  rollback: registry:2 → import → Dockyard serves writes → export → registry:2 serves every
  tag and blob as Dockyard did, and its ``garbage-collect`` keeps everything tagged.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.registry.service import Registry
from dockyard.registry2.exporter import ExportReport, export_store
from dockyard.registry2.importer import import_store
from dockyard.registry2.reports import EXIT_CLEAN, EXIT_PROBLEMS, EXIT_REFUSED
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from tests.api.helpers import OCI_INDEX, Client, digest_of, push_image
from tests.e2e.server import RegistryServer, free_port, write_config
from tests.test_import import (
    ACCEPT_ALL,
    OCI_MANIFEST,
    Image,
    Reply,
    Store,
    binary,
    comparable,
    config_bytes,
    dockyard,
    error_of,
    image_manifest,
    index_manifest,
    layer_bytes,
    list_tags,
    observe,
    plan_requests,
    problem_with,
    sha256,
    store_files,
    write_store_config,
)

REPOSITORIES = paths.repositories_root()


async def links(storage: StorageDriver) -> dict[str, str]:
    """Every link file under the repositories root (path below it → content)."""
    return {
        path[len(REPOSITORIES) + 1 :]: (await storage.get_content(path)).decode()
        async for path in storage.walk(REPOSITORIES)
        if path.endswith("/link")
    }


async def files(storage: StorageDriver) -> dict[str, bytes]:
    """Every file of the store, by path."""
    return {path: await storage.get_content(path) async for path in storage.walk("/")}


def expected_links(
    blobs: dict[str, set[str]], manifests: dict[str, set[str]], tags: dict[str, dict[str, str]]
) -> dict[str, str]:
    """The link files registry:2 has for these blob links, manifests and tags."""
    found: dict[str, str] = {}
    for repo, digests in blobs.items():
        for d in digests:
            found[paths.layer_link(repo, Digest.parse(d))[len(REPOSITORIES) + 1 :]] = d
    for repo, digests in manifests.items():
        for d in digests:
            found[paths.manifest_revision_link(repo, Digest.parse(d))[len(REPOSITORIES) + 1 :]] = d
    for repo, targets in tags.items():
        for tag, d in targets.items():
            found[paths.tag_current_link(repo, tag)[len(REPOSITORIES) + 1 :]] = d
            found[paths.tag_index_link(repo, tag, Digest.parse(d))[len(REPOSITORIES) + 1 :]] = d
    return found


def written(report: ExportReport) -> tuple[int, int, int]:
    return (report.written.tags, report.written.manifests, report.written.blob_links)


def removed(report: ExportReport) -> tuple[int, int, int]:
    return (report.removed.tags, report.removed.manifests, report.removed.blob_links)


async def test_export_writes_the_links_of_what_dockyard_holds(
    client: Client, registry: Registry
) -> None:
    one, _, one_layers = await push_image(client, "app", "v1")
    amd, amd_manifest, _ = await push_image(client, "team/app", "amd64")
    arm, arm_manifest, _ = await push_image(client, "team/app", "arm64")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": n}
                for d, n in ((amd, len(amd_manifest)), (arm, len(arm_manifest)))
            ],
        }
    ).encode()
    response = await client.put(
        "/v2/team/app/manifests/multi", data=index, headers={"Content-Type": OCI_INDEX}
    )
    assert response.status == 201
    mounted = digest_of(one_layers[0])
    response = await client.post(f"/v2/other/blobs/uploads/?mount={mounted}&from=app")
    assert response.status == 201
    metadata = registry.metadata

    report = await export_store(metadata, registry.storage)

    names = ["app", "other", "team/app"]
    assert await metadata.list_repositories(None, None) == names
    want = expected_links(
        {n: await metadata.repository_blob_digests(n) for n in names},
        {n: await metadata.repository_manifest_digests(n) for n in names},
        {n: await metadata.tag_targets(n) for n in names},
    )
    assert await links(registry.storage) == want
    assert report.problems == [] and report.exit_status == EXIT_CLEAN
    assert report.repositories == 3
    assert written(report) == (4, 4, 3 + 1 + 6)
    assert removed(report) == (0, 0, 0)
    assert sha256(await registry.storage.get_content(paths.blob_data(Digest.parse(one)))) == one

    again = await export_store(metadata, registry.storage)

    assert written(again) == (0, 0, 0) and removed(again) == (0, 0, 0)
    in_place = again.in_place
    assert (in_place.tags, in_place.manifests, in_place.blob_links) == written(report)
    assert "Wrote 0 tags, 0 manifests, 0 blob links." in again.summary()


async def test_export_removes_what_dockyard_deleted_and_keeps_what_it_never_held(
    registry: Registry, client: Client
) -> None:
    storage, metadata = registry.storage, registry.metadata
    store = Store(storage)
    kept = await store.image("app", "v1")
    deleted = await store.image("app", "v2")
    untagged = await store.image("app", "v3")
    legacy_layer = b"a schema1 layer"
    await store.link_layer("legacy", legacy_layer)
    schema1 = json.dumps(
        {"schemaVersion": 1, "name": "legacy", "fsLayers": [{"blobSum": sha256(legacy_layer)}]}
    ).encode()
    await store.link_revision("legacy", schema1)
    await store.tag("legacy", "old", schema1)
    await store.image("legacy", "new")
    await import_store(metadata, storage)
    await store.image("ghost", "v1")  # pushed to registry:2 after the import
    await storage.put_content(f"{paths.tags_dir('app')}/-bad/current/link", b"x")
    unlinked = sha256(kept.layers[1])
    assert (await client.delete(f"/v2/app/manifests/{deleted.digest}")).status == 202
    assert (await client.delete("/v2/app/manifests/v3")).status == 202
    assert (await client.delete(f"/v2/app/blobs/{unlinked}")).status == 202
    before = await links(storage)

    report = await export_store(metadata, storage)

    after = await links(storage)
    gone = set(before) - set(after)
    app = f"{paths.repository('app')[len(REPOSITORIES) + 1 :]}"
    assert gone == {
        f"{app}/_manifests/revisions/sha256/{deleted.digest[7:]}/link",
        f"{app}/_manifests/tags/v2/current/link",
        f"{app}/_manifests/tags/v2/index/sha256/{deleted.digest[7:]}/link",
        f"{app}/_manifests/tags/v3/current/link",
        f"{app}/_manifests/tags/v3/index/sha256/{untagged.digest[7:]}/link",
        f"{app}/_layers/sha256/{unlinked[7:]}/link",
    }
    assert set(after) == set(before) - gone  # the rest was right already
    assert removed(report) == (2, 1, 1) and written(report) == (0, 0, 0)
    assert await storage.stat(paths.tag_dir("app", "v2") + "/current/link") is None
    assert await storage.list(paths.tag_dir("app", "v2")) == []  # the whole tag went
    # what Dockyard never held is left as it is, and said so
    assert "legacy/_manifests/tags/old/current/link" in after
    assert f"legacy/_manifests/revisions/sha256/{sha256(schema1)[7:]}/link" in after
    assert any(p.startswith("ghost/") for p in after)
    assert f"{app}/_manifests/tags/-bad/current/link" in after
    assert len(report.problems) == 3, report.problems
    problem_with(report, f"manifest {sha256(schema1)} is Docker schema1", "left as it is")
    problem_with(report, "repository 'ghost' is in the store but not in Dockyard's database")
    problem_with(report, "tag '-bad' is not a valid tag name: left as it is")
    assert report.exit_status == EXIT_PROBLEMS


async def test_dry_run_changes_nothing_and_counts_the_same(
    registry: Registry, client: Client
) -> None:
    storage = registry.storage
    await push_image(client, "app", "v1")
    await push_image(client, "app", "v2")
    await Store(storage).image("app", "registry2-only")
    before = await files(storage)

    dry = await export_store(registry.metadata, storage, dry_run=True)

    assert await files(storage) == before
    real = await export_store(registry.metadata, storage)
    assert (written(dry), removed(dry)) == (written(real), removed(real)) == ((2, 2, 6), (1, 1, 3))
    assert dry.summary().startswith("Dry run: nothing was changed.\nWould export 1 repository.")
    assert real.summary().startswith("Exported 1 repository.\nWrote 2 tags, 2 manifests")


async def test_missing_manifest_bytes_are_written_back(registry: Registry, client: Client) -> None:
    storage = registry.storage
    digest, manifest, _ = await push_image(client, "app", "v1")
    await storage.delete(paths.blob_data(Digest.parse(digest)))

    report = await export_store(registry.metadata, storage)

    assert report.restored_manifests == 1
    assert await storage.get_content(paths.blob_data(Digest.parse(digest))) == manifest
    assert "Wrote back the bytes of 1 manifest missing from the blob store." in report.summary()


async def test_blob_whose_data_is_gone_gets_no_link(registry: Registry, client: Client) -> None:
    storage = registry.storage
    _, _, layers = await push_image(client, "app", "v1")
    gone = digest_of(layers[0])
    await storage.delete(paths.blob_data(Digest.parse(gone)))

    report = await export_store(registry.metadata, storage)

    assert await storage.stat(paths.layer_link("app", Digest.parse(gone))) is None
    assert len(report.problems) == 1
    assert (
        f"app: blob {gone} is linked in Dockyard's database but its data is missing"
        in (report.problems[0])
    )


async def test_export_needs_a_store_and_a_database(tmp_path: Path) -> None:
    missing = write_store_config(tmp_path / "missing.yml", tmp_path / "nowhere")
    root = tmp_path / "store"
    await Store(FilesystemDriver(root)).image("app", "v1")
    no_database = write_store_config(tmp_path / "config.yml", root)

    for config, reason in (
        (
            missing,
            f"storage.filesystem.rootdirectory {tmp_path / 'nowhere'} does not exist (mistyped?)",
        ),
        (no_database, f"no Dockyard database at sqlite:///{root / 'dockyard.db'}"),
    ):
        result = dockyard("export", str(config))
        assert result.returncode == EXIT_REFUSED, result
        assert error_of(result) == f"error: refused: {reason}: nothing to export"
    assert not (tmp_path / "nowhere").exists() and not (root / "dockyard.db").exists()


# =========================================================================================
# End to end, with the real registry:2 (Debian's docker-registry, Distribution 2.8.2)


class Http:
    """A :class:`RegistryServer` seen through the observation helpers of test_import."""

    def __init__(self, server: RegistryServer) -> None:
        self.server = server

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        response = self.server.request(method, path, headers=headers)
        return response.status, response.headers, response.body

    def reply(self, method: str, path: str, accept: str | None = None) -> Reply:
        return Reply.of(*self.request(method, path, {"Accept": accept} if accept else None))


def new_image(architecture: str = "amd64") -> Image:
    layers = [layer_bytes(b"shared base layer"), layer_bytes(os.urandom(1024))]
    config = config_bytes(layers, architecture)
    return Image(image_manifest(config, layers), config, layers)


def push(server: RegistryServer, repo: str, reference: str, image: Image) -> None:
    for blob in image.blobs:
        server.push_blob(repo, blob)
    put(server, repo, reference, image.manifest, OCI_MANIFEST)


def put(server: RegistryServer, repo: str, reference: str, body: bytes, media_type: str) -> None:
    response = server.put_manifest(repo, reference, body, media_type)
    assert response.status == 201, (server.kind, repo, reference, response.status, response.body)


def delete(server: RegistryServer, path: str) -> None:
    response = server.request("DELETE", path)
    assert response.status == 202, (server.kind, path, response.status, response.body)


def registry2_binary() -> str:
    return binary("docker-registry", "docker-registry")


def link_files(store: Path) -> dict[str, str]:
    root = store / REPOSITORIES.lstrip("/")
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("link"))}


def without_tag_history(found: dict[str, str]) -> dict[str, str]:
    """Link files but the tag index entries of digests other than the tag's current one
    (registry:2 keeps every digest a tag has had; Dockyard keeps no history)."""
    current = {
        path.removesuffix("/current/link"): digest
        for path, digest in found.items()
        if path.endswith("/current/link")
    }
    kept = {}
    for path, content in found.items():
        tag, is_history, entry = path.partition("/index/")
        if is_history and current.get(tag) != entry.replace("/", ":", 1).removesuffix("/link"):
            continue
        kept[path] = content
    return kept


@pytest.mark.e2e
def test_export_gives_the_link_files_registry2_writes(tmp_path: Path) -> None:
    """The same pushes, mounts and deletes, sent to registry:2 and to Dockyard: Dockyard's
    export writes the link files registry:2 wrote (but the history of moved tags)."""
    one, two, amd, arm, other = (
        new_image(a) for a in ("amd64", "amd64", "amd64", "arm64", "s390x")
    )
    index = index_manifest([(amd.manifest, "amd64"), (arm.manifest, "arm64")])
    mounted = sha256(one.layers[0])
    stores = {}
    for kind in ("registry2", "dockyard"):
        workdir = tmp_path / kind
        workdir.mkdir()
        server = RegistryServer(kind, workdir)
        server.start()
        try:
            push(server, "app", "v1", one)
            push(server, "app", "v2", two)
            push(server, "team/app", amd.digest, amd)
            push(server, "team/app", arm.digest, arm)
            put(server, "team/app", "multi", index, OCI_INDEX)
            # the base layer, shared by every image, comes by a cross-repository mount
            response = server.request("POST", f"/v2/other/blobs/uploads/?mount={mounted}&from=app")
            assert response.status == 201, (kind, response.status, response.body)
            for blob in (other.config, other.layers[1]):
                server.push_blob("other", blob)
            put(server, "other", "latest", other.manifest, OCI_MANIFEST)
            put(server, "app", "v2", one.manifest, OCI_MANIFEST)  # v2 moves to one
            put(server, "app", "v3", two.manifest, OCI_MANIFEST)
            delete(server, f"/v2/app/manifests/{two.digest}")  # and v3 with it
            delete(server, f"/v2/app/blobs/{sha256(two.layers[1])}")
        finally:
            server.stop()
        stores[kind] = server.store
    exported = dockyard("export", str(tmp_path / "dockyard/config.yml"))
    assert exported.returncode == EXIT_CLEAN, exported.stderr

    registry2 = link_files(stores["registry2"])
    ours = link_files(stores["dockyard"])

    assert ours == without_tag_history(registry2)
    assert len(registry2) > len(ours)  # the old v2 entry: the comparison saw history
    assert len(ours) == 12 + 5 + 4 * 2, ours  # blob links, revisions, tags (2 links each)


@dataclass
class Rollback:
    """Everything observed: registry:2 → import → Dockyard serves writes → export →
    registry:2 again, then its garbage-collect."""

    store: Path
    deleted: Image
    dockyard: dict[str, Reply] = field(default_factory=dict)
    registry2: dict[str, Reply] = field(default_factory=dict)
    after_gc: dict[str, Reply] = field(default_factory=dict)
    dockyard_catalog: list[str] = field(default_factory=list)
    registry2_catalog: list[str] = field(default_factory=list)
    dockyard_tags: dict[str, list[str] | None] = field(default_factory=dict)
    registry2_tags: dict[str, list[str] | None] = field(default_factory=dict)
    import_again: subprocess.CompletedProcess[str] | None = None
    dry_run: subprocess.CompletedProcess[str] | None = None
    export: subprocess.CompletedProcess[str] | None = None
    export_again: subprocess.CompletedProcess[str] | None = None
    forced_import: subprocess.CompletedProcess[str] | None = None
    garbage_collect: subprocess.CompletedProcess[str] | None = None
    files_before_dry_run: dict[str, tuple[str, int]] = field(default_factory=dict)
    files_after_dry_run: dict[str, tuple[str, int]] = field(default_factory=dict)


def catalog(server: RegistryServer) -> list[str]:
    response = server.request("GET", "/v2/_catalog")
    assert response.status == 200, response.body
    return list(json.loads(response.body)["repositories"])


@pytest.fixture(scope="module")
def rollback(tmp_path_factory: pytest.TempPathFactory) -> Rollback:
    registry2_bin = registry2_binary()
    workdir = tmp_path_factory.mktemp("rollback")
    port = free_port()
    write_config(workdir / "config.yml", store=workdir / "store", port=port)
    config = str(workdir / "config.yml")
    registry2 = RegistryServer("registry2", workdir, port=port)
    served = RegistryServer("dockyard", workdir, port=port)
    kept, doomed, moved, amd, arm, fresh, untagged = (new_image() for _ in range(7))
    index = index_manifest([(amd.manifest, "amd64"), (arm.manifest, "arm64")])
    found = Rollback(workdir / "store", deleted=doomed)

    registry2.start()
    try:
        push(registry2, "base", "v1", kept)
        push(registry2, "base", "v2", doomed)
        push(registry2, "team/app", amd.digest, amd)
        push(registry2, "team/app", arm.digest, arm)
        put(registry2, "team/app", "multi", index, OCI_INDEX)
    finally:
        registry2.stop()
    imported = dockyard("import", config)
    assert imported.returncode == EXIT_CLEAN, imported.stderr

    served.start()
    try:
        push(served, "base", "v1", moved)  # v1 moves; kept stays, untagged
        delete(served, f"/v2/base/manifests/{doomed.digest}")  # v2 goes with it
        push(served, "fresh/app", "latest", fresh)
        push(served, "base", "doomed-tag", untagged)
        delete(served, "/v2/base/manifests/doomed-tag")  # a tag deletion (not in registry:2)
        put(served, "team/app", "stable", index, OCI_INDEX)
        found.dockyard_catalog = catalog(served)
        found.dockyard_tags = list_tags(Http(served), found.dockyard_catalog)
        tags = {repo: t or [] for repo, t in found.dockyard_tags.items()}
        requests = plan_requests(Http(served), ("base", doomed.digest), tags)
        requests += [
            (method, f"/v2/base/manifests/{tag}", ACCEPT_ALL)
            for tag in ("v2", "doomed-tag")
            for method in ("GET", "HEAD")
        ]
        requests += [
            (method, f"/v2/base/manifests/{digest}", ACCEPT_ALL)
            for digest in (kept.digest, untagged.digest)
            for method in ("GET", "HEAD")
        ]
        found.dockyard = observe(Http(served), requests)
    finally:
        served.stop()

    found.import_again = dockyard("import", config)
    found.files_before_dry_run = store_files(found.store)
    found.dry_run = dockyard("export", "--dry-run", config)
    found.files_after_dry_run = store_files(found.store)
    found.export = dockyard("export", config)
    found.export_again = dockyard("export", config)
    found.forced_import = dockyard("import", "--force", config)

    registry2.start()
    try:
        found.registry2_catalog = catalog(registry2)
        found.registry2_tags = list_tags(Http(registry2), found.registry2_catalog)
        found.registry2 = observe(Http(registry2), requests)
    finally:
        registry2.stop()
    found.garbage_collect = subprocess.run(
        [registry2_bin, "garbage-collect", config],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=registry2.environment(),
    )
    registry2.start()
    try:
        found.after_gc = observe(Http(registry2), requests)
    finally:
        registry2.stop()
    return found


@pytest.mark.e2e
def test_import_onto_the_store_dockyard_served_is_refused(rollback: Rollback) -> None:
    result = rollback.import_again
    assert result is not None and result.returncode == EXIT_REFUSED, result
    message = error_of(result)
    assert "Dockyard has served writes to this store since" in message
    assert "it would set 2 tags" in message and "--force" in message


@pytest.mark.e2e
def test_export_summary_and_dry_run(rollback: Rollback) -> None:
    assert rollback.dry_run is not None and rollback.export is not None
    assert rollback.dry_run.returncode == rollback.export.returncode == EXIT_CLEAN
    assert rollback.files_after_dry_run == rollback.files_before_dry_run
    lines = rollback.export.stdout.splitlines()
    assert lines[0] == "Exported 3 repositories."
    # v1 moved, fresh/app:latest, team/app:stable; 3 manifests pushed (one now untagged),
    # with their blobs: 2 + 2 in base (the shared layer was there), 3 in fresh/app
    assert lines[1] == "Wrote 3 tags, 3 manifests, 7 blob links."
    # tag v2 and its manifest (whose blob links stay, as in registry:2); doomed-tag was
    # pushed and deleted in Dockyard, so registry:2 never had it
    assert lines[2] == "Removed 1 tag, 1 manifest, 0 blob links."
    would = rollback.dry_run.stdout.splitlines()
    assert would[1:4] == [
        "Would export 3 repositories.",
        "Would write 3 tags, 3 manifests, 7 blob links.",
        "Would remove 1 tag, 1 manifest, 0 blob links.",
    ]


@pytest.mark.e2e
def test_export_again_and_import_after_it_change_nothing(rollback: Rollback) -> None:
    again, forced = rollback.export_again, rollback.forced_import
    assert again is not None and again.returncode == EXIT_CLEAN, again
    assert "Wrote 0 tags, 0 manifests, 0 blob links." in again.stdout
    assert "Removed 0 tags, 0 manifests, 0 blob links." in again.stdout
    # the link files now say what Dockyard holds: nothing to import from them
    assert forced is not None and forced.returncode == EXIT_CLEAN, forced
    assert "Imported 0 repositories, 0 tags, 0 manifests, 0 blob links." in forced.stdout


@pytest.mark.e2e
def test_registry2_serves_what_dockyard_served(rollback: Rollback) -> None:
    assert rollback.registry2_catalog == rollback.dockyard_catalog
    assert rollback.registry2_tags == rollback.dockyard_tags
    assert_same_replies(rollback.dockyard, rollback.registry2)
    deleted = f"GET /v2/base/manifests/{rollback.deleted.digest}"
    assert rollback.registry2[deleted].status == 404
    assert rollback.registry2["GET /v2/base/manifests/v2"].status == 404
    assert rollback.registry2["GET /v2/base/manifests/doomed-tag"].status == 404


@pytest.mark.e2e
def test_registry2_garbage_collect_keeps_everything_tagged(rollback: Rollback) -> None:
    gc = rollback.garbage_collect
    assert gc is not None
    assert gc.returncode == 0, gc.stdout[-3000:] + gc.stderr[-3000:]
    assert_same_replies(rollback.dockyard, rollback.after_gc)
    # what Dockyard deleted is garbage to registry:2 now: its manifest and its own layer
    for blob in (rollback.deleted.manifest, rollback.deleted.layers[1]):
        data = rollback.store / paths.blob_data(Digest.parse(sha256(blob))).lstrip("/")
        assert not data.exists(), data


def assert_same_replies(expected: dict[str, Reply], got: dict[str, Reply]) -> None:
    want = {key: comparable(key, reply) for key, reply in expected.items()}
    have = {key: comparable(key, reply) for key, reply in got.items()}
    assert have.keys() == want.keys()
    different = {key: (want[key], have[key]) for key in want if want[key] != have[key]}
    assert not different, "\n".join(
        f"{key}\n  dockyard   {w}\n  registry:2 {h}" for key, (w, h) in different.items()
    )
    assert sum(reply.status == 200 for reply in want.values()) > 40
