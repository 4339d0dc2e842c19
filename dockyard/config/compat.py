"""What Dockyard does with the registry:2 keys it knows of but does not implement.

Refused keys stop a serving Dockyard (ignoring them would quietly weaken the deployment),
unsupported ones are accepted with a warning, deprecated ones are honoured the way
Distribution honours them. Each table holds the message the operator sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

# Sections Dockyard refuses to ignore: starting without them would quietly weaken the
# deployment. To implement one, model it and delete its entry here.
REFUSED_KEYS: Final[Mapping[str, str]] = {}
# When a refused section actually asks for its feature (Distribution's own test);
# a present but inert section is ignored with a warning instead.
REFUSAL_TRIGGERS: Final[Mapping[str, Callable[[Any], bool]]] = {}

# Auth types Distribution has that Dockyard refuses, with the reason.
UNSUPPORTED_AUTH: Final[Mapping[str, str]] = {
    "silly": (
        "the silly auth type (a development stub that lets any Authorization header in) "
        "is not supported"
    ),
}

# Accepted and ignored, with one warning naming the key.
UNSUPPORTED_KEYS: Final[frozenset[str]] = frozenset(
    {
        "log.hooks",
        "log.reportcaller",
        "storage.cache",
        "storage.filesystem.maxthreads",
        "storage.s3.accelerate",
        "storage.s3.usedualstack",
        "storage.s3.loglevel",
        "storage.tag",
        "http.http2",
        "middleware",
        "redis",
        "reporting",
        "compatibility",
        "policy",
    }
)

# Deprecated keys that are honoured the way Distribution honours them.
DEPRECATED_KEYS: Final[Mapping[str, str]] = {
    "loglevel": "loglevel: deprecated, use log.level",
    "validation.enabled": "validation.enabled: deprecated, use validation.disabled",
}

_SPECIAL_KEYS: Final = frozenset(REFUSED_KEYS) | UNSUPPORTED_KEYS | frozenset(DEPRECATED_KEYS)


def special_children(parent: str) -> list[str]:
    """The names of the refused, unsupported and deprecated keys right under ``parent``."""
    prefix = parent + "." if parent else ""
    return [
        key[len(prefix) :]
        for key in _SPECIAL_KEYS
        if key.startswith(prefix) and "." not in key[len(prefix) :]
    ]
