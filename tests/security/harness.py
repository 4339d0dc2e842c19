"""A live registry with TLS and credentials, built on the e2e harness's RegistryServer."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tests.e2e.server import RegistryServer, Response, write_config

from .pki import Pki


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class SecureServer(RegistryServer):
    """``pki``: serve TLS with its server certificate (the config must say so, see
    :meth:`configure`); ``credentials``: sent as Basic auth by :meth:`request` unless the
    caller gives an Authorization header; ``client_cert``: present the PKI's client
    certificate (mutual TLS)."""

    pki: Pki | None = None
    credentials: tuple[str, str] | None = None
    client_cert: bool = False
    # Ready at any HTTP answer without credentials: 401 counts, auth is on.
    ready_headers: ClassVar[dict[str, str]] = {"Authorization": ""}
    ready_statuses: ClassVar[tuple[int, ...]] = (200, 401)

    @property
    def url(self) -> str:
        return f"{'https' if self.pki else 'http'}://{self.host}"

    def configure(self, extra: str = "", *, tls: bool = True) -> Path:
        """Write the config: the e2e defaults, TLS with the PKI (when there is one), ``extra``."""
        tls_section = ""
        if self.pki is not None and tls:
            tls_section = (
                f"  tls:\n    certificate: {self.pki.server_cert}\n    key: {self.pki.server_key}\n"
            )
        self.store.mkdir(parents=True, exist_ok=True)
        return write_config(
            self.config, store=self.store, port=self.port, extra=tls_section + extra
        )

    def ssl_context(self, client_cert: bool | None = None) -> ssl.SSLContext:
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        if self.client_cert if client_cert is None else client_cert:
            context.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        return context

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        if self.pki is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, timeout=timeout, context=self.ssl_context()
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Response:
        headers = dict(headers or {})
        if self.credentials and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = basic_header(*self.credentials)
        headers = {k: v for k, v in headers.items() if v}  # "" removes a header
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()


def raw_exchange(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send ``data`` on a plain TCP connection and return everything the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)
