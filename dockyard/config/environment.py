"""``REGISTRY_*`` environment variables: overrides of the configuration file.

They follow Distribution's rules (see ``docs/configuration.md``):

* the variable name is ``REGISTRY_`` and the key path in upper case joined by ``_``,
  e.g. ``REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY``;
* variables are applied in lexical order of their names, so a whole section
  (``REGISTRY_STORAGE=inmemory``) is replaced before keys inside it are set;
* the value is parsed as YAML, so ``true``, numbers and ``[a, b]`` lists work; a key
  that holds text keeps the text exactly as written (``0123`` stays ``0123``);
* an override may create a key the file lacks; inside the open maps (``storage``,
  a driver's parameters, ``log.fields``, ``http.headers``) new keys are lower-cased;
* a list element is addressed by its index (``..._ALLOW_0``); the index one past the
  end appends;
* a variable that names no configuration key is ignored with a warning, and so is
  ``REGISTRY_AUTH_FILE``, which belongs to podman, skopeo and buildah.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, get_args, get_origin

import yaml
from pydantic import BaseModel

from dockyard.config.compat import special_children
from dockyard.config.errors import ConfigError
from dockyard.config.model import AuthConfig, Config, StorageConfig
from dockyard.config.schema import (
    OPAQUE,
    has_keys,
    is_model,
    list_item_schema,
    section_from_text,
    unwrap,
)
from dockyard.config.state import LoadState
from dockyard.config.suggestions import closest
from dockyard.config.tree import dotted, scalar_text
from dockyard.config.yaml_loader import parse_yaml
from dockyard.storage.factory import driver_names, parameters_model

ENV_PREFIX: Final = "REGISTRY_"
# Variables of other tools that happen to start with REGISTRY_: never overrides.
FOREIGN_VARIABLES: Final[Mapping[str, str]] = {
    "REGISTRY_AUTH_FILE": (
        "names the credentials file (containers-auth.json) of podman, skopeo and buildah, "
        "not a registry setting"
    ),
}
# Sections that are maps of named parts (a storage driver, an auth type): the environment
# may create any key in them, and their loader judges the names.
_OPEN_SECTIONS: Final[tuple[type[BaseModel], ...]] = (StorageConfig, AuthConfig)
# Fields of the storage model that hold what the file says, under other names.
_NOT_KEYS: Final = frozenset({"driver", "parameters"})


def _is_index(part: str) -> bool:
    return part.isascii() and part.isdigit()


def _env_step(schema: Any, parent: str, node: dict[Any, Any], part: str) -> tuple[Any, Any] | None:
    """Which key of ``node`` the variable component ``part`` names, and that key's schema.

    A modelled section (a Go struct in Distribution) only has its known keys, matched
    case-insensitively; an open map (storage, a driver's parameters, a ``dict`` field,
    an unmodelled section) takes any key, reusing an existing one that differs only in
    case, else creating it in lower case.
    """
    upper = part.upper()
    core = unwrap(schema)
    if is_model(core) and core not in _OPEN_SECTIONS:
        fields = core.model_fields
        for name in [*fields, *special_children(parent)]:
            if name.upper() == upper:
                field = fields.get(name)
                child_schema = field.annotation if field is not None else OPAQUE
                return next((k for k in node if scalar_text(k) == name), name), child_schema
        return None
    if core not in _OPEN_SECTIONS and core is not OPAQUE and get_origin(core) is not dict:
        return None  # a plain value has no keys inside
    key = next((k for k in node if scalar_text(k).upper() == upper), part.lower())
    if core in _OPEN_SECTIONS:
        name = scalar_text(key)
        if core is StorageConfig and name in driver_names():
            model = parameters_model(name)  # a driver without keys takes any, to ignore
            return key, model if model.model_fields else OPAQUE
        field = core.model_fields.get(name)
        if field is None or name in _NOT_KEYS:
            return key, OPAQUE
        return key, field.annotation
    if core is OPAQUE:
        return key, OPAQUE
    return key, get_args(core)[1]


def _names_a_key(parts: list[str]) -> bool:
    """Whether ``REGISTRY_`` + ``parts`` joined by ``_`` would name a configuration key."""
    schema: Any = Config
    path: list[str | int] = []
    for position, part in enumerate(parts):
        if position and not has_keys(schema):
            return False
        if get_origin(unwrap(schema)) is list:
            if not _is_index(part):
                return False
            schema = list_item_schema(schema)
            path.append(int(part))
            continue
        step = _env_step(schema, dotted(tuple(path)), {}, part)
        if step is None:
            return False
        key, schema = step
        path.append(scalar_text(key))
    return True


def _variable_suggestion(parts: list[str], position: int, schema: Any) -> str:
    """``; did you mean REGISTRY_...?`` for a variable whose component at ``position`` is a
    slip for a key of the section ``schema``, when the corrected variable names a key."""
    core = unwrap(schema)
    if not is_model(core):
        return ""
    match = closest(parts[position], core.model_fields)
    if match is None:
        return ""
    corrected = [*parts[:position], match.upper(), *parts[position + 1 :]]
    return f"; did you mean {ENV_PREFIX}{'_'.join(corrected)}?" if _names_a_key(corrected) else ""


def apply_environment(loading: LoadState, tree: dict[Any, Any], environ: Mapping[str, str]) -> None:
    """Apply the ``REGISTRY_*`` variables of ``environ`` to the file's ``tree``, in place."""
    # Lexical order, as Distribution: REGISTRY_STORAGE sorts before
    # REGISTRY_STORAGE_DELETE_ENABLED, so a section is replaced before keys in it are set.
    for name in sorted(environ):
        if name in FOREIGN_VARIABLES:
            loading.warn(
                f"{name}: not a configuration override, ignored: it {FOREIGN_VARIABLES[name]}"
            )
        elif name.startswith(ENV_PREFIX):
            _apply_variable(loading, tree, name, environ[name])


