"""Pulling through a Dockyard mirror of a live Distribution 2.8.2 (htpasswd): skopeo gets
the upstream's bytes, pushes into the mirrored prefix are refused as registry:2 refuses
them while local repositories take pushes, containerd's ``ns=`` picks the upstream,
concurrent pulls of one blob make one upstream GET, and the cache serves what it holds
while the upstream is stopped."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.proxy.fetch import manifest_lease
from dockyard.storage import paths
from tests.e2e.clients import ContainersTool, Ctr, Docker, Skopeo
from tests.e2e.images import build_image
from tests.e2e.server import REPO_ROOT, RegistryServer, Response
from tests.proxy.conftest import PREFIX, TOKEN_PREFIX
from tests.remote.servers import PASSWORD, USER

pytestmark = pytest.mark.e2e
CREDS = f"{USER}:{PASSWORD}"


def seed(skopeo: Skopeo, upstream: RegistryServer, tmp_path: Path, repo: str) -> bytes:
    """Push a fresh image to the upstream; its manifest as the upstream serves it."""
    built = build_image(tmp_path / repo.replace("/", "-"), "v1", data_size=64 * 1024)
    skopeo.copy(built.ref, upstream.docker_ref(repo, "v1"), "--dest-creds", CREDS)
    return built.manifest_bytes


def error_code(response: Response) -> str:
    return str(json.loads(response.body)["errors"][0]["code"])


def test_skopeo_pulls_the_upstream_bytes_through_the_mirror(
    skopeo: Skopeo, upstream: RegistryServer, mirror: RegistryServer, repo: str, tmp_path: Path
) -> None:
    manifest = seed(skopeo, upstream, tmp_path, repo)
    assert skopeo.inspect_raw(mirror.docker_ref(f"{PREFIX}/{repo}", "v1")) == manifest
    skopeo.copy(mirror.docker_ref(f"{PREFIX}/{repo}", "v1"), f"oci:{tmp_path / 'out'}:v1")
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["manifests"][0]["size"] == len(manifest)
    # Cached content is an ordinary repository for the tag list and the catalog.
    assert skopeo.list_tags(mirror.docker_repo(f"{PREFIX}/{repo}")) == ["v1"]
    catalog = json.loads(mirror.request("GET", "/v2/_catalog").body)["repositories"]
    assert f"{PREFIX}/{repo}" in catalog


def test_pushes_into_the_mirror_are_refused_and_local_repositories_take_them(
    skopeo: Skopeo, mirror: RegistryServer, repo: str, tmp_path: Path
) -> None:
    refused = mirror.request("POST", f"/v2/{PREFIX}/{repo}/blobs/uploads/")
    assert (refused.status, error_code(refused)) == (405, "UNSUPPORTED")
    deleted = mirror.request("DELETE", f"/v2/{PREFIX}/{repo}/manifests/sha256:" + "0" * 64)
    assert (deleted.status, error_code(deleted)) == (405, "UNSUPPORTED")
    built = build_image(tmp_path / "local", "v1", data_size=4096)
    skopeo.copy(built.ref, mirror.docker_ref(f"local/{repo}", "v1"))
    assert skopeo.inspect_raw(mirror.docker_ref(f"local/{repo}", "v1")) == built.manifest_bytes


def test_the_ns_parameter_picks_the_upstream(
    skopeo: Skopeo, upstream: RegistryServer, mirror: RegistryServer, repo: str, tmp_path: Path
) -> None:
    manifest = seed(skopeo, upstream, tmp_path, repo)
    answer = mirror.get_manifest(repo, f"v1?ns={PREFIX}")
    assert answer.status == 200, answer.body
    assert answer.body == manifest


def test_concurrent_pulls_of_one_blob_make_one_upstream_get(
    skopeo: Skopeo, upstream: RegistryServer, mirror: RegistryServer, repo: str, tmp_path: Path
) -> None:
    built = build_image(tmp_path / "big", "v1", data_size=8 << 20)
    skopeo.copy(built.ref, upstream.docker_ref(repo, "v1"), "--dest-creds", CREDS)
    layer = built.layer_digests[-1]
    # A HEAD of a blob not cached yet is the upstream's answer: no download.
    head = mirror.request("HEAD", f"/v2/{PREFIX}/{repo}/blobs/{layer}")
    assert (head.status, head.headers["content-length"]) == (200, str(built.layers[-1].size))
    answers: list[Response] = []

    def pull() -> None:
        answers.append(mirror.get_blob(f"{PREFIX}/{repo}", layer))

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status for a in answers] == [200] * 4
    assert {len(a.body) for a in answers} == {built.layers[-1].size}
    gets = re.findall(rf'"GET /v2/{re.escape(repo)}/blobs/{layer} HTTP', upstream.log_text())
    assert len(gets) == 1


def stale_count(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=10) as answer:
        text = answer.read().decode()
    pattern = r'^dockyard_proxy_stale_served_total\{kind="manifest",upstream="hub"\} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_cached_content_is_served_while_the_upstream_is_stopped(
    skopeo: Skopeo,
    upstream: RegistryServer,
    mirror: RegistryServer,
    mirror_metrics: str,
    repo: str,
    tmp_path: Path,
) -> None:
    manifest = seed(skopeo, upstream, tmp_path, repo)
    ref = mirror.docker_ref(f"{PREFIX}/{repo}", "v1")
    skopeo.copy(ref, f"oci:{tmp_path / 'first'}:v1")
    before = stale_count(mirror_metrics)
    upstream.stop(kill=True)
    try:
        assert skopeo.inspect_raw(ref) == manifest
        skopeo.copy(ref, f"oci:{tmp_path / 'again'}:v1")
        missing = mirror.get_manifest(f"{PREFIX}/{repo}", "never-cached")
        assert (missing.status, error_code(missing)) == (503, "UNAVAILABLE")
        assert "serving the cached manifest" in mirror.log_text()
        assert stale_count(mirror_metrics) >= before + 2
    finally:
        upstream.start()


def test_serve_stale_waits_for_a_fetch_still_storing_in_another_worker(
    upstream: RegistryServer, mirror: RegistryServer, repo: str
) -> None:
    """The test holds the manifest's fetch lease as another worker's fetch would while it
    stores what it read: a request that finds the upstream down waits for it, then answers
    from the cache (here nothing was stored, so 503)."""
    name, tag = f"{PREFIX}/{repo}", "being-stored"
    lease = mirror.store / f"dockyard.db.{manifest_lease(name, tag)}.lease"
    descriptor = os.open(lease, os.O_RDWR | os.O_CREAT, 0o600)
    upstream.stop(kill=True)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        answers: list[Response] = []
        request = threading.Thread(target=lambda: answers.append(mirror.get_manifest(name, tag)))
        request.start()
        request.join(1.0)
        assert request.is_alive(), "answered without waiting for the running fetch"
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        request.join(30)
        assert (answers[0].status, error_code(answers[0])) == (503, "UNAVAILABLE")
    finally:
        os.close(descriptor)
        upstream.start()


def test_podman_and_ctr_pull_through_the_mirror(
    skopeo: Skopeo,
    podman: ContainersTool,
    ctr: Ctr,
    upstream: RegistryServer,
    mirror: RegistryServer,
    repo: str,
    tmp_path: Path,
) -> None:
    built = build_image(tmp_path / "clients", "v1", data_size=64 * 1024)
    skopeo.copy(built.ref, upstream.docker_ref(repo, "v1"), "--dest-creds", CREDS)
    ref = mirror.ref(f"{PREFIX}/{repo}", "v1")
    podman("pull", "--quiet", "--tls-verify=false", ref)
    config = podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
    assert "sha256:" + config == built.config_digest
    podman("rmi", "--force", ref)
    ctr("images", "pull", "--plain-http", "--snapshotter", "native", ref)
    assert ctr.image_digest(ref) == built.manifest_digest
    for layer in built.layers:
        assert ctr("content", "get", layer.digest, text=False).stdout == layer.blob
    ctr("images", "rm", "--sync", ref)


def test_registry2_keys_make_a_read_only_mirror_that_dockerd_uses(
    skopeo: Skopeo,
    mirrored_docker: Docker,
    upstream: RegistryServer,
    compat_mirror: RegistryServer,
    repo: str,
    tmp_path: Path,
) -> None:
    # dockerd sends docker.io/library/NAME to its mirror as library/NAME.
    name = "library/" + repo.rsplit("/", 1)[-1]
    built = build_image(tmp_path / "docker", "v1", data_size=64 * 1024)
    skopeo.copy(built.ref, upstream.docker_ref(name, "v1"), "--dest-creds", CREDS)
    mirrored_docker("pull", f"docker.io/{name}:v1")
    assert mirrored_docker.image_id(f"docker.io/{name}:v1") == built.config_digest
    assert skopeo.inspect_raw(compat_mirror.docker_ref(name, "v1")) == built.manifest_bytes
    # Everything is mirrored: no repository takes a push.
    refused = compat_mirror.request("POST", "/v2/local/anything/blobs/uploads/")
    assert (refused.status, error_code(refused)) == (405, "UNSUPPORTED")


def dockyard_command(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_expired_cached_content_is_collected_but_a_blob_a_local_repository_uses_stays(
    skopeo: Skopeo,
    upstream: RegistryServer,
    expiring_mirror: RegistryServer,
    repo: str,
    tmp_path: Path,
) -> None:
    # Two images on the same busybox base layer: one cached, one pushed locally.
    cached = build_image(tmp_path / "cached", "v1", data_size=4096)
    local = build_image(tmp_path / "local", "v1", data_size=4096)
    shared, own = cached.layer_digests[0], cached.layer_digests[-1]
    assert shared == local.layer_digests[0] and own != local.layer_digests[-1]
    skopeo.copy(cached.ref, upstream.docker_ref(repo, "v1"), "--dest-creds", CREDS)
    skopeo.copy(local.ref, expiring_mirror.docker_ref(f"local/{repo}", "v1"))
    skopeo.copy(expiring_mirror.docker_ref(f"{PREFIX}/{repo}", "v1"), f"oci:{tmp_path / 'o'}:v1")
    blob_file = {
        d: expiring_mirror.store / paths.blob_data(Digest.parse(d)).lstrip("/")
        for d in (shared, own)
    }
    assert all(path.exists() for path in blob_file.values())
    time.sleep(1.5)  # past the 1 s ttl: waiting, not timing anything
    config = str(expiring_mirror.config)
    assert "proxy.upstreams[hub]" in dockyard_command("retention", config)
    dockyard_command("garbage-collect", config)
    tags = expiring_mirror.request("GET", f"/v2/{PREFIX}/{repo}/tags/list")
    assert json.loads(tags.body).get("tags") in (None, [])
    assert not blob_file[own].exists()  # the cached image's own layer is gone
    assert blob_file[shared].exists()  # the layer the local image uses stays
    assert skopeo.inspect_raw(expiring_mirror.docker_ref(f"local/{repo}", "v1")) == (
        local.manifest_bytes
    )
    skopeo.copy(expiring_mirror.docker_ref(f"local/{repo}", "v1"), f"oci:{tmp_path / 'l'}:v1")
    # The next pull fetches the expired image again.
    assert skopeo.inspect_raw(expiring_mirror.docker_ref(f"{PREFIX}/{repo}", "v1")) == (
        cached.manifest_bytes
    )


def test_a_second_upstream_with_token_auth_by_its_prefix(
    skopeo: Skopeo,
    upstream: RegistryServer,
    token_upstream: RegistryServer,
    mirror: RegistryServer,
    repo: str,
    tmp_path: Path,
) -> None:
    """The ``tok`` upstream keeps its prefix: ``tok/REPO`` is ``tok/REPO`` upstream too."""
    built = build_image(tmp_path / "token", "v1", data_size=4096)
    name = f"{TOKEN_PREFIX}/{repo}"
    skopeo.copy(built.ref, token_upstream.docker_ref(name, "v1"), "--dest-creds", CREDS)
    assert skopeo.inspect_raw(mirror.docker_ref(name, "v1")) == built.manifest_bytes
    skopeo.copy(mirror.docker_ref(name, "v1"), f"oci:{tmp_path / 'out'}:v1")
    # Not on the htpasswd upstream: each prefix has its own.
    missing = mirror.get_manifest(f"{PREFIX}/{name}", "v1")
    assert (missing.status, error_code(missing)) == (404, "MANIFEST_UNKNOWN")


def test_containerd_uses_the_mirror_from_hosts_toml(
    skopeo: Skopeo, ctr: Ctr, upstream: RegistryServer, mirror: RegistryServer, repo: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """A hosts.toml mirror host with the prefix in its path (``override_path``): what
    containerd 1.6, which sends no ``ns=`` parameter, needs."""
    built = build_image(tmp_path / "hosts", "v1", data_size=4096)
    skopeo.copy(built.ref, upstream.docker_ref(repo, "v1"), "--dest-creds", CREDS)
    hosts = tmp_path / "certs.d" / "docker.io"
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(
        'server = "https://registry-1.docker.io"\n\n'
        f'[host."{mirror.url}/v2/docker.io"]\n  capabilities = ["pull", "resolve"]\n'
        "  override_path = true\n"
    )
    ref = f"docker.io/{repo}:v1"
    ctr("images", "pull", "--hosts-dir", str(tmp_path / "certs.d"), "--snapshotter", "native", ref)
    assert ctr.image_digest(ref) == built.manifest_digest
    ctr("images", "rm", "--sync", ref)
    assert skopeo.inspect_raw(mirror.docker_ref(f"docker.io/{repo}", "v1")) == built.manifest_bytes
