"""``http.tls.letsencrypt``: certificates from an ACME CA (Let's Encrypt by default).

registry:2's keys (``cachefile``, ``email``, ``hosts``; ``directoryurl`` from Distribution
v3) keep their meaning: the section is on exactly when ``cachefile`` is set. Like
registry:2, Dockyard answers the TLS-ALPN-01 challenge on its TLS port; its own key
``httpaddr`` switches to HTTP-01, answered there (the CA connects to port 80).
"""

from __future__ import annotations

import re
from typing import Annotated, Final
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from dockyard.config.http_syntax import split_host_port

LETS_ENCRYPT_DIRECTORY: Final = "https://acme-v02.api.letsencrypt.org/directory"
# One DNS label (RFC 1123); a host is labels joined by dots, 253 characters at most.
_LABEL: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _check_host(host: str) -> str:
    name = host.strip().lower().rstrip(".")
    if name.startswith("*."):
        raise ValueError(
            f"{host!r}: wildcard names need the DNS-01 challenge, which Dockyard does not answer"
        )
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{host!r} is not a DNS host name")
    return name


class LetsEncryptConfig(BaseModel):
    """``http.tls.letsencrypt``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cachefile: Annotated[str | None, BeforeValidator(_blank_is_none)] = None
    email: Annotated[str | None, BeforeValidator(_blank_is_none)] = None
    hosts: list[str] = Field(default_factory=list)
    directoryurl: str = LETS_ENCRYPT_DIRECTORY
    httpaddr: Annotated[str | None, BeforeValidator(_blank_is_none)] = None

    @property
    def enabled(self) -> bool:
        return bool(self.cachefile)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_check_host(host) for host in value))

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", value.strip()):
            raise ValueError(f"{value!r} is not an email address")
        return value.strip() if value else None

    @field_validator("directoryurl", mode="before")
    @classmethod
    def _directoryurl(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip() or LETS_ENCRYPT_DIRECTORY
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError("must be the https URL of an ACME directory")
        return value

    @field_validator("httpaddr", mode="before")
    @classmethod
    def _httpaddr(cls, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            return None if isinstance(value, str) else value
        split_host_port(value.strip())
        return value.strip()

    def http_bind(self) -> tuple[str, int] | None:
        """The (host, port) of the HTTP-01 responder (an empty host is every interface), or
        None: TLS-ALPN-01 on the TLS port."""
        if self.httpaddr is None:
            return None
        host, port = split_host_port(self.httpaddr)
        return host or "0.0.0.0", port

    @model_validator(mode="after")
    def _complete(self) -> LetsEncryptConfig:
        if self.enabled and not self.hosts:
            raise ValueError("hosts: give the host names to obtain a certificate for")
        return self