def _apply_variable(loading: LoadState, tree: dict[Any, Any], name: str, payload: str) -> None:
    parts = name[len(ENV_PREFIX) :].split("_")
    if any(not part for part in parts):
        loading.warn(f"{name}: does not name a configuration key, ignored")
        return
    if parts[0].upper() == "VERSION":
        loading.warn(f"{name}: the version cannot be overridden from the environment, ignored")
        return
    try:
        value, _ = parse_yaml(payload)
    except yaml.YAMLError:
        value = payload  # not valid YAML: take the text as it is
    node: Any = tree
    schema: Any = Config
    path: list[str | int] = []
    for position, part in enumerate(parts):
        key: Any
        if isinstance(node, list):
            where = dotted(tuple(path))
            if not _is_index(part):
                raise ConfigError(f"{name}: {where} is a list and {part!r} is not an index")
            index = int(part)
            if index > len(node):
                raise ConfigError(
                    f"{name}: index {index} is past the end of {where} "
                    f"({len(node)} items; {len(node)} appends)"
                )
            if index == len(node):
                node.append(None)
            key, schema = index, list_item_schema(schema)
            path.append(index)
        else:
            step = _env_step(schema, dotted(tuple(path)), node, part)
            if step is None:
                target = dotted((*path, part.lower()))
                hint = _variable_suggestion(parts, position, schema)
                loading.warn(f"{name}: there is no configuration key {target}, ignored{hint}")
                return
            key, schema = step
            path.append(scalar_text(key))
        here = tuple(path)
        if position == len(parts) - 1:
            node[key] = section_from_text(here, value)
            loading.origins[here] = name
            return
        if not has_keys(schema):
            target = dotted((*here, parts[position + 1].lower()))
            loading.warn(f"{name}: there is no configuration key {target}, ignored")
            return
        child = node[key] if isinstance(node, list) or key in node else None
        if child is None:
            child = [] if get_origin(unwrap(schema)) is list else {}
            node[key] = child
        elif not isinstance(child, dict | list):
            loading.warn(f"{name}: {dotted(here)} holds a value, not a section; ignored")
            return
        node = child
