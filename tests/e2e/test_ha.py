"""High availability with real parts: three ``dockyard serve`` replicas on one PostgreSQL
and one SeaweedFS (S3) bucket, behind Debian's nginx (docs/nginx/dockyard.conf, round
robin over the three), all on 127.0.0.1.

* The three replicas start at once on an empty database: the migrations take turns under
  the advisory lock, and one of them creates the schema.
* A chunked upload whose ``PATCH``es land on different replicas (the replicas' access logs
  say which) commits, and the blob is the same through every replica.
* A tag pushed through one replica is listed by the others at once, read caches and all.
* Pushers and pullers (skopeo, with its retries) run through nginx while one replica is
  killed with SIGKILL and started again; every push and pull succeeds, and afterwards every
  image pulls byte-identical from every replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import oras.client
import pytest
from sqlalchemy.engine import make_url

from dockyard.metadata.engine import code_revision
from tests.e2e.clients import Skopeo
from tests.e2e.images import Image, build_image, layout_manifest
from tests.e2e.server import RegistryServer, wait_for
from tests.postgres import PostgresServer
from tests.seaweedfs import SeaweedServer
from tests.security.flows import Endpoint, check_layout
from tests.security.nginx import Nginx
from tests.security.pki import make_pki

pytestmark = pytest.mark.e2e

REPLICAS = 3
SECRET = "shared-by-every-replica"
RETRIES = ("--retry-times", "5")


def shared_storage(seaweedfs: SeaweedServer, deferred: bool = False) -> str:
    """The ``storage`` section every replica gets: one bucket of its own on the session's
    SeaweedFS, with blob reads redirected to it, as replicas behind a load balancer run;
    ``deferred``: chunked uploads' copies made by the mover (``storage.s3.deferredcopy``)."""
    section = seaweedfs.storage_section(seaweedfs.new_bucket("ha"))
    section += f"    deferredcopy: {str(deferred).lower()}\n"
    return f"storage:\n{section}  delete:\n    enabled: true\n"


def replica_config(port: int, storage: str, database_url: str) -> str:
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: info\n"
        f"{storage}"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        f"  secret: {SECRET}\n"
        "database:\n"
        f"  url: {database_url}\n"
        "  migrate: onstart\n"
        "serve:\n"
        "  workers: 1\n"
        "security:\n"
        "  trustedproxies: [127.0.0.1]\n"
    )


@dataclass
class Cluster:
    replicas: list[RegistryServer]
    nginx: Nginx
    database_url: str

    @property
    def front(self) -> Endpoint:
        return Endpoint(self.nginx.host, self.nginx.pki.cert_dir)


def _start_at_once(servers: list[RegistryServer]) -> None:
    errors: list[BaseException] = []

    def start(server: RegistryServer) -> None:
        try:
            server.start()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="module", params=["copy", "deferredcopy"])
