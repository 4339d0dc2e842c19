"""Checking the configuration tree against the model, key by key, before pydantic sees it.

Unknown keys are warnings (with a ``did you mean``), refused ones stop a serving Dockyard,
scalars become the text or value their field wants, and ``storage`` and ``auth`` are
reduced to the one driver or access controller they name. Every message says which
``REGISTRY_*`` variable set the key, if one did.
"""

from __future__ import annotations

from typing import Any, Final, get_args, get_origin

from pydantic import BaseModel, ValidationError

from dockyard.config.compat import (
    DEPRECATED_KEYS,
    REFUSAL_TRIGGERS,
    REFUSED_KEYS,
    UNSUPPORTED_AUTH,
    UNSUPPORTED_KEYS,
    special_children,
)
from dockyard.config.errors import ConfigError, validation_message
from dockyard.config.model import AuthConfig, StorageConfig
from dockyard.config.schema import allows_none, is_model, is_text, section_from_text, unwrap
from dockyard.config.state import LoadState
from dockyard.config.suggestions import did_you_mean
from dockyard.config.tree import KeyPath, describe, dotted, has_content, plain, scalar_text
from dockyard.config.yaml_loader import Scalar
from dockyard.storage.factory import NOT_IMPLEMENTED, driver_names, parameters_model

# Keys of Distribution's ``storage`` map that are not a driver selection.
_STORAGE_OPTION_KEYS: Final = frozenset({"delete", "maintenance", "cache", "redirect", "tag"})


def normalize(loading: LoadState, annotation: Any, value: Any, path: KeyPath) -> Any:
    """``value``, found at ``path``, made ready for the field typed ``annotation``."""
    core = unwrap(annotation)
    if core is StorageConfig:
        return _storage(loading, value, path)
    if core is AuthConfig:
        return _auth(loading, value, path)
    if is_model(core):
        return _section(loading, core, value, path)
    origin = get_origin(core)
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            got = describe(value)
            raise ConfigError(
                f"{dotted(path)}: expected a mapping, got {got}{loading.source(path)}"
            )
        item_annotation = get_args(core)[1]
        item_core = unwrap(item_annotation)
        result: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = scalar_text(raw_key)
            if item is None and get_origin(item_core) is list:
                continue  # ``X-Header:`` with nothing: no header, as Go's nil slice
            if item is None and is_text(item_core):
                result[key] = ""
                continue
            result[key] = normalize(loading, item_annotation, item, (*path, key))
        return result
    if origin is list:
        if value is None:
            return []
        if not isinstance(value, list):
            return plain(value)  # the model reports the type error
        item_annotation = get_args(core)[0]
        return [normalize(loading, item_annotation, v, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, Scalar):
        return value.text if is_text(core) else value.value
    return plain(value)


def _section(
    loading: LoadState, model: type[BaseModel], value: Any, path: KeyPath
) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{dotted(path) or 'the configuration'}: expected a mapping of keys, "
            f"got {describe(value)}{loading.source(path)}"
        )
    result: dict[str, Any] = {}
    for raw_key, item in value.items():
        key = scalar_text(raw_key)
        child = (*path, key)
        if _special(loading, child, item):
            continue
        field = model.model_fields.get(key)
        if field is None:
            known = [*model.model_fields, *special_children(dotted(path))]
            hint = did_you_mean(path, key, known)
            loading.warn(f"{dotted(child)}: unknown key, ignored{hint}{loading.source(child)}")
            continue
        if item is None and not allows_none(field.annotation):
            continue  # ``key:`` with no value keeps the default
        result[key] = normalize(loading, field.annotation, item, child)
    return result


def _special(loading: LoadState, path: KeyPath, value: Any) -> bool:
    """Handle a refused, unsupported or deprecated key; False for any other key."""
    key = dotted(path)
    if key in REFUSED_KEYS:
        if REFUSAL_TRIGGERS[key](value):
            if loading.refuse:
                raise ConfigError(REFUSED_KEYS[key] + loading.source(path))
            loading.warn(f"{key}: ignored by this command{loading.source(path)}")
            return True
        if has_content(value):
            loading.warn(f"{key}: asks for nothing Distribution would act on, ignored")
        return True
    if key in UNSUPPORTED_KEYS:
        if has_content(value):
            loading.warn(f"{key}: not supported yet, ignored{loading.source(path)}")
        return True
    if key in DEPRECATED_KEYS:
        loading.deprecated[key] = value
        loading.warn(DEPRECATED_KEYS[key] + loading.source(path))
        return True
    return False


