"""Wiring the pull-through cache: its routes from the ``proxy`` section."""

from __future__ import annotations

from dockyard.config.proxy import ProxyConfig
from dockyard.proxy.routing import ProxyRoutes, Upstream
from dockyard.remote import RemoteRegistry


def proxy_routes(config: ProxyConfig) -> ProxyRoutes:
    """registry:2's ``remoteurl`` is one upstream for every repository (empty prefix)."""
    if config.remoteurl:
        remote = RemoteRegistry(
            config.remoteurl, username=config.username, password=config.password
        )
        return ProxyRoutes([Upstream("", remote, config.ttl, False)])
    return ProxyRoutes(
        [
            Upstream(
                u.prefix,
                RemoteRegistry(u.remoteurl, username=u.username, password=u.password),
                u.ttl,
                u.stripprefix,
            )
            for u in config.upstreams
        ]
    )