def cluster(
    request: pytest.FixtureRequest,
    postgres: PostgresServer,
    seaweedfs: SeaweedServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    database_url = asyncio.run(postgres.create_empty())  # no schema: the replicas make it
    storage = shared_storage(seaweedfs, request.param == "deferredcopy")
    replicas = []
    for index in range(REPLICAS):
        server = RegistryServer("dockyard", tmp_path_factory.mktemp(f"replica-{index}"))
        server.config.write_text(replica_config(server.port, storage, database_url))
        replicas.append(server)
    nginx = Nginx(
        tmp_path_factory.mktemp("nginx"),
        [r.port for r in replicas],
        make_pki(tmp_path_factory.mktemp("pki")),
    )
    try:
        _start_at_once(replicas)
        nginx.start()
        yield Cluster(replicas, nginx, database_url)
    finally:
        nginx.stop()
        for server in replicas:
            server.stop()
        asyncio.run(postgres.drop_database(database_url))


def _tags(server: RegistryServer, repo: str) -> list[str]:
    r = server.request("GET", f"/v2/{repo}/tags/list")
    assert r.status == 200, (r.status, r.body)
    tags = json.loads(r.body)["tags"]
    assert isinstance(tags, list)
    return tags


def _patches(server: RegistryServer, repo: str) -> int:
    """``PATCH`` requests on uploads of ``repo`` this replica served (its access log)."""
    line = re.compile(rf'"PATCH /v2/{re.escape(repo)}/blobs/uploads/[^ "]+" 202 ')
    return len(line.findall(server.log_text()))


async def _revision(database_url: str) -> str:
    url = make_url(database_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        return str(await connection.fetchval("SELECT version_num FROM alembic_version"))
    finally:
        await connection.close()


def _push_chunked(front: Endpoint, repo: str, data: Path, chunk_size: int) -> None:
    """Push ``data`` as an oras artifact through ``front`` in ``PATCH``es of ``chunk_size``."""
    client = oras.client.OrasClient(hostname=front.host, tls_verify=str(front.ca_file))
    try:
        response = client.push(
            target=front.ref(repo),
            files=[str(data)],
            disable_path_validation=True,
            do_chunked=True,
            chunk_size=chunk_size,
            quiet=True,
        )
        assert response.status_code == 201, response.text
    finally:
        client.session.close()


def test_replicas_starting_at_once_migrate_the_schema_once(cluster: Cluster) -> None:
    created = [
        server for server in cluster.replicas if "schema created at revision" in server.log_text()
    ]
    assert len(created) == 1
    assert asyncio.run(_revision(cluster.database_url)) == code_revision()
    for server in cluster.replicas:  # the same http.secret everywhere: nothing to warn of
        assert "http.secret is not set" not in server.log_text()


def test_a_chunked_push_continues_on_every_replica(
    cluster: Cluster, repo: str, tmp_path: Path
) -> None:
    front = cluster.front
    data = tmp_path / "model.bin"
    data.write_bytes(hashlib.sha256(repo.encode()).digest() * (600 * 1024 // 32))
    _push_chunked(front, repo, data, 64 * 1024)  # ten PATCHes, taken in turn by the replicas
    served = [_patches(server, repo) for server in cluster.replicas]
    assert sum(served) >= 10
    assert sum(1 for count in served if count) >= 2, served
    digest = "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()
    for server in cluster.replicas:
        blob = server.get_blob(repo, digest)
        assert blob.status == 200
        assert blob.body == data.read_bytes()


def test_a_large_chunked_push_reaches_its_distribution_key(
    cluster: Cluster, repo: str, tmp_path: Path
) -> None:
    """Parts of a multipart upload, so that with ``deferredcopy`` the commit leaves the blob
    at the upload's key: every replica serves it there, then (once one replica's mover has
    copied it) redirects to the blob's own key."""
    front = cluster.front
    data = tmp_path / "weights.bin"
    data.write_bytes(os.urandom(12 * 1024 * 1024 + 17))
    _push_chunked(front, repo, data, 4 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()
    for server in cluster.replicas:
        assert server.get_blob(repo, digest).body == data.read_bytes()
    own_key = f"/blobs/sha256/{digest[7:9]}/{digest[7:]}/data"

    def at_own_key() -> bool:
        locations = []
        for server in cluster.replicas:
            answer = server.request("HEAD", f"/v2/{repo}/blobs/{digest}")
            assert answer.status == 307, answer.status
            locations.append(answer.headers["location"])
        return all(own_key in location for location in locations)

    wait_for(at_own_key, "every replica redirecting to the blob's own key", timeout=120)
    for server in cluster.replicas:
        assert server.get_blob(repo, digest).body == data.read_bytes()


def test_a_tag_pushed_through_one_replica_is_listed_by_the_others_at_once(
    cluster: Cluster, skopeo: Skopeo, repo: str, tmp_path: Path
) -> None:
    image = build_image(tmp_path / "layout", "v0")
    expected: list[str] = []
    for round_ in range(4):
        tag = f"v{round_}"
        # Straight to one replica, not through nginx; the others cache their tag lists.
        writer = cluster.replicas[round_ % REPLICAS]
        skopeo.copy(image.ref, writer.docker_ref(repo, tag))
        expected.append(tag)
        for server in cluster.replicas:
            assert _tags(server, repo) == expected
            assert _tags(server, repo) == expected  # the second read may come from a cache


@dataclass
class Traffic:
    """Pushes and pulls through nginx, on threads; every failure is kept."""

    skopeo: Skopeo
    front: str
    repo: str
    workdir: Path
    failures: list[str]
    pulled: int = 0

    def push(self, image: Image, tag: str) -> None:
        self._run("copy", image.ref, f"docker://{self.front}/{self.repo}:{tag}")

    def pull(self, tag: str, out: Path) -> None:
        self._run("copy", f"docker://{self.front}/{self.repo}:{tag}", f"oci:{out}:{tag}")
        self.pulled += 1

    def _run(self, *argv: str) -> None:
        done = self.skopeo(
            argv[0], "--quiet", "--preserve-digests", "--src-tls-verify=false",
            "--dest-tls-verify=false", *RETRIES, *argv[1:], check=False, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            self.failures.append(f"skopeo {' '.join(argv)}: {done.stderr.strip()}")


def test_pushes_and_pulls_go_on_while_a_replica_is_killed(
    cluster: Cluster, skopeo: Skopeo, repo: str, tmp_path: Path
) -> None:
    images = [
        build_image(tmp_path / f"layout-{i}", f"t{i}", data_size=3 * 1024 * 1024) for i in range(6)
    ]
    traffic = Traffic(skopeo, cluster.front.host, repo, tmp_path, [])
    traffic.push(images[0], "t0")
    pushed = ["t0"]
    stop = threading.Event()

    def pusher(chunk: list[Image]) -> None:
        for image in chunk:
            traffic.push(image, image.tag)
            pushed.append(image.tag)

    def puller() -> None:
        round_ = 0
        while not stop.is_set() and round_ < 20:
            tag = pushed[round_ % len(pushed)]
            traffic.pull(tag, tmp_path / f"pulled-{round_}")
            round_ += 1

    threads = [
        threading.Thread(target=pusher, args=(images[1:4],)),
        threading.Thread(target=pusher, args=(images[4:],)),
        threading.Thread(target=puller),
    ]
    for thread in threads:
        thread.start()
    victim = cluster.replicas[1]
    time.sleep(0.5)  # the pushes are under way
    victim.stop(kill=True)  # SIGKILL to the replica's whole process group
    time.sleep(1.0)
    victim.start()
    for thread in threads[:2]:
        thread.join(timeout=120)
    stop.set()
    threads[2].join(timeout=120)
    assert traffic.failures == []
    assert traffic.pulled > 0
    assert sorted(pushed) == sorted(image.tag for image in images)
    wait_for(lambda: victim.request("GET", "/v2/").status == 200, "the restarted replica")
    for image in images:
        _same_everywhere(cluster, repo, image)
    for index, server in enumerate(cluster.replicas):  # and with a real client, per replica
        image = images[index]
        out = tmp_path / f"from-replica-{index}"
        skopeo.copy(server.docker_ref(repo, image.tag), f"oci:{out}:{image.tag}")
        assert layout_manifest(out, image.tag)[1] == image.manifest_bytes
        check_layout(out, image, image.tag)


def _same_everywhere(cluster: Cluster, repo: str, image: Image) -> None:
    """The image's manifest (by tag) and every blob, byte for byte, from every replica."""
    _, manifest = layout_manifest(image.layout, image.tag)
    digests = [image.config_digest, *image.layer_digests]
    for server in cluster.replicas:
        r = server.get_manifest(repo, image.tag)
        assert r.status == 200, (server.port, r.status)
        assert r.body == manifest
        for digest in digests:
            blob = server.get_blob(repo, digest)
            assert blob.status == 200
            assert "sha256:" + hashlib.sha256(blob.body).hexdigest() == digest
