"""Dockyard's configuration: a Distribution (``registry:2``) ``config.yml`` plus overrides.

The file format is Distribution 2.8's, version ``0.1``; ``REGISTRY_*`` environment
variables override it with Distribution's rules (``environment.py``). Keys Dockyard does
not implement yet are either accepted with a warning (they change nothing a client relies
on) or refused with a :class:`ConfigError` when ignoring them would quietly weaken the
deployment: TLS, authentication, pull-through cache mode (``compat.py``), a storage
driver Distribution has and Dockyard does not implement yet (``dockyard.storage.factory``,
which also knows the drivers there are and reads their parameters).

The modules, in the order a load uses them: ``yaml_loader`` and ``tree`` (the file),
``environment`` (the overrides), ``normalize`` (keys checked against ``model``, with
``compat`` and ``suggestions``), ``adjust`` (Distribution's fix-ups), ``load`` (all of it:
:func:`load_config`), ``render`` (the effective configuration as YAML).
"""

from dockyard.config.compat import DEPRECATED_KEYS, REFUSED_KEYS, UNSUPPORTED_KEYS
from dockyard.config.durations import format_duration, parse_duration
from dockyard.config.environment import FOREIGN_VARIABLES
from dockyard.config.errors import ConfigError
from dockyard.config.load import LoadedConfig, load_config
from dockyard.config.model import (
    DEFAULT_MANIFEST_MAX_BYTES,
    AccessConfig,
    AccessLogConfig,
    AccessRuleConfig,
    AdminsConfig,
    AuthConfig,
    CatalogConfig,
    Config,
    DatabaseConfig,
    DeleteConfig,
    FailedLoginsConfig,
    HtpasswdAuthConfig,
    HttpConfig,
    LimitsConfig,
    LogConfig,
    MaintenanceConfig,
    ManifestUrlsConfig,
    ManifestValidationConfig,
    ReadOnlyConfig,
    SecurityConfig,
    ServeConfig,
    StorageConfig,
    TlsConfig,
    TokenAuthConfig,
    UploadPurgingConfig,
    ValidationConfig,
)
from dockyard.config.render import masked_url, render_effective

__all__ = [
    "DEFAULT_MANIFEST_MAX_BYTES",
    "DEPRECATED_KEYS",
    "FOREIGN_VARIABLES",
    "REFUSED_KEYS",
    "UNSUPPORTED_KEYS",
    "AccessConfig",
    "AccessLogConfig",
    "AccessRuleConfig",
    "AdminsConfig",
    "AuthConfig",
    "CatalogConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "DeleteConfig",
    "FailedLoginsConfig",
    "HtpasswdAuthConfig",
    "HttpConfig",
    "LimitsConfig",
    "LoadedConfig",
    "LogConfig",
    "MaintenanceConfig",
    "ManifestUrlsConfig",
    "ManifestValidationConfig",
    "ReadOnlyConfig",
    "SecurityConfig",
    "ServeConfig",
    "StorageConfig",
    "TlsConfig",
    "TokenAuthConfig",
    "UploadPurgingConfig",
    "ValidationConfig",
    "format_duration",
    "load_config",
    "masked_url",
    "parse_duration",
    "render_effective",
]
