"""A TCP relay in front of the upstream registry that can stall, cut or corrupt the
response to one blob ``GET``: the upstream faults a real registry does not produce on
demand (a slow link, a connection lost mid-body, bytes damaged on the way).

A rule is armed for a digest and taken by the next connection whose request names that
blob; every other connection is relayed untouched. Response bytes are counted from the
start of the response (status line and headers included).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Rule:
    """What to do once ``after`` response bytes went through: ``hold`` until ``release``
    is set, ``cut`` the connection, or ``corrupt`` the next byte."""

    action: str
    after: int
    release: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)


class Gate:
    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._rules: dict[bytes, Rule] = {}
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, digest: str, action: str, after: int) -> Rule:
        rule = Rule(action, after)
        with self._lock:
            self._rules[f"/blobs/{digest} ".encode()] = rule
        return rule

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
            holder: list[Rule] = []
            threading.Thread(
                target=self._requests, args=(client, upstream, holder), daemon=True
            ).start()
            threading.Thread(
                target=self._responses, args=(upstream, client, holder), daemon=True
            ).start()

    def _take(self, data: bytes) -> Rule | None:
        with self._lock:
            for marker, rule in self._rules.items():
                if marker in data:
                    del self._rules[marker]
                    return rule
        return None

    def _requests(self, source: socket.socket, sink: socket.socket, holder: list[Rule]) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                rule = self._take(data)
                if rule is not None:
                    holder.append(rule)
                sink.sendall(data)
        _close(source, sink)

    def _responses(self, source: socket.socket, sink: socket.socket, holder: list[Rule]) -> None:
        sent = 0  # bytes of the response the rule counts
        counting: Rule | None = None
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                rule = holder[0] if holder else None
                if rule is not counting:
                    counting, sent = rule, 0
                if rule is not None and sent + len(data) > rule.after:
                    keep = max(rule.after - sent, 0)
                    sink.sendall(data[:keep])
                    sent += keep
                    data = data[keep:]
                    holder.clear()
                    rule.reached.set()
                    if rule.action == "cut":
                        break
                    if rule.action == "hold":
                        rule.release.wait()
                    elif rule.action == "corrupt":
                        data = bytes([data[0] ^ 0xFF]) + data[1:]
                sink.sendall(data)
                sent += len(data)
        _close(source, sink)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
