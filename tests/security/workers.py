"""Which worker processes of a live server accept connections, read from /proc.

A worker accepts once its event loop watches the listening socket: an epoll instance of
the process lists the socket's inode. Startup work a worker does before that (loading
files, logging about them) is then over.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LISTEN = "0A"  # the TCP state of a listening socket in /proc/net/tcp


def listening_inode(port: int) -> int:
    """The inode of the socket listening on ``127.0.0.1:port`` (or any address)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
            return int(inode)
    raise AssertionError(f"nothing listens on port {port}")


def watches_socket(pid: int, inode: int) -> bool:
    """Whether an epoll instance of process ``pid`` watches the socket ``inode``."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # the process is gone
        return False
    watched = re.compile(rf"^tfd:.*\bino:{inode:x}\b", re.MULTILINE)
    for fd in fds:
        try:
            if os.readlink(fd) != "anon_inode:[eventpoll]":
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:
            continue
        if watched.search(info):
            return True
    return False
