"""The state of one configuration load: its warnings, and which keys the environment set."""

from __future__ import annotations

from typing import Any

from dockyard.config.tree import KeyPath


class LoadState:
    """Passed through every step of one load; ``refuse`` is False for commands that never
    serve, whose refusals become warnings."""

    def __init__(self, refuse: bool = True) -> None:
        self.warnings: list[str] = []
        self.origins: dict[KeyPath, str] = {}
        self.deprecated: dict[str, Any] = {}
        self.refuse = refuse

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def variables(self, path: KeyPath) -> list[str]:
        """The ``REGISTRY_*`` variables that set this key, a parent of it, or (for a section
        the environment created) keys inside it; empty when the key came from the file."""
        for length in range(len(path), 0, -1):
            variable = self.origins.get(path[:length])
            if variable is not None:
                return [variable]
        if not path:
            return []
        return sorted(name for key, name in self.origins.items() if key[: len(path)] == path)

    def source(self, path: KeyPath) -> str:
        """`` (set by REGISTRY_...)`` when the environment set this key, else ''."""
        variables = self.variables(path)
        return f" (set by {', '.join(variables)})" if variables else ""
