"""The effective configuration as YAML, the way ``dockyard config check`` prints it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from dockyard.config.durations import format_duration
from dockyard.config.model import Config


def masked_url(url: str) -> str:
    """``url`` with its password, if it has one, shown as ``***``: the one way Dockyard
    shows a URL that may hold credentials (the database's) to the operator."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def render_effective(config: Config) -> str:
    """The effective configuration as YAML in Distribution's layout, secrets masked."""
    data: dict[str, Any] = config.model_dump(mode="json")
    storage = data["storage"]
    driver = storage.pop("driver")
    data["storage"] = {driver: storage.pop("parameters"), **storage}
    if data["http"]["secret"] is not None:
        data["http"]["secret"] = "***"
    data["auth"] = {kind: section for kind, section in data["auth"].items() if section}
    if not config.http.tls.enabled:
        del data["http"]["tls"]
    for check in data["health"]["http"]:  # headers of a health check may carry credentials
        check["headers"] = {name: ["***"] for name in check["headers"]}
    # What an unset key resolves to on this machine, not null: the file to copy is this.
    data["database"]["url"] = masked_url(config.database_url())
    data["database"]["migrate"] = config.migrate_setting()
    data["serve"]["workers"] = config.worker_count()
    data["http"]["draintimeout"] = format_duration(config.http.drain_timeout())
    for endpoint in data["notifications"]["endpoints"]:
        # Webhook headers usually carry a token, and URLs may carry a password.
        endpoint["url"] = masked_url(endpoint["url"])
        endpoint["headers"] = {name: ["***"] for name in endpoint["headers"]}
    proxy = data["proxy"]
    for section in (proxy, *proxy["upstreams"]):
        if section["password"] is not None:
            section["password"] = "***"
        if section["remoteurl"]:
            section["remoteurl"] = masked_url(section["remoteurl"])
    for destination in data["replication"]["destinations"]:
        for secret in ("password", "token"):
            if destination[secret] is not None:
                destination[secret] = "***"
    header = (
        "# Dockyard effective configuration: defaults filled in, "
        "REGISTRY_* overrides applied, secrets masked.\n"
    )
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return header + body