def _auth_refusal(loading: LoadState, key: str, problem: str, path: KeyPath) -> ConfigError:
    """Why the auth type at ``path`` stops Dockyard, where it came from, and the fix."""
    variables = loading.variables(path)
    if variables:
        names = ", ".join(variables)
        plural = "s" if len(variables) > 1 else ""
        origin = f", set by the environment variable{plural} {names}"
        fix = (
            f"unset {names} in the server's environment, "
            "or configure auth.htpasswd or auth.token instead"
        )
    else:
        origin = ""
        fix = (
            "configure auth.htpasswd or auth.token in its place, "
            f"or remove auth.{key} to serve without authentication"
        )
    return ConfigError(
        f"auth.{key}: {problem}{origin}; refusing to start without the authentication "
        f"it asks for. To fix it, {fix}"
    )


def _auth(loading: LoadState, value: Any, path: KeyPath) -> dict[str, Any]:
    """``auth`` names one access controller. An unknown or unsupported one stops
    Dockyard: ignoring it would serve without the authentication the file asks for."""
    value = section_from_text(path, value)
    if value is None:
        return {}
    if not isinstance(value, dict):
        got = describe(value)
        raise ConfigError(f"auth: expected a mapping, got {got}{loading.source(path)}")
    result: dict[str, Any] = {}
    for raw_key, item in value.items():
        key = scalar_text(raw_key)
        child = (*path, key)
        if key == "none":
            continue
        if key in UNSUPPORTED_AUTH:
            raise _auth_refusal(loading, key, UNSUPPORTED_AUTH[key], child)
        field = AuthConfig.model_fields.get(key)
        if field is None:
            supported = ", ".join(AuthConfig.model_fields)
            hint = did_you_mean(path, key, AuthConfig.model_fields)
            problem = f"unknown auth type (supported: {supported}{hint})"
            raise _auth_refusal(loading, key, problem, child)
        result[key] = normalize(loading, field.annotation, item if item is not None else {}, child)
    if len(result) > 1:
        found = ", ".join(result)
        raise ConfigError(
            f"auth: exactly one auth type may be configured, found {found}{loading.source(path)}"
        )
    return result


def _driver_sections() -> str:
    """``storage.filesystem or storage.inmemory``: the sections that choose a driver."""
    return " or ".join(f"storage.{name}" for name in driver_names())


def _storage(loading: LoadState, value: Any, path: KeyPath) -> dict[str, Any]:
    """``storage`` names one driver (:mod:`dockyard.storage.factory` knows which exist)
    and holds its parameters, read by the driver's own model."""
    value = section_from_text(path, value)
    missing = (
        f"storage: no storage driver configured; add a {_driver_sections()} "
        f"section{loading.source(path)}"
    )
    if value is None:
        raise ConfigError(missing)
    if not isinstance(value, dict):
        got = describe(value)
        raise ConfigError(f"storage: expected a mapping, got {got}{loading.source(path)}")
    result: dict[str, Any] = {}
    drivers: list[tuple[str, Any, KeyPath]] = []
    for raw_key, item in value.items():
        key = scalar_text(raw_key)
        child = (*path, key)
        if _special(loading, child, item):
            continue
        if key in _STORAGE_OPTION_KEYS:
            if item is not None:
                annotation = StorageConfig.model_fields[key].annotation
                result[key] = normalize(loading, annotation, item, child)
            continue
        if key == "driver":
            raise ConfigError(
                f"storage.driver: not a configuration key; choose the driver with a "
                f"{_driver_sections()} section (or REGISTRY_STORAGE=<driver>)"
                f"{loading.source(child)}"
            )
        drivers.append((key, item, child))
    if not drivers:
        raise ConfigError(missing)
    if len(drivers) > 1:
        found = ", ".join(f"{key}{loading.source(child)}" for key, _, child in drivers)
        raise ConfigError(f"storage: exactly one storage driver may be configured, found {found}")
    name, params, child = drivers[0]
    supported = ", ".join(driver_names())
    if name in NOT_IMPLEMENTED:
        raise ConfigError(
            f"storage.{name}: the {name} storage driver is not supported yet "
            f"(supported: {supported}); refusing to start on "
            f"other storage than configured{loading.source(child)}"
        )
    if name not in driver_names():
        hint = did_you_mean(path, name, [*driver_names(), *_STORAGE_OPTION_KEYS])
        raise ConfigError(
            f"storage.{name}: unknown storage driver "
            f"(supported: {supported}{hint}){loading.source(child)}"
        )
    result["driver"] = name
    result["parameters"] = _driver_parameters(loading, name, params, child)
    return result


def _driver_parameters(loading: LoadState, name: str, value: Any, path: KeyPath) -> BaseModel:
    """Driver ``name``'s section at ``path``, read by its model; a driver without
    parameters ignores whatever the section holds, with a warning."""
    model = parameters_model(name)
    values: dict[str, Any] = {}
    if model.model_fields:
        values = _section(loading, model, value, path)
    elif isinstance(value, dict):
        for raw_key in value:
            loading.warn(
                f"storage.{name}.{scalar_text(raw_key)}: unknown key, ignored "
                f"(the {name} driver takes no parameters)"
            )
    elif has_content(value):
        loading.warn(f"storage.{name}: the {name} driver takes no parameters, ignored")
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, loading, path)) from None
