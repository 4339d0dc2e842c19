"""Loading a configuration: the file (or the embedded defaults), then the environment,
then the model; every step's problems end up in one :class:`ConfigError` or warnings."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from dockyard.config.adjust import adjust
from dockyard.config.environment import apply_environment
from dockyard.config.errors import ConfigError, validation_message
from dockyard.config.model import SUPPORTED_VERSION, Config, StorageConfig
from dockyard.config.normalize import normalize
from dockyard.config.schema import section_from_text
from dockyard.config.state import LoadState
from dockyard.config.tree import describe, lookup, scalar_text
from dockyard.config.yaml_loader import Scalar, parse_yaml


@dataclass(frozen=True)
class LoadedConfig:
    """A usable configuration and the warnings loading it gave."""

    config: Config
    warnings: list[str]


# What ``dockyard`` runs with when no file is given.
_EMBEDDED_DEFAULTS: Final[Mapping[str, Any]] = {
    "version": SUPPORTED_VERSION,
    "storage": {
        "filesystem": {"rootdirectory": "./data"},
        "delete": {"enabled": True},
    },
    "http": {"addr": ":5000"},
}


def _read_file(path: Path, loading: LoadState) -> dict[Any, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        tree, duplicates = parse_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = exc.problem or exc.context or "malformed YAML"
        raise ConfigError(f"{path}: invalid YAML at {where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    for duplicate in duplicates:
        loading.warn(f"{path} {duplicate}")
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {describe(tree)}")
    return tree


def load_config(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    serving: bool = True,
    strict: bool = False,
) -> LoadedConfig:
    """Read a Distribution ``config.yml`` (or the embedded defaults when ``path`` is None),
    apply ``REGISTRY_*`` overrides from ``environ`` (default: ``os.environ``), and validate.

    Raises ConfigError with an operator-facing message when the result cannot be used.
    With ``serving`` False (commands that never serve, such as ``dockyard import``),
    sections refused only because serving without them would be unsafe are warnings.
    With ``strict``, any warning is an error too (a typo'd key is otherwise only a
    warning, and the setting it meant silently keeps its default).
    """
    loading = LoadState(refuse=serving)
    if path is None:
        tree: dict[Any, Any] = copy.deepcopy(dict(_EMBEDDED_DEFAULTS))
    else:
        tree = _read_file(Path(path), loading)

    raw_version = lookup(tree, "version")
    if raw_version is None:
        raise ConfigError(
            f"version: missing; a configuration starts with 'version: {SUPPORTED_VERSION}'"
        )
    version = scalar_text(raw_version) if isinstance(raw_version, str | Scalar) else None
    if version != SUPPORTED_VERSION:
        shown = repr(version) if version is not None else describe(raw_version)
        raise ConfigError(
            f"version: unsupported version {shown}; only {SUPPORTED_VERSION} is supported"
        )
    for key in list(tree):
        tree[key] = section_from_text((scalar_text(key),), tree[key])

    apply_environment(loading, tree, os.environ if environ is None else environ)
    if lookup(tree, "storage") is None:
        normalize(loading, StorageConfig, None, ("storage",))  # raises: no storage driver
    data = normalize(loading, Config, tree, ())
    adjust(loading, data)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, loading)) from None

    if config.storage.in_process and (config.serve.workers or 1) > 1:
        raise ConfigError(
            f"serve.workers: {config.storage.driver} storage lives inside one process, "
            f"so it cannot be served by {config.serve.workers} workers; use 1"
            + loading.source(("serve", "workers"))
        )
    if strict and loading.warnings:
        count = len(loading.warnings)
        listed = "".join(f"\n  {warning}" for warning in loading.warnings)
        raise ConfigError(
            "strict mode turns every configuration warning into an error; "
            f"{count} warning{'s' if count > 1 else ''}:{listed}"
        )
    return LoadedConfig(config=config, warnings=loading.warnings)
