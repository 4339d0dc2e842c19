"""Pure parsing for registry auth: ``WWW-Authenticate`` challenges, token answers, scopes
and ``Link`` pagination headers (RFC 7235 auth-params, RFC 8288 links).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

# auth-param = token "=" ( token / quoted-string ), separated by commas
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)')
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
#: Distribution's client treats a missing or shorter lifetime as 60 seconds
MIN_TOKEN_LIFETIME = 60.0


@dataclass(frozen=True)
class Challenge:
    """One challenge of a 401 answer: the scheme (lower-case) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")


def parse_challenge(header: str) -> Challenge | None:
    """``Bearer realm="...",service="...",scope="..."`` → Challenge; None when unreadable."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None:
            break
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params[match.group(1).lower()] = value
        position = match.end()
    return Challenge(scheme.lower(), params)


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # time.monotonic() seconds

    def fresh(self, margin: float = 5.0) -> bool:
        return time.monotonic() + margin < self.expires_at


def parse_token_answer(body: bytes, now: float | None = None) -> Token:
    """A token service's JSON answer (``token`` or ``access_token``, ``expires_in``)."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("token answer is not a JSON object")
    value = document.get("token") or document.get("access_token")
    if not isinstance(value, str) or not value:
        raise ValueError("token answer has no token")
    lifetime = document.get("expires_in")
    if not isinstance(lifetime, (int, float)) or lifetime < MIN_TOKEN_LIFETIME:
        lifetime = MIN_TOKEN_LIFETIME
    return Token(value, (time.monotonic() if now is None else now) + float(lifetime))


def repository_scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"


CATALOG_SCOPE = "registry:catalog:*"


def next_link(header: str | None, base_url: str) -> str | None:
    """The absolute URL of a ``Link: <...>; rel="next"`` header, if there is one."""
    if not header:
        return None
    for match in _LINK.finditer(header):
        target, params = match.group(1), match.group(2)
        if re.search(r'rel\s*=\s*"?next"?', params):
            return str(urljoin(base_url, target))
    return None
