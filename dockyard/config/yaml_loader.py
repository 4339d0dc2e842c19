"""The PyYAML loader for configuration files and ``REGISTRY_*`` values.

Go's yaml decoder gives a text-typed key the scalar exactly as written (``secret: 0123``
is "0123", ``service: yes`` is "yes"), so non-string scalars keep that text around; keys
that appear twice in one mapping are reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Scalar:
    """A YAML scalar that is not a string: its value and the text it was written as."""

    value: Any
    text: str


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    self.duplicates.append(
                        f"line {key_node.start_mark.line + 1}: key {key_node.value!r} "
                        "appears twice in the same mapping; the last one wins"
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def _keep_text(
    construct: Callable[[yaml.SafeLoader, yaml.ScalarNode], Any],
) -> Callable[[yaml.SafeLoader, yaml.Node], Scalar]:
    def constructor(loader: yaml.SafeLoader, node: yaml.Node) -> Scalar:
        assert isinstance(node, yaml.ScalarNode)
        return Scalar(construct(loader, node), node.value)

    return constructor


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(node.value)


_Loader.add_constructor("tag:yaml.org,2002:int", _keep_text(yaml.SafeLoader.construct_yaml_int))
_Loader.add_constructor("tag:yaml.org,2002:float", _keep_text(yaml.SafeLoader.construct_yaml_float))
_Loader.add_constructor("tag:yaml.org,2002:bool", _keep_text(yaml.SafeLoader.construct_yaml_bool))
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def parse_yaml(text: str) -> tuple[Any, list[str]]:
    """The document in ``text`` and a message for each key that appears twice."""
    loader = _Loader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    finally:
        loader.dispose()
