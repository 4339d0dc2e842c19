"""Reading the configuration model's field annotations while walking a YAML tree."""

from __future__ import annotations

import types
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from dockyard.config.tree import KeyPath, scalar_text
from dockyard.config.yaml_loader import Scalar


def unwrap(annotation: Any) -> Any:
    """The annotation without Annotated[...] and without an Optional's None."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin is Union or origin is types.UnionType:
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation


def allows_none(annotation: Any) -> bool:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation)
    return (origin is Union or origin is types.UnionType) and type(None) in get_args(annotation)


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def is_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    return get_origin(annotation) is Literal and all(
        isinstance(a, str) for a in get_args(annotation)
    )


OPAQUE: Final = "<opaque>"  # schema marker: a subtree Dockyard does not model


def section_from_text(path: KeyPath, value: Any) -> Any:
    """``storage: inmemory`` / ``REGISTRY_STORAGE=inmemory`` mean ``storage: {inmemory: {}}``.

    Distribution decodes a bare name into its storage and auth maps that way.
    """
    if path in (("storage",), ("auth",)) and isinstance(value, str | Scalar):
        name = scalar_text(value).strip()
        return {name: {}} if name else None
    return value


def has_keys(schema: Any) -> bool:
    """Whether a schema is a section, map or list (something a longer path can go into)."""
    core = unwrap(schema)
    return core is OPAQUE or is_model(core) or get_origin(core) in (dict, list)


def list_item_schema(schema: Any) -> Any:
    core = unwrap(schema)
    if get_origin(core) is list:
        return get_args(core)[0]
    return OPAQUE
