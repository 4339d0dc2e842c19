"""``dockyard sync`` and ``dockyard promote`` between a live Dockyard and a live
Distribution 2.8.2, in both directions: images pushed with skopeo arrive byte-identical
(``skopeo inspect --raw``), multi-arch indexes with their children, referrers with their
subject, a second run moves nothing, filters select, promotion mounts instead of copying."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.oci import mediatypes
from dockyard.remote import RemoteRegistry
from tests.e2e.clients import Skopeo
from tests.e2e.images import Image, ImageIndex, build_image
from tests.e2e.server import REPO_ROOT, RegistryServer, free_port

pytestmark = pytest.mark.e2e


def dockyard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )  # fmt: skip


def sync(src: RegistryServer, dest: RegistryServer, src_path: str, dest_path: str,
         *extra: str) -> str:  # fmt: skip
    result = dockyard("sync", f"{src.url}/{src_path}", f"{dest.url}/{dest_path}", *extra)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout.strip().splitlines()[-1]


def push_signature(server: RegistryServer, repo: str, subject: bytes) -> str:
    """An artifact whose ``subject`` is the manifest ``subject``, pushed by HTTP."""
    empty = b"{}"
    payload = b'{"critical": {"identity": "sync-test"}}'
    for blob in (empty, payload):
        server.push_blob(repo, blob)
    artifact = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": "application/vnd.dev.sigstore.bundle+json",
        "config": {"mediaType": mediatypes.OCI_EMPTY, "digest": digest(empty), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": digest(payload),
                    "size": len(payload)}],
        "subject": {"mediaType": mediatypes.OCI_MANIFEST, "digest": digest(subject),
                    "size": len(subject)},
    }  # fmt: skip
    body = json.dumps(artifact).encode()
    r = server.put_manifest(repo, digest(body), body, mediatypes.OCI_MANIFEST)
    assert r.status == 201, r.body
    return digest(body)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def referrers(server: RegistryServer, repo: str, subject: str) -> list[str]:
    async def listing() -> list[str]:
        async with RemoteRegistry(server.url) as client:
            return [r["digest"] for r in await client.referrers(repo, subject)]

    return asyncio.run(listing())


@pytest.mark.parametrize("direction", ["dockyard-to-registry2", "registry2-to-dockyard"])
def test_whole_images_arrive_byte_identical_and_a_rerun_moves_nothing(
    direction: str,
    dockyard_server: RegistryServer,
    registry2_server: RegistryServer,
    skopeo: Skopeo,
    image: Image,
    image_index: ImageIndex,
    repo: str,
) -> None:
    src, dest = (dockyard_server, registry2_server)
    if direction == "registry2-to-dockyard":
        src, dest = dest, src
    app, multi = f"{repo}/app", f"{repo}/multi"
    skopeo.copy(image.ref, src.docker_ref(app, "v1"))
    skopeo.copy(image_index.ref, src.docker_ref(multi, "v1"), "--all")
    manifest = skopeo.inspect_raw(src.docker_ref(app, "v1"))
    signature = push_signature(src, app, manifest)
    if src.kind == "registry2":  # no referrers API: the fallback tag lists the signature
        entry = {"mediaType": mediatypes.OCI_MANIFEST, "digest": signature, "size": 1}
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [entry]}
        ).encode()
        src.put_manifest(app, digest(manifest).replace(":", "-"), index, mediatypes.OCI_INDEX)

    first = sync(src, dest, repo, f"copied/{repo}")
    assert "0 errors" in first and "0 up to date" in first, first

    for name, tag in ((app, "v1"), (multi, "v1")):
        at_dest = skopeo.inspect_raw(dest.docker_ref(f"copied/{name}", tag))
        assert at_dest == skopeo.inspect_raw(src.docker_ref(name, tag))
    for child in image_index.index["manifests"]:
        raw = skopeo.inspect_raw(dest.docker_ref(f"copied/{multi}", child["digest"]))
        assert digest(raw) == child["digest"]
    assert signature in referrers(dest, f"copied/{app}", digest(manifest))

    again = sync(src, dest, repo, f"copied/{repo}")
    assert "0 copied" in again and "blobs 0 copied, 0 mounted" in again, again
    assert "0 B moved" in again, again


def test_filters_select_repositories_and_tags(
    dockyard_server: RegistryServer, registry2_server: RegistryServer, skopeo: Skopeo,
    tmp_path: Path, repo: str,
) -> None:  # fmt: skip
    for name, tags in (("web", ("1.0", "1.1", "dev")), ("db", ("1.0",)), ("tmp", ("1.0",))):
        built = build_image(tmp_path / name, "x", data_size=4096)
        for tag in tags:
            skopeo.copy(built.ref, dockyard_server.docker_ref(f"{repo}/{name}", tag))
    result = dockyard(
        "sync", "--quiet", "--include", "web", "--include", "d*", "--tags", r"1\.[0-9]+",
        "--exclude", r"web:1\.1", f"{dockyard_server.url}/{repo}",
        f"{registry2_server.url}/filtered/{repo}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 images, 2 copied" in result.stdout
    assert skopeo.list_tags(registry2_server.docker_repo(f"filtered/{repo}/web")) == ["1.0"]
    assert skopeo.list_tags(registry2_server.docker_repo(f"filtered/{repo}/db")) == ["1.0"]
    probe = registry2_server.request("GET", f"/v2/filtered/{repo}/tmp/tags/list")
    assert probe.status == 404


def test_dry_run_changes_nothing(
    dockyard_server: RegistryServer, registry2_server: RegistryServer, skopeo: Skopeo,
    image: Image, repo: str,
) -> None:  # fmt: skip
    skopeo.copy(image.ref, dockyard_server.docker_ref(repo, "v1"))
    result = dockyard("sync", "--dry-run", f"{dockyard_server.url}/{repo}",
                      f"{registry2_server.url}/dry/{repo}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "(dry run): 1 images, 1 to copy" in result.stdout
    assert registry2_server.request("GET", f"/v2/dry/{repo}/tags/list").status == 404


def upload_requests(server: RegistryServer, repo: str) -> dict[str, int]:
    """Blob upload requests to ``repo`` in Dockyard's access log, by kind."""
    counts = {"data": 0, "mounted": 0}
    for line in server.log_text().splitlines():
        if f" /v2/{repo}/blobs/uploads/" not in line:
            continue
        if '"PUT ' in line or '"PATCH ' in line:
            counts["data"] += 1
        elif '"POST ' in line and '" 201 ' in line:  # a POST that created the blob: a mount
            counts["mounted"] += 1
    return counts


