"""A client that goes away mid-request is not a server error: one info line, status 499
in the access log, no traceback, and the server goes on serving (the upload too)."""

from __future__ import annotations

import os
import socket
import time

from tests.e2e.server import OCTET_STREAM, RegistryServer, location_path
from tests.live.conftest import ServerFactory


def cut_off(server: RegistryServer, head: str, body: bytes = b"", read: bool = False) -> None:
    """Sends ``head`` and ``body`` on a new connection, reads a little when ``read``, then
    closes the connection while the server is still busy with the request."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(head.encode() + body)
        if read:
            conn.recv(4096)
        time.sleep(0.3)
    time.sleep(0.5)  # the worker notices


def test_cut_off_uploads_and_downloads_log_499_and_the_upload_goes_on(
    live_server: ServerFactory,
) -> None:
    server = live_server("serve:\n  workers: 1\n")
    r = server.request("POST", "/v2/gone/app/blobs/uploads/")
    location = location_path(r.headers["location"])
    for size in (1 << 20, 32 << 20):  # read by aiohttp, and received into buffers directly
        head = (
            f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Type: {OCTET_STREAM}\r\n"
            f"Content-Length: {size}\r\n\r\n"
        )
        cut_off(server, head, os.urandom(size // 2))
    big = os.urandom(8 << 20)
    digest = server.push_blob("gone/app", big)
    cut_off(server, f"GET /v2/gone/app/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n", read=True)

    assert server.get_blob("gone/app", digest).body == big
    status = server.request("GET", location)  # a cut-off chunk left nothing behind
    assert (status.status, status.headers["range"]) == (204, "0-0"), status.body
    data = os.urandom(100_000)  # and the upload still takes its bytes
    range_ = {"Content-Type": OCTET_STREAM, "Content-Range": f"0-{len(data) - 1}"}
    r = server.request("PATCH", location, body=data, headers=range_)
    assert (r.status, r.headers["range"]) == (202, f"0-{len(data) - 1}"), r.body
    log = server.log_text()
    assert log.count(" 499 ") == 3, server.log_tail()
    assert "the client went away" in log
    assert "Traceback" not in log and "ERROR" not in log
