"""What ``dockyard serve`` sets up before it migrates or forks: the listening socket and a
usable storage directory. A problem there stops it with one line naming the
configuration key, instead of a traceback after the migrations have run."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

ROOT_KEY = "storage.filesystem.rootdirectory"


class StartupError(Exception):
    """The registry cannot start as configured; the message names the key to change."""


def listen(host: str, port: int, key: str = "http.addr") -> socket.socket:
    """The listening socket of ``key`` (``http.addr``), inheritable by the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise StartupError(f"{key}: cannot listen on {address}: {_reason(exc)}") from None
    sock.set_inheritable(True)
    return sock


def check_storage_root(rootdirectory: str) -> None:
    """``storage.filesystem.rootdirectory`` is a directory Dockyard can write (created
    when missing), or StartupError."""
    root = Path(rootdirectory).absolute()
    try:
        if root.exists() and not root.is_dir():
            kind = "a file, not a directory" if root.is_file() else "not a directory"
            raise StartupError(f"{ROOT_KEY}: {root} is {kind}")
    except OSError as exc:
        raise StartupError(f"{ROOT_KEY}: cannot use {root}: {_reason(exc)}") from None
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"{ROOT_KEY}: cannot create {root}: {_reason(exc)}") from None
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".dockyard-write-check-", dir=root)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as exc:
        raise StartupError(f"{ROOT_KEY}: cannot write to {root}: {_reason(exc)}") from None


def _reason(error: OSError) -> str:
    """``Address already in use`` as ``address already in use``."""
    text = error.strerror or str(error)
    return text[:1].lower() + text[1:]