def test_promote_within_a_registry_mounts_every_blob(
    dockyard_server: RegistryServer, skopeo: Skopeo, image: Image, repo: str
) -> None:
    skopeo.copy(image.ref, dockyard_server.docker_ref(f"{repo}/dev", "1.0"))
    result = dockyard(
        "promote", dockyard_server.ref(f"{repo}/dev", "1.0"), f"{repo}/prod:1.0",
        "--src-tls-verify=false",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "blobs 0 copied, 3 mounted" in result.stdout and "0 B moved" in result.stdout
    assert upload_requests(dockyard_server, f"{repo}/prod") == {"data": 0, "mounted": 3}
    assert skopeo.inspect_raw(dockyard_server.docker_ref(f"{repo}/prod", "1.0")) == (
        skopeo.inspect_raw(dockyard_server.docker_ref(f"{repo}/dev", "1.0"))
    )


def test_promote_across_registries_moves_only_what_is_missing(
    dockyard_server: RegistryServer, registry2_server: RegistryServer, skopeo: Skopeo,
    image: Image, repo: str,
) -> None:  # fmt: skip
    skopeo.copy(image.ref, dockyard_server.docker_ref(repo, "1.0"))
    first = dockyard("promote", f"{dockyard_server.url}/{repo}:1.0",
                     f"{registry2_server.url}/{repo}:1.0")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "blobs 3 copied" in first.stdout
    second = dockyard("promote", f"{dockyard_server.url}/{repo}:1.0",
                      f"{registry2_server.url}/{repo}:stable")  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "blobs 0 copied, 0 mounted, 3 skipped" in second.stdout, second.stdout


def test_bad_references_and_unreachable_registries_fail_in_one_line(
    dockyard_server: RegistryServer,
) -> None:
    bad = dockyard("promote", "not a ref", "x:1")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    assert len(bad.stderr.strip().splitlines()) == 1
    down = dockyard("sync", f"http://127.0.0.1:{free_port()}", dockyard_server.url)
    assert down.returncode == 3, down.stderr
    assert (
        down.stderr.startswith("error: source registry")
        and len(down.stderr.strip().splitlines()) == 1
    )


def test_a_layer_shared_by_two_repositories_crosses_once(
    dockyard_server: RegistryServer, registry2_server: RegistryServer, skopeo: Skopeo,
    tmp_path: Path, repo: str,
) -> None:  # fmt: skip
    for name in ("a", "b"):  # both start from the same busybox base layer
        built = build_image(tmp_path / name, "1.0", data_size=4096)
        skopeo.copy(built.ref, dockyard_server.docker_ref(f"{repo}/{name}", "1.0"))
    summary = sync(dockyard_server, registry2_server, repo, f"shared/{repo}")
    assert "blobs 5 copied, 1 mounted, 0 skipped" in summary, summary
