"""Hostile names and parameters against a live server: nothing is created outside the
storage root, and read-only mode refuses every write while reads go on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from .conftest import ServerFactory
from .harness import raw_exchange

pytestmark = pytest.mark.e2e

HOSTILE = [
    "..",
    "../outside",
    "a/../../outside",
    "%2e%2e/outside",
    "a/%2e%2e/%2e%2e/outside",
    "..%2foutside",
    "a%2f..%2f..%2foutside",
    "./a",
    "/abs/outside",
    "a\\..\\..\\outside",
]


def snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_hostile_names_never_leave_the_store(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server()
    workdir = server.workdir
    before = snapshot(workdir.parent) - snapshot(server.store)
    data = b"hostile"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert (
        server.request("POST", f"/v2/ok/app/blobs/uploads/?digest={digest}", body=data).status
        == 201
    )
    for name in HOSTILE:
        for method, suffix in (
            ("POST", "blobs/uploads/"),
            ("POST", f"blobs/uploads/?digest={digest}"),
            ("PUT", "manifests/latest"),
            ("GET", "tags/list"),
            ("DELETE", f"blobs/{digest}"),
        ):
            raw = f"{method} /v2/{name}/{suffix} HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n"
            answer = raw_exchange(server.port, raw.encode() + b"Connection: close\r\n\r\nhostile")
            status = int(answer.split(b" ", 2)[1])
            assert status in (400, 404), (name, suffix, answer[:200])
        # a mount whose source is hostile uploads instead of reading elsewhere
        r = server.request("POST", f"/v2/ok/dst/blobs/uploads/?mount={digest}&from={name}")
        assert r.status == 202, (name, r.status)
    after = snapshot(workdir.parent) - snapshot(server.store)
    assert after - before <= {workdir / "server.log"}
    assert not (workdir.parent / "outside").exists()
    assert not any(p.name == "outside" for p in server.store.rglob("*"))


def test_read_only_refuses_writes_and_serves_reads(make_server: ServerFactory) -> None:
    server = make_server()
    data = os.urandom(1000)
    digest = server.push_blob("ro/app", data)
    server.stop()
    text = server.config.read_text().replace(
        "  delete:\n", "  maintenance:\n    readonly:\n      enabled: true\n  delete:\n"
    )
    server.config.write_text(text)
    server.start()
    for method, path in (
        ("POST", "/v2/ro/app/blobs/uploads/"),
        ("PUT", "/v2/ro/app/manifests/v1"),
        ("DELETE", f"/v2/ro/app/blobs/{digest}"),
    ):
        r = server.request(method, path, body=b"{}")
        assert r.status == 405, (method, path)
        error = r.json()["errors"][0]  # type: ignore[index]
        assert error["code"] == "UNSUPPORTED"
        assert "read-only mode" in error["message"]
    assert server.get_blob("ro/app", digest).body == data
