"""Which upstream, if any, a repository mirrors, and the name to ask it for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from dockyard.oci import errors
from dockyard.remote import RemoteRegistry


@dataclass(frozen=True)
class Upstream:
    """``prefix`` is empty for registry:2's ``proxy.remoteurl``: every repository."""

    prefix: str
    remote: RemoteRegistry
    ttl: timedelta
    strip_prefix: bool

    def covers(self, name: str) -> bool:
        return not self.prefix or name == self.prefix or name.startswith(self.prefix + "/")

    def remote_name(self, name: str) -> str:
        if self.strip_prefix and self.prefix:
            return name[len(self.prefix) + 1 :]
        return name

    @property
    def label(self) -> str:
        return self.prefix or self.remote.base_url


class ProxyRoutes:
    """The configured upstreams, longest prefix first."""

    def __init__(self, upstreams: list[Upstream]) -> None:
        self.upstreams = sorted(upstreams, key=lambda u: len(u.prefix), reverse=True)

    def find(self, name: str) -> Upstream | None:
        for upstream in self.upstreams:
            if upstream.covers(name):
                return upstream
        return None

    def namespaced(self, name: str, ns: str | None) -> str:
        """containerd's ``?ns=docker.io``: ``library/alpine`` is ``docker.io/library/alpine``
        when an upstream has that prefix and the name is not under it already."""
        if not ns:
            return name
        for upstream in self.upstreams:
            if upstream.prefix == ns and not upstream.covers(name):
                return f"{ns}/{name}"
        return name

    def check_writable(self, name: str) -> None:
        """A mirrored repository is read-only: registry:2's answer in proxy mode."""
        if self.find(name) is not None:
            raise errors.RegistryError(
                errors.UNSUPPORTED,
                f"repository {name} is a read-only mirror (proxy): pushes and deletes are refused",
            )

    async def close(self) -> None:
        for upstream in self.upstreams:
            await upstream.remote.close()
