"""Reading the tree the YAML loader gives: scalars as text or value, key paths, messages."""

from __future__ import annotations

from typing import Any

from dockyard.config.yaml_loader import Scalar

# Where a value sits in the tree: keys, and indexes into lists.
KeyPath = tuple[str | int, ...]


def dotted(path: KeyPath) -> str:
    """The key path as messages show it: ``auth.token.realm``, ``access.rules[0].users``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def scalar_text(value: Any) -> str:
    """A key or scalar as the file wrote it."""
    if isinstance(value, str):
        return value
    if isinstance(value, Scalar):
        return value.text
    if value is None:
        return ""
    return str(value)


def plain(value: Any) -> Any:
    """The tree with every Scalar replaced by its value (for messages)."""
    if isinstance(value, Scalar):
        return value.value
    if isinstance(value, dict):
        return {scalar_text(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def describe(value: Any) -> str:
    """A value, shortened, for ``got ...`` in a message."""
    value = plain(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def has_content(value: Any) -> bool:
    """Whether a subtree sets anything: not only blanks, empty sections and nulls."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict):
        return any(has_content(item) for item in value.values())
    if isinstance(value, list):
        return any(has_content(item) for item in value)
    return True


def lookup(value: Any, *keys: str) -> Any:
    """The value at ``keys`` under ``value``, or None when a key is missing."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = next((v for k, v in value.items() if scalar_text(k) == key), None)
    return value
