"""Requests that arrive through a reverse proxy: believe ``X-Forwarded-*`` only from
trusted proxies.

When the peer of a connection is a trusted proxy (``security.trustedproxies``), the request
is seen as the proxy received it: the scheme from ``X-Forwarded-Proto``, the host from
``X-Forwarded-Host``, and the client address from ``X-Forwarded-For`` (its rightmost
address that is not itself a trusted proxy). Location headers, token realms and the
failed-login limit then use what the client used. From any other peer these headers are
ignored, so a client cannot forge its address or redirect others' URLs.

A proxy appends to a list header, so the value it wrote is the last one; that is the one
believed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.api.access_log import carry_to_logged

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A host, optionally with a port: no spaces, slashes, user info or anything a URL could
# be bent with.
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+)(?::[0-9]{1,5})?$")


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR ranges (``10.0.0.0/8``, ``::1``); raises ValueError."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


class ProxyPolicy:
    def __init__(self, trusted: Sequence[Network] = ()) -> None:
        self.trusted = tuple(trusted)

    def is_trusted(self, address: str | None) -> bool:
        if not address or not self.trusted:
            return False
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.trusted)

    def client_address(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client behind the chain of trusted proxies ending at ``peer``."""
        if not self.is_trusted(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def scheme_and_host(
        self, peer: str, scheme: str, host: str, proto_values: Sequence[str], hosts: Sequence[str]
    ) -> tuple[str, str]:
        if not self.is_trusted(peer):
            return scheme, host
        proto = _last(proto_values).lower()
        if proto in ("http", "https"):
            scheme = proto
        forwarded_host = _last(hosts)
        if forwarded_host and _HOST.match(forwarded_host):
            host = forwarded_host
        return scheme, host


def _last(values: Sequence[str]) -> str:
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    return items[-1] if items else ""


def forwarded_middleware(policy: ProxyPolicy) -> Middleware:
    """An aiohttp middleware that rewrites requests from trusted proxies (see module doc)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or ""
        if not policy.is_trusted(peer):
            return await handler(request)
        headers = request.headers
        scheme, host = policy.scheme_and_host(
            peer,
            request.scheme,
            request.host,
            headers.getall("X-Forwarded-Proto", []),
            headers.getall("X-Forwarded-Host", []),
        )
        client = policy.client_address(peer, headers.getall("X-Forwarded-For", []))
        forwarded = request.clone(scheme=scheme, host=host, remote=client)
        try:
            return await handler(forwarded)
        finally:
            carry_to_logged(forwarded, request)

    return middleware
