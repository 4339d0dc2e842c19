"""What the object-store emulator fixtures share (tests/azurite.py, tests/fakegcs.py): a
server process on a free 127.0.0.1 port, started again on another port when it dies at
once (another process took the port), ready when a probe URL answers, stopped by its PID.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

START_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True  # any answer: it is listening
    except OSError:
        return False
    return True


def start_on_free_port(
    command: Callable[[int], list[str]], probe: Callable[[int], str], ready_seconds: float
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``command(port)`` until ``probe(port)`` answers; the process and its port."""
    for _attempt in range(START_ATTEMPTS):
        port = free_port()
        process = subprocess.Popen(
            command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + ready_seconds
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(probe(port)):
                return process, port
            time.sleep(0.05)
        stop(process)
    raise RuntimeError(f"{command(0)[0]} did not answer on 127.0.0.1")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
