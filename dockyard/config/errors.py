"""The error a configuration that cannot be used raises, and how pydantic's become one."""

from __future__ import annotations

from pydantic import ValidationError

from dockyard.config.state import LoadState
from dockyard.config.tree import KeyPath, describe, dotted


class ConfigError(Exception):
    """The configuration cannot be used; the message is for the operator and names the key."""


def validation_message(error: ValidationError, loading: LoadState, prefix: KeyPath = ()) -> str:
    """One line per problem pydantic found in the section at ``prefix``, naming its key."""
    lines = []
    for item in error.errors(include_url=False):
        path: KeyPath = (*prefix, *item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        shown = ""
        if item["type"] != "missing" and not isinstance(item.get("input"), dict | list):
            shown = f" (got {describe(item.get('input'))})"
        lines.append(f"{dotted(path) or 'configuration'}: {message}{shown}{loading.source(path)}")
    return "\n".join(lines)
