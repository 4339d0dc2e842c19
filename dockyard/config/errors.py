"""The error a configuration that cannot be used raises."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration cannot be used; the message is for the operator and names the key."""
