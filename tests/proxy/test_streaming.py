"""A blob miss through the mirror streams: the client reads the blob while it is stored,
concurrent clients share the one upstream download, an upstream that fails mid-body
leaves nothing stored and cuts the client's response short, and a ``HEAD`` miss asks the
upstream without downloading. The upstream is a live Distribution 2.8.2 (htpasswd); the
faults come from a relay in front of it (tests/proxy/gate.py)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.storage import paths
from tests.e2e.clients import Skopeo
from tests.e2e.images import OCI_MANIFEST, build_image
from tests.e2e.server import RegistryServer, wait_for
from tests.proxy.conftest import PREFIX
from tests.proxy.gate import Gate, Rule
from tests.remote.servers import PASSWORD, USER

pytestmark = pytest.mark.e2e
MIB = 1 << 20
CREDS = f"{USER}:{PASSWORD}"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def seed_blob(upstream: RegistryServer, repo: str, size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    return upstream.push_blob(repo, data, AUTH), data


def stalled_blob(
    upstream: RegistryServer, gate: Gate, repo: str, size: int, after: int
) -> tuple[str, bytes, Rule]:
    """A blob on the upstream whose next download stalls after ``after`` bytes."""
    digest, data = seed_blob(upstream, repo, size)
    return digest, data, gate.arm(digest, "hold", after)


def upstream_gets(upstream: RegistryServer, repo: str, digest: str) -> int:
    pattern = rf'"GET /v2/{re.escape(repo)}/blobs/{digest} HTTP'
    return len(re.findall(pattern, upstream.log_text()))


def stored(mirror: RegistryServer, digest: str) -> bool:
    return (mirror.store / paths.blob_data(Digest.parse(digest)).lstrip("/")).exists()


def uploads_left(mirror: RegistryServer, repo: str) -> list[Path]:
    directory = mirror.store / paths.repository(f"{PREFIX}/{repo}").lstrip("/") / "_uploads"
    return list(directory.iterdir()) if directory.exists() else []


@contextlib.contextmanager
def open_blob(mirror: RegistryServer, repo: str, digest: str) -> Iterator[http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", mirror.port, timeout=60)
    try:
        conn.request("GET", f"/v2/{PREFIX}/{repo}/blobs/{digest}")
        yield conn.getresponse()
    finally:
        conn.close()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_large_blob_reaches_the_client_before_the_upstream_sent_all_of_it(
    upstream: RegistryServer, gate: Gate, gated_mirror: RegistryServer, repo: str
) -> None:
    digest, data, stall = stalled_blob(upstream, gate, repo, 40 * MIB, 6 * MIB)
    with open_blob(gated_mirror, repo, digest) as answer:
        try:
            assert answer.status == 200
            assert answer.headers["Content-Length"] == str(len(data))
            first = answer.read(4 * MIB)
            # The upstream is stalled after 6 MiB: the client has bytes, the store no blob.
            assert stall.reached.is_set()
            assert first == data[: 4 * MIB]
            assert not stored(gated_mirror, digest)
        finally:
            stall.release.set()
        rest = answer.read()
    assert sha256(first + rest) == digest
    assert stored(gated_mirror, digest)
    again = gated_mirror.get_blob(f"{PREFIX}/{repo}", digest)
    assert (again.status, sha256(again.body)) == (200, digest)
    assert upstream_gets(upstream, repo, digest) == 1  # the second pull is local


@pytest.mark.parametrize("fault", ["cut", "corrupt"])
def test_an_upstream_failing_mid_blob_cuts_the_client_short_and_stores_nothing(
    upstream: RegistryServer, gate: Gate, gated_mirror: RegistryServer, repo: str, fault: str
) -> None:
    digest, data = seed_blob(upstream, repo, 24 * MIB)
    gate.arm(digest, fault, 10 * MIB)
    with open_blob(gated_mirror, repo, digest) as answer:
        assert answer.status == 200
        with pytest.raises(http.client.IncompleteRead) as short:
            answer.read()
    assert len(short.value.partial) < len(data)  # never a complete-looking body
    assert not stored(gated_mirror, digest)
    wait_for(lambda: not uploads_left(gated_mirror, repo) or None, "the upload aborted", 10)
    # The next request fetches again, and gets the blob.
    again = gated_mirror.get_blob(f"{PREFIX}/{repo}", digest)
    assert (again.status, again.body == data) == (200, True)
    assert stored(gated_mirror, digest)
    assert upstream_gets(upstream, repo, digest) == 2


@pytest.mark.parametrize(
    ("size", "fault", "after"),
    [(512 * 1024, "corrupt", 100 * 1024), (8 * MIB, "cut", 2000)],
    ids=["small-blob-corrupted", "cut-before-the-first-chunk"],
)
def test_an_upstream_failing_before_the_response_began_answers_503(
    upstream: RegistryServer,
    gate: Gate,
    gated_mirror: RegistryServer,
    repo: str,
    size: int,
    fault: str,
    after: int,
) -> None:
    digest, data = seed_blob(upstream, repo, size)
    gate.arm(digest, fault, after)
    failed = gated_mirror.get_blob(f"{PREFIX}/{repo}", digest)
    assert failed.status == 503
    assert json.loads(failed.body)["errors"][0]["code"] == "UNAVAILABLE"
    assert not stored(gated_mirror, digest)
    again = gated_mirror.get_blob(f"{PREFIX}/{repo}", digest)
    assert (again.status, again.body == data) == (200, True)


def test_eight_concurrent_pulls_of_one_blob_share_one_upstream_get(
    upstream: RegistryServer, gate: Gate, gated_mirror: RegistryServer, repo: str
) -> None:
    # All eight ask while the download runs.
    digest, data, stall = stalled_blob(upstream, gate, repo, 24 * MIB, 2 * MIB)
    bodies: list[bytes] = []
    fast_done = threading.Barrier(8)

    def pull(slow: bool) -> None:
        with open_blob(gated_mirror, repo, digest) as answer:
            assert answer.status == 200
            if slow:
                # Reads one chunk, then nothing until the others are done: it falls behind
                # what the mirror keeps in memory and reads the rest from storage.
                head = answer.read(MIB)
                fast_done.wait(timeout=120)
                bodies.append(head + answer.read())
                return
            body = answer.read()
            fast_done.wait(timeout=120)
            bodies.append(body)

    threads = [threading.Thread(target=pull, args=(index == 0,)) for index in range(8)]
    for thread in threads:
        thread.start()
    stall.reached.wait(timeout=30)
    threading.Event().wait(1.0)  # let all eight requests arrive: waiting, not timing
    stall.release.set()
    for thread in threads:
        thread.join(timeout=120)
    assert len(bodies) == 8
    assert all(body == data for body in bodies)
    assert upstream_gets(upstream, repo, digest) == 1


def test_a_head_miss_asks_the_upstream_and_downloads_nothing(
    upstream: RegistryServer, gated_mirror: RegistryServer, repo: str
) -> None:
    digest, data = seed_blob(upstream, repo, 3 * MIB)
    head = gated_mirror.request("HEAD", f"/v2/{PREFIX}/{repo}/blobs/{digest}")
    assert (head.status, head.headers["content-length"]) == (200, str(len(data)))
    assert head.headers["docker-content-digest"] == digest
    assert upstream_gets(upstream, repo, digest) == 0
    assert not stored(gated_mirror, digest)
    unknown = "sha256:" + "0" * 64
    missing = gated_mirror.request("HEAD", f"/v2/{PREFIX}/{repo}/blobs/{unknown}")
    assert missing.status == 404


def test_a_client_that_goes_away_mid_blob_still_leaves_the_blob_cached(
    upstream: RegistryServer, gate: Gate, gated_mirror: RegistryServer, repo: str
) -> None:
    digest, data, stall = stalled_blob(upstream, gate, repo, 16 * MIB, 3 * MIB)
    with open_blob(gated_mirror, repo, digest) as answer:
        assert answer.read(MIB) == data[:MIB]
    stall.release.set()  # the client is gone; the download goes on
    wait_for(lambda: stored(gated_mirror, digest) or None, "the blob stored", 30)
    again = gated_mirror.get_blob(f"{PREFIX}/{repo}", digest)
    assert (again.status, again.body == data) == (200, True)
    assert upstream_gets(upstream, repo, digest) == 1


def test_a_manifest_miss_is_answered_while_its_blobs_are_fetched(
    skopeo: Skopeo,
    upstream: RegistryServer,
    gate: Gate,
    gated_mirror: RegistryServer,
    repo: str,
    tmp_path: Path,
) -> None:
    built = build_image(tmp_path / "image", "v1", data_size=8 * MIB)
    skopeo.copy(built.ref, upstream.docker_ref(repo, "v1"), "--dest-creds", CREDS)
    layer = built.layer_digests[-1]
    stall = gate.arm(layer, "hold", MIB)
    # One connection, so one worker: a fetch is shared within a worker.
    conn = http.client.HTTPConnection("127.0.0.1", gated_mirror.port, timeout=60)
    try:
        by_tag = manifest(conn, f"{PREFIX}/{repo}", "v1")
        assert by_tag == built.manifest_bytes
        # What containerd does next: the manifest by digest, while the layer is stalled.
        assert manifest(conn, f"{PREFIX}/{repo}", built.manifest_digest) == by_tag
        assert stall.reached.wait(timeout=30)
        assert not stored(gated_mirror, layer)
        manifest_gets = re.findall(
            rf'"GET /v2/{re.escape(repo)}/manifests/{built.manifest_digest} HTTP',
            upstream.log_text(),
        )
        assert len(manifest_gets) == 1  # the request by digest joined the tag's fetch
    finally:
        stall.release.set()
        conn.close()
    skopeo.copy(gated_mirror.docker_ref(f"{PREFIX}/{repo}", "v1"), f"oci:{tmp_path / 'out'}:v1")
    assert stored(gated_mirror, layer)
    assert upstream_gets(upstream, repo, layer) == 1


def manifest(conn: http.client.HTTPConnection, name: str, reference: str) -> bytes:
    conn.request("GET", f"/v2/{name}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    answer = conn.getresponse()
    body = answer.read()
    assert answer.status == 200, body
    return body
