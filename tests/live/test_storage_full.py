"""A full disk: a clear error body, the path in the log, nothing lost, and room again after.

The store is a real tmpfs of a few MiB (mounted by the test, as root), so the kernel's own
ENOSPC is what Dockyard meets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.conftest import ServerFactory

SIZE_MIB = 24


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m", "tmpfs", str(mountpoint)],
        check=True,
        capture_output=True,
    )
    try:
        yield mountpoint
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", "-l", str(mountpoint)], check=True, capture_output=True)


def test_full_disk_answers_storage_full_and_loses_nothing(
    live_server: ServerFactory, small_disk: Path
) -> None:
    server = live_server()
    server.stop()
    # the same server, its store moved onto the small disk
    text = server.config.read_text().replace(str(server.store), str(small_disk / "store"))
    server.config.write_text(text)
    server.start()

    kept = os.urandom(1024 * 1024)
    kept_digest = server.push_blob("team/app", kept)

    too_big = os.urandom(SIZE_MIB * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(too_big).hexdigest()
    r = server.request("POST", f"/v2/team/app/blobs/uploads/?digest={digest}", body=too_big)
    assert r.status == 507, (r.status, r.body)
    error = json.loads(r.body)["errors"][0]
    assert error["code"] == "STORAGE_FULL"
    assert "full" in error["message"]
    log = server.log_path.read_text()
    assert "no space left on the storage at " + str(small_disk / "store") in log
    assert "Traceback" not in log

    # nothing half-stored, the earlier blob intact, and the space is free again
    assert server.request("HEAD", f"/v2/team/app/blobs/{digest}").status == 404
    assert server.get_blob("team/app", kept_digest).body == kept
    server.push_blob("team/app", os.urandom(1024 * 1024))
