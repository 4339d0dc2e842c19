"""The syntax of the ``http`` settings: Go's ``host:port`` addresses, URL path prefixes and
header names."""

from __future__ import annotations

import re


def split_host_port(addr: str) -> tuple[str, int]:
    """Split Go's ``host:port`` / ``:port`` / ``[v6]:port`` form; raise ValueError if invalid."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError("missing ']' in address")
        host, rest = addr[1:end], addr[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError("missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = addr.rpartition(":")
        if not sep:
            raise ValueError("missing port in address (use host:port or :port)")
        if ":" in host:
            raise ValueError("too many colons (write IPv6 addresses as [::1]:5000)")
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError("the port must be a number")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def canonical_header(name: str) -> str:
    """Go's canonical MIME header key: ``x-content-type-options`` -> ``X-Content-Type-Options``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def checked_headers(value: dict[str, list[str]]) -> dict[str, list[str]]:
    """Header names checked and made canonical (values of one name merged); values
    checked for line breaks. Raises ValueError."""
    merged: dict[str, list[str]] = {}
    for name, values in value.items():
        if not HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        for item in values:
            if any(c in item for c in "\r\n\0"):
                raise ValueError(f"the value of {name} must not contain line breaks")
        merged.setdefault(canonical_header(name), []).extend(values)
    return merged


def normalize_prefix(value: str) -> str:
    if any(c in value for c in "?#") or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a URL path")
    segments = [segment for segment in value.split("/") if segment]
    return "/" + "/".join(segments) if segments else ""
