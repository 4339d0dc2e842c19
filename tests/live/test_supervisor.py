"""The supervisor of ``dockyard serve``, on live servers: a killed worker is replaced while
the others keep serving (the single worker too), the upload purger stays on one worker,
workers that keep dying make the server give up with status 1, and SIGTERM or SIGINT stop
every process with status 0."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from tests.e2e.server import (
    OCTET_STREAM,
    STOP_TIMEOUT,
    RegistryServer,
    location_path,
    process_group_members,
    wait_for,
)
from tests.live.conftest import ServerFactory

PURGER = re.compile(r"upload purger running in this worker \(pid (\d+)\)")


def replacement(server: RegistryServer, count: int, dead: int) -> list[int] | None:
    """The workers once ``count`` run again without ``dead``, and the log says one was
    restarted; None before."""
    workers = server.worker_pids()
    restarted = re.findall(r"worker \d+ restarted \(pid (\d+)\)", server.log_text())
    if len(workers) == count and dead not in workers and restarted:
        return workers
    return None


def test_a_killed_worker_is_replaced_and_requests_keep_succeeding(
    live_server: ServerFactory,
) -> None:
    server = live_server("serve:\n  workers: 2\n")
    data = os.urandom(200_000)
    digest = server.push_blob("supervised/app", data)
    survivor, victim = server.worker_pids(expect=2)

    os.kill(victim, signal.SIGKILL)
    for _ in range(10):  # the other worker serves meanwhile
        assert server.get_blob("supervised/app", digest).body == data
    workers = wait_for(lambda: replacement(server, 2, victim), "a new worker")

    assert survivor in workers
    log = server.log_text()
    assert re.search(
        rf"worker 1 \(pid {victim}\) was killed by SIGKILL after .*; restarting it", log
    )
    (new,) = set(workers) - {survivor}
    assert f"worker 1 restarted (pid {new})" in log
    for i in range(20):  # fresh connections, over both workers
        blob = os.urandom(10_000 + i)
        assert (
            server.get_blob("supervised/app", server.push_blob("supervised/app", blob)).body == blob
        )
    assert server.get_blob("supervised/app", digest).body == data


def test_a_single_worker_is_supervised_too(live_server: ServerFactory) -> None:
    server = live_server("serve:\n  workers: 1\n")
    data = os.urandom(50_000)
    digest = server.push_blob("single/app", data)
    (worker,) = server.worker_pids(expect=1)
    assert server.proc is not None and worker != server.proc.pid

    os.kill(worker, signal.SIGKILL)
    (new,) = wait_for(lambda: replacement(server, 1, worker), "a new worker")

    assert server.get_blob("single/app", digest).body == data
    assert f"worker 0 (pid {worker}) was killed by SIGKILL" in server.log_text()
    assert f"worker 0 restarted (pid {new})" in server.log_text()


def test_the_upload_purger_stays_on_one_worker_across_restarts(
    live_server: ServerFactory,
) -> None:
    server = live_server(
        "serve:\n  workers: 2\n",
        env={
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING": (
                "{enabled: true, age: 2s, interval: 1s, dryrun: false}"
            )
        },
    )

    def purgers(count: int) -> list[int] | None:
        found = [int(pid) for pid in PURGER.findall(server.log_text())]
        return found if len(found) >= count else None

    (purger,) = wait_for(lambda: purgers(1), "worker 0 to start its purger")
    (other,) = set(server.worker_pids(expect=2)) - {purger}

    os.kill(purger, signal.SIGKILL)
    wait_for(lambda: replacement(server, 2, purger), "a new worker 0")

    # exactly one worker purges at any time: the first worker 0, then its replacement
    first, second = wait_for(lambda: purgers(2), "the new worker 0 to start its purger")
    assert first == purger and second in server.worker_pids() and other != second
    r = server.request("POST", "/v2/purge/app/blobs/uploads/")
    location = location_path(r.headers["location"])
    assert server.request("PATCH", location, body=b"x" * 1000).status == 202
    wait_for(lambda: server.request("GET", location).status == 404, "the stale upload to go")


def test_workers_that_keep_dying_make_the_server_give_up(live_server: ServerFactory) -> None:
    server = live_server("serve:\n  workers: 2\n")
    proc = server.proc
    assert proc is not None

    def killed_until_exit() -> bool:
        for pid in server.worker_pids():
            os.kill(pid, signal.SIGKILL)
        return proc.poll() is not None

    wait_for(killed_until_exit, "the server to give up", timeout=120)

    assert proc.returncode == 1
    assert "giving up: 5 worker deaths within 60s" in server.log_text()
    assert process_group_members(proc.pid) == []  # the surviving worker was stopped


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_requested_stop_exits_0_and_leaves_no_process(
    live_server: ServerFactory, signum: signal.Signals
) -> None:
    server = live_server("serve:\n  workers: 2\n")
    server.push_blob("stop/app", b"before the stop")
    proc = server.proc
    assert proc is not None and len(server.worker_pids(expect=2)) == 2

    os.kill(proc.pid, signum)

    try:
        assert proc.wait(timeout=STOP_TIMEOUT) == 0
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not stop:\n{server.log_tail()}")
    assert process_group_members(proc.pid) == []
    log = server.log_text()
    assert f"{signum.name} received: stopping 2 worker(s)" in log
    assert "restarting" not in log


def patch_across_a_stop(server: RegistryServer) -> bytes:
    """Sends half of a PATCH body, SIGTERMs the server, sends the rest a second later;
    returns what came back on that connection (empty when it was cut off)."""
    r = server.request("POST", "/v2/drain/app/blobs/uploads/")
    assert r.status == 202, r.body
    body = os.urandom(1 << 20)
    head = (
        f"PATCH {location_path(r.headers['location'])} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\nContent-Type: {OCTET_STREAM}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    proc = server.proc
    assert proc is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(head + body[: len(body) // 2])
        time.sleep(0.3)  # the handler is reading the body now
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(1)
        try:
            conn.sendall(body[len(body) // 2 :])
            return conn.recv(4096)
        except OSError:  # reset: the worker went away with the request
            return b""


def test_a_stop_lets_the_requests_in_flight_finish_within_the_drain_timeout(
    live_server: ServerFactory,
) -> None:
    server = live_server("  draintimeout: 15s\nserve:\n  workers: 1\n")

    answer = patch_across_a_stop(server)

    assert answer.startswith(b"HTTP/1.1 202"), answer
    assert server.proc is not None and server.proc.wait(timeout=STOP_TIMEOUT) == 0


def test_a_drain_timeout_of_zero_stops_at_once(live_server: ServerFactory) -> None:
    server = live_server("  draintimeout: 0s\nserve:\n  workers: 1\n")

    answer = patch_across_a_stop(server)

    assert answer == b""
    assert server.proc is not None and server.proc.wait(timeout=STOP_TIMEOUT) == 0
