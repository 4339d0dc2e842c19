"""Data safety on a live server: several workers on one store, SIGKILL mid-push, read-only
mode and disabled deletes — each checked through the API after the fact."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.server import RegistryServer, location_path
from tests.live.conftest import ServerFactory

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(server: RegistryServer, repo: str, tag: str) -> tuple[str, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = os.urandom(4096)
    for blob in (config, layer):
        server.push_blob(repo, blob)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    r = server.put_manifest(repo, tag, manifest, OCI_MANIFEST)
    assert r.status == 201, r.body
    return sha256(manifest), manifest


def test_several_workers_share_one_store(live_server: ServerFactory) -> None:
    server = live_server("serve:\n  workers: 3\n")
    assert len(server.worker_pids(expect=3)) == 3
    blobs = {f"work/repo{i % 4}": os.urandom(300_000 + i) for i in range(12)}

    def push(item: tuple[str, bytes]) -> tuple[str, str]:
        repo, data = item
        # 64 KiB chunks on fresh connections land on different workers, which must pick
        # the upload up where another left it (re-hashing the stored prefix).
        return repo, server.push_chunked(repo, data, 64 * 1024)

    with ThreadPoolExecutor(8) as pool:
        pushed = list(pool.map(push, blobs.items()))
    for (repo, digest), data in zip(pushed, blobs.values(), strict=True):
        r = server.get_blob(repo, digest)
        assert r.status == 200 and r.body == data
    with ThreadPoolExecutor(8) as pool:
        manifests = list(pool.map(lambda i: push_image(server, "work/tags", f"t{i}"), range(16)))
    r = server.request("GET", "/v2/work/tags/tags/list")
    assert sorted(json.loads(r.body)["tags"]) == sorted(f"t{i}" for i in range(16))
    for i, (digest, body) in enumerate(manifests):
        r = server.get_manifest("work/tags", f"t{i}")
        assert r.body == body and r.headers["docker-content-digest"] == digest


def _send_partial_request(port: int, head: str, body_part: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head.encode() + body_part)
    return sock


def _wait_for_bytes(path_glob: str, root: Path, minimum: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for candidate in root.glob(path_glob):
            if candidate.stat().st_size >= minimum:
                return
        time.sleep(0.02)
    raise AssertionError(f"no upload data of {minimum} bytes appeared")


def test_sigkill_mid_push_restarts_consistent(live_server: ServerFactory) -> None:
    server = live_server()
    tagged_digest, tagged_manifest = push_image(server, "safe/app", "v1")
    first = os.urandom(100_000)
    r = server.request("POST", "/v2/safe/app/blobs/uploads/")
    location = location_path(r.headers["location"])
    r = server.request("PATCH", location, body=first, headers={"Content-Range": "0-99999"})
    assert r.status == 202

    # A second chunk and a monolithic upload are in flight when the server dies.
    declared = 8 * 1024 * 1024
    patch = _send_partial_request(
        server.port,
        f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n"
        f"Content-Range: 100000-{100000 + declared - 1}\r\n\r\n",
        os.urandom(5 * 1024 * 1024),
    )
    monolithic_data = os.urandom(declared)
    mono = _send_partial_request(
        server.port,
        f"POST /v2/safe/app/blobs/uploads/?digest={sha256(monolithic_data)} HTTP/1.1\r\n"
        f"Host: x\r\nContent-Length: {declared}\r\n\r\n",
        monolithic_data[: 5 * 1024 * 1024],
    )
    uploads = "docker/registry/v2/repositories/safe/app/_uploads/*/data"
    # The server writes in buffers of a few MiB: wait until some are on disk.
    _wait_for_bytes(uploads, server.store, 100_000 + 4 * 1024 * 1024)
    server.restart(kill=True)
    patch.close()
    mono.close()

    # Nothing half-done is visible; what was committed is intact.
    assert server.request("HEAD", f"/v2/safe/app/blobs/{sha256(monolithic_data)}").status == 404
    r = server.get_manifest("safe/app", "v1")
    assert r.status == 200 and r.body == tagged_manifest
    assert r.headers["docker-content-digest"] == tagged_digest
    database = sqlite3.connect(server.store / "dockyard.db")
    assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    database.close()

    # The interrupted chunked upload resumes, on the new process, from its last whole
    # chunk: the bytes of the chunk cut short are on disk, but the upload's row never
    # counted them, and they are dropped when it resumes.
    upload_id = location.rsplit("/", 1)[1]
    stored = next(server.store.glob(uploads.replace("*", upload_id)))
    assert stored.stat().st_size > len(first)
    r = server.request("GET", location)
    assert r.status == 204
    assert r.headers["range"] == f"0-{len(first) - 1}"
    rest = os.urandom(50_000)
    r = server.request(
        "PATCH", location, body=rest, headers={"Content-Range": f"{len(first)}-149999"}
    )
    assert r.status == 202, r.body
    whole = first + rest
    r = server.request("PUT", f"{location}?digest={sha256(whole)}")
    assert r.status == 201, r.body
    assert server.get_blob("safe/app", sha256(whole)).body == whole


def test_read_only_mode_refuses_writes_and_serves_reads(live_server: ServerFactory) -> None:
    writable = live_server()
    digest, manifest = push_image(writable, "ro/app", "v1")
    writable.stop()
    server = RegistryServer("dockyard", writable.workdir, port=writable.port)
    server.env = {"REGISTRY_STORAGE_MAINTENANCE_READONLY": "{enabled: true}"}
    server.start()
    try:
        assert server.get_manifest("ro/app", "v1").body == manifest
        for method, path in (
            ("POST", "/v2/ro/app/blobs/uploads/"),
            ("PUT", "/v2/ro/app/manifests/v2"),
            ("DELETE", f"/v2/ro/app/manifests/{digest}"),
        ):
            r = server.request(method, path, body=b"{}")
            assert r.status == 405, (method, path)
            error = json.loads(r.body)["errors"][0]
            assert error["code"] == "UNSUPPORTED" and "read-only" in error["message"]
        assert server.get_manifest("ro/app", "v1").status == 200
    finally:
        server.stop()


def test_deletes_disabled_by_config(live_server: ServerFactory) -> None:
    server = live_server(env={"REGISTRY_STORAGE_DELETE_ENABLED": "false"})
    digest, _ = push_image(server, "nodelete/app", "v1")
    r = server.request("DELETE", f"/v2/nodelete/app/manifests/{digest}")
    assert r.status == 405
    assert json.loads(r.body)["errors"][0]["code"] == "UNSUPPORTED"
    assert server.get_manifest("nodelete/app", "v1").status == 200


def test_one_json_access_log_line_per_request(live_server: ServerFactory) -> None:
    server = live_server(env={"REGISTRY_LOG_FORMATTER": "json"})
    data = os.urandom(3 * 1024 * 1024)
    digest = server.push_blob("logs/app", data)
    assert server.get_blob("logs/app", digest).status == 200
    server.stop()
    entries = [
        json.loads(line)
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{") and '"msg": "request"' in line
    ]
    fetch = [
        e for e in entries if e["http.request.method"] == "GET" and digest in e["http.request.uri"]
    ]
    assert len(fetch) == 1
    assert fetch[0]["http.response.status"] == 200 and fetch[0]["http.response.written"] == len(
        data
    )
    assert fetch[0]["http.response.duration"].endswith(("s", "ms", "µs"))
    assert fetch[0]["http.request.id"]
    assert {e["http.request.method"] for e in entries} >= {"POST", "PUT", "GET"}


def test_stale_uploads_are_purged(live_server: ServerFactory) -> None:
    server = live_server(
        env={
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING": (
                "{enabled: true, age: 2s, interval: 1s, dryrun: false}"
            )
        }
    )
    r = server.request("POST", "/v2/purge/app/blobs/uploads/")
    location = location_path(r.headers["location"])
    assert server.request("PATCH", location, body=b"x" * 1000).status == 202
    upload_dirs = list(server.store.glob("docker/registry/v2/repositories/purge/app/_uploads/*"))
    assert len(upload_dirs) == 1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and server.request("GET", location).status == 204:
        time.sleep(0.05)
    r = server.request("GET", location)
    assert r.status == 404
    assert json.loads(r.body)["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    # The purger deletes the row first, then the bytes: they follow within the round.
    while time.monotonic() < deadline and upload_dirs[0].exists():
        time.sleep(0.05)
    assert not upload_dirs[0].exists()


def test_workers_exit_when_the_parent_is_killed(live_server: ServerFactory) -> None:
    server = live_server("serve:\n  workers: 2\n")
    workers = server.worker_pids(expect=2)
    assert len(workers) == 2
    assert server.proc is not None
    os.kill(server.proc.pid, 9)
    server.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}/status").exists() for p in workers)
    server.proc = None


def test_large_bodies_from_the_socket(live_server: ServerFactory) -> None:
    """Bodies of many MiB are read straight from the socket into aligned buffers and written
    with O_DIRECT (api/direct_body.py): on the real server (uvloop, two workers) the bytes
    are exact, the connection closes after the answer, and a body cut short is undone."""
    server = live_server()
    data = os.urandom(41 * 1024 * 1024 + 4321)
    r = server.request("POST", f"/v2/big/one/blobs/uploads/?digest={sha256(data)}", body=data)
    assert r.status == 201, r.body
    assert r.headers["connection"] == "close"
    assert server.get_blob("big/one", sha256(data)).body == data
    assert server.push_chunked("big/two", data, 16 * 1024 * 1024) == sha256(data)
    assert server.get_blob("big/two", sha256(data)).body == data

    r = server.request("POST", "/v2/big/three/blobs/uploads/")
    location = location_path(r.headers["location"])
    declared = 32 * 1024 * 1024
    partial = _send_partial_request(
        server.port,
        f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n",
        os.urandom(20 * 1024 * 1024),
    )
    partial.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = server.request("GET", location)
        if r.headers["range"] == "0-0":
            break
        time.sleep(0.05)
    assert r.status == 204 and r.headers["range"] == "0-0"
    r = server.request("PUT", f"{location}?digest={sha256(data)}", body=data)
    assert r.status == 201, r.body
