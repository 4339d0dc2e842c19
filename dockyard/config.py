"""Dockyard's configuration: a Distribution (``registry:2``) ``config.yml`` plus overrides.

The file format is Distribution 2.8's, version ``0.1``; ``REGISTRY_*`` environment
variables override it with Distribution's rules (see ``docs/configuration.md``):

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
* a variable that names no configuration key is ignored with a warning.

Keys Dockyard does not implement yet are either accepted with a warning (they change
nothing a client relies on) or refused with a :class:`ConfigError` when ignoring them
would quietly weaken the deployment (TLS, authentication, pull-through cache mode,
a storage driver other than ``filesystem``/``inmemory``).
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from dockyard.auth.token import ASYMMETRIC_ALGORITHMS
from dockyard.tls import is_known_suite

__all__ = [
    "DEFAULT_MANIFEST_MAX_BYTES",
    "DEPRECATED_KEYS",
    "REFUSED_KEYS",
    "SUPPORTED_STORAGE_DRIVERS",
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
    "FilesystemConfig",
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
    "parse_duration",
    "render_effective",
]

ENV_PREFIX: Final = "REGISTRY_"
SUPPORTED_VERSION: Final = "0.1"
DEFAULT_MANIFEST_MAX_BYTES: Final = 4 * 1024 * 1024
SUPPORTED_STORAGE_DRIVERS: Final = ("filesystem", "inmemory")
# Drivers Distribution ships that Dockyard does not implement yet.
KNOWN_STORAGE_DRIVERS: Final = frozenset({"s3", "gcs", "azure", "swift", "oss"})
# Keys of Distribution's ``storage`` map that are not a driver selection.
_STORAGE_OPTION_KEYS: Final = frozenset({"delete", "maintenance", "cache", "redirect", "tag"})
SQLITE_FILENAME: Final = "dockyard.db"


class ConfigError(Exception):
    """The configuration cannot be used; the message is for the operator and names the key."""


# --------------------------------------------------------------------------------------
# Go durations ("168h", "1h30m", "1.5s", "300ms")

_NS_PER_UNIT: Final[Mapping[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_MAX_DURATION_NS: Final = 2**63 - 1  # Go's time.Duration is an int64 count of nanoseconds
_NS_PER_US: Final = 1_000
_US_PER_S: Final = 1_000_000


def _is_ascii_digit(char: str) -> bool:
    return "0" <= char <= "9"


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string (``time.ParseDuration`` syntax) into a timedelta.

    A duration is an optionally signed sequence of decimal numbers, each with an
    optional fraction and a unit: ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h``.
    ``"0"`` needs no unit. Precision below a microsecond is truncated.
    Raises ValueError on anything else.
    """
    rest = text
    negative = False
    if rest[:1] in ("+", "-"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return timedelta(0)
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total_ns = 0
    i = 0
    while i < len(rest):
        start = i
        while i < len(rest) and _is_ascii_digit(rest[i]):
            i += 1
        whole = rest[start:i]
        fraction = ""
        if i < len(rest) and rest[i] == ".":
            i += 1
            fraction_start = i
            while i < len(rest) and _is_ascii_digit(rest[i]):
                i += 1
            fraction = rest[fraction_start:i]
        if not whole and not fraction:
            raise ValueError(f"invalid duration {text!r}: expected a number at {rest[start:]!r}")
        unit_start = i
        while i < len(rest) and rest[i] != "." and not _is_ascii_digit(rest[i]):
            i += 1
        unit = rest[unit_start:i]
        if not unit:
            raise ValueError(f"invalid duration {text!r}: missing unit (ns, us, ms, s, m or h)")
        scale = _NS_PER_UNIT.get(unit)
        if scale is None:
            raise ValueError(f"invalid duration {text!r}: unknown unit {unit!r}")
        if len(whole.lstrip("0")) > 20:
            raise ValueError(f"invalid duration {text!r}: out of range")
        total_ns += int(whole or "0") * scale
        fraction = fraction[:20]  # further digits are far below a nanosecond
        if fraction:
            total_ns += int(fraction) * scale // 10 ** len(fraction)
        if total_ns > _MAX_DURATION_NS + (1 if negative else 0):
            raise ValueError(f"invalid duration {text!r}: out of range")
    result = timedelta(microseconds=total_ns // _NS_PER_US)
    return -result if negative else result


def format_duration(value: timedelta) -> str:
    """Render a timedelta in Go duration syntax, e.g. ``168h``, ``1h30m``, ``1.5s``, ``250ms``."""
    if value < timedelta(0):
        return "-" + format_duration(-value)
    micros_total = (value.days * 86_400 + value.seconds) * _US_PER_S + value.microseconds
    if micros_total == 0:
        return "0s"
    hours, remainder = divmod(micros_total, 3600 * _US_PER_S)
    minutes, remainder = divmod(remainder, 60 * _US_PER_S)
    seconds, micros = divmod(remainder, _US_PER_S)
    parts: list[str] = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if not hours and not minutes and not seconds:
        parts.append(f"{micros // 1000}ms" if micros % 1000 == 0 else f"{micros}us")
    elif micros:
        parts.append(f"{seconds}.{micros:06d}".rstrip("0") + "s")
    elif seconds:
        parts.append(f"{seconds}s")
    return "".join(parts)


def _to_duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '10s'")
    if isinstance(value, int | float):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"a duration needs a unit, e.g. '{value}s'")
    if isinstance(value, str):
        return parse_duration(value.strip())
    return value  # pydantic reports the type error


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("a duration must not be negative")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    AfterValidator(_not_negative),
    PlainSerializer(format_duration, return_type=str),
]


# --------------------------------------------------------------------------------------
# Addresses, URLs, headers


def _split_host_port(addr: str) -> tuple[str, int]:
    """Split Go's ``host:port`` / ``:port`` / ``[v6]:port`` form; raise ValueError if invalid."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError("missing ']' in address")
        host, rest = addr[1:end], addr[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError("missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = addr.rpartition(":")
        if not sep:
            raise ValueError("missing port in address (use host:port or :port)")
        if ":" in host:
            raise ValueError("too many colons (write IPv6 addresses as [::1]:5000)")
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError("the port must be a number")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _canonical_header(name: str) -> str:
    """Go's canonical MIME header key: ``x-content-type-options`` -> ``X-Content-Type-Options``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _normalize_prefix(value: str) -> str:
    if any(c in value for c in "?#") or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a URL path")
    segments = [segment for segment in value.split("/") if segment]
    return "/" + "/".join(segments) if segments else ""


_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9.\-]*)(\+[A-Za-z0-9_.\-]+)?://")
# Dockyard's metadata layer is async: give plain dialect names their async driver.
_ASYNC_DRIVERS: Final[Mapping[str, str]] = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def _mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


# --------------------------------------------------------------------------------------
# The model. Field names are the YAML keys.


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccessLogConfig(_Section):
    disabled: bool = False


LogLevel = Literal["error", "warn", "info", "debug"]


class LogConfig(_Section):
    level: LogLevel = "info"
    formatter: Literal["text", "json"] = "text"
    fields: dict[str, str] = Field(default_factory=dict)
    accesslog: AccessLogConfig = Field(default_factory=AccessLogConfig)

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or "info"
        return value

    @field_validator("formatter", mode="before")
    @classmethod
    def _formatter(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or "text"
        return value


class FilesystemConfig(_Section):
    rootdirectory: str = "/var/lib/registry"
    maxthreads: int = 100

    @field_validator("rootdirectory")
    @classmethod
    def _rootdirectory(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class DeleteConfig(_Section):
    enabled: bool = False


class ReadOnlyConfig(_Section):
    enabled: bool = False


class UploadPurgingConfig(_Section):
    enabled: bool = True
    age: Duration = timedelta(hours=168)
    interval: Duration = timedelta(hours=24)
    dryrun: bool = False

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class MaintenanceConfig(_Section):
    uploadpurging: UploadPurgingConfig = Field(default_factory=UploadPurgingConfig)
    readonly: ReadOnlyConfig = Field(default_factory=ReadOnlyConfig)


class StorageConfig(_Section):
    """``storage``. ``driver`` is derived from which driver section the file has.

    ``filesystem`` always holds parameters (the defaults when the driver is
    ``inmemory``) so callers need no None check; it only matters for ``filesystem``.
    The model's own default driver is ``inmemory`` (safe for code that builds a
    Config directly); a configuration file must always name its driver.
    """

    driver: Literal["filesystem", "inmemory"] = "inmemory"
    filesystem: FilesystemConfig = Field(default_factory=FilesystemConfig)
    delete: DeleteConfig = Field(default_factory=DeleteConfig)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)


def _default_headers() -> dict[str, list[str]]:
    return {"X-Content-Type-Options": ["nosniff"]}


_CLIENT_AUTH_REFUSED: Final[Mapping[str, str]] = {
    "request-client-cert": "asks for a client certificate but accepts any, unverified",
    "require-any-client-cert": "requires a client certificate but accepts any, unverified",
}


class TlsConfig(_Section):
    """``http.tls``. TLS is on when ``certificate`` is set, as in Distribution."""

    certificate: str | None = None
    key: str | None = None
    clientcas: list[str] = Field(default_factory=list)
    clientauth: Literal["require-and-verify-client-cert", "verify-client-cert-if-given"] | None = (
        None
    )
    minimumtls: Literal["tls1.2", "tls1.3"] = "tls1.2"
    ciphersuites: list[str] = Field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.certificate)

    @field_validator("certificate", "key", mode="before")
    @classmethod
    def _empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("clientauth", mode="before")
    @classmethod
    def _clientauth(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and value.strip().lower() in _CLIENT_AUTH_REFUSED:
            mode = value.strip().lower()
            raise ValueError(
                f"{mode} {_CLIENT_AUTH_REFUSED[mode]}, which protects nothing; use "
                "require-and-verify-client-cert or verify-client-cert-if-given"
            )
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("minimumtls", mode="before")
    @classmethod
    def _minimumtls(cls, value: object) -> object:
        return value.strip().lower() or "tls1.2" if isinstance(value, str) else value

    @field_validator("ciphersuites")
    @classmethod
    def _ciphersuites(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if not is_known_suite(name):
                raise ValueError(f"[{index}] {name!r} is not a TLS cipher suite Go knows")
        return value

    @model_validator(mode="after")
    def _complete(self) -> TlsConfig:
        if self.certificate and not self.key:
            raise ValueError("the certificate needs its key: set http.tls.key")
        if self.certificate and self.clientauth and not self.clientcas:
            raise ValueError("clientauth needs the CAs to verify clients with: set clientcas")
        return self


class HttpConfig(_Section):
    addr: str = ":5000"
    net: Literal["tcp"] = "tcp"
    host: str | None = None
    prefix: str = ""
    relativeurls: bool = False
    headers: dict[str, list[str]] = Field(default_factory=_default_headers)
    secret: str | None = Field(default=None, repr=False)
    draintimeout: Duration = timedelta(0)
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        value = value.strip()
        _split_host_port(value)
        return value

    @field_validator("net", mode="before")
    @classmethod
    def _net(cls, value: object) -> object:
        if value is None or value == "":
            return "tcp"
        if value == "unix":
            raise ValueError("unix sockets are not supported yet; use tcp")
        if value != "tcp":
            raise ValueError("must be tcp")
        return value

    @field_validator("host", mode="before")
    @classmethod
    def _host(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute URL such as https://registry.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return value.rstrip("/")

    @field_validator("prefix", mode="before")
    @classmethod
    def _prefix(cls, value: object) -> object:
        return _normalize_prefix(value) if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        merged: dict[str, list[str]] = {}
        for name, values in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            for item in values:
                if any(c in item for c in "\r\n\0"):
                    raise ValueError(f"the value of {name} must not contain line breaks")
            merged.setdefault(_canonical_header(name), []).extend(values)
        return merged

    @field_validator("secret", mode="before")
    @classmethod
    def _secret(cls, value: object) -> object:
        return None if value == "" else value

    def bind(self) -> tuple[str, int]:
        """The (host, port) to listen on; an empty host means every IPv4 interface."""
        host, port = _split_host_port(self.addr)
        return host or "0.0.0.0", port


class CatalogConfig(_Section):
    maxentries: int = Field(default=1000, gt=0)


class ManifestUrlsConfig(_Section):
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)

    @field_validator("allow", "deny")
    @classmethod
    def _compile(cls, value: list[str]) -> list[str]:
        for index, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"[{index}] {pattern!r} is not a valid regular expression: {exc}"
                ) from None
        return value


class ManifestValidationConfig(_Section):
    urls: ManifestUrlsConfig = Field(default_factory=ManifestUrlsConfig)


class ValidationConfig(_Section):
    disabled: bool = False
    manifests: ManifestValidationConfig = Field(default_factory=ManifestValidationConfig)


class DatabaseConfig(_Section):
    url: str | None = Field(default=None, repr=False)

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            return None
        match = _URL_SCHEME.match(value)
        if match is None:
            raise ValueError("must be a SQLAlchemy URL such as postgresql+asyncpg://user@host/db")
        dialect, driver = match.group(1), match.group(2)
        if driver is None and dialect in _ASYNC_DRIVERS:
            value = _ASYNC_DRIVERS[dialect] + value[len(dialect) :]
        return value


class LimitsConfig(_Section):
    manifestmaxbytes: int = Field(default=DEFAULT_MANIFEST_MAX_BYTES, gt=0)


class ServeConfig(_Section):
    workers: int | None = Field(default=None, ge=1)


class HtpasswdAuthConfig(_Section):
    """``auth.htpasswd``: HTTP Basic against an htpasswd file of bcrypt entries."""

    realm: str
    path: str

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


_HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")


class TokenAuthConfig(_Section):
    """``auth.token``: Bearer tokens from a token server (the Docker token flow)."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: str | None = None
    jwks: str | None = None
    signingalgorithms: list[str] = Field(default_factory=list)
    autoredirect: bool = False
    autoredirectpath: str = "/auth/token"

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("/") and not value.startswith("//"):
            return _normalize_prefix(value) or "/"
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "must be the token endpoint's URL (https://auth.example.com/token), or a path "
                "(/auth/token) on the host the client used"
            )
        return value

    @field_validator("rootcertbundle", "jwks", mode="before")
    @classmethod
    def _optional_path(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("autoredirectpath")
    @classmethod
    def _autoredirectpath(cls, value: str) -> str:
        return _normalize_prefix(value) or "/"

    @field_validator("signingalgorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if name in _HMAC_ALGORITHMS:
                raise ValueError(
                    f"[{index}] {name} signs with a shared secret; Dockyard accepts only "
                    "public-key signatures"
                )
            if name not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(
                    f"[{index}] {name!r} is not a supported signing algorithm "
                    f"({', '.join(ASYMMETRIC_ALGORITHMS)})"
                )
        return value


class AuthConfig(_Section):
    """``auth``: at most one access controller; none configured means no authentication."""

    htpasswd: HtpasswdAuthConfig | None = None
    token: TokenAuthConfig | None = None

    def kind(self) -> str | None:
        for name in type(self).model_fields:
            if getattr(self, name) is not None:
                return name
        return None


def _networks(value: list[str]) -> list[str]:
    for index, item in enumerate(value):
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(
                f"[{index}] {item!r} is not an IP address or network (e.g. 10.0.0.0/8)"
            ) from None
    return value


AccessAction = Literal["pull", "push", "delete", "*"]


class AccessRuleConfig(_Section):
    """One rule of ``access.rules``: who may do what on which repositories."""

    repositories: list[str] = Field(min_length=1)
    actions: list[AccessAction] = Field(min_length=1)
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    anonymous: bool = False

    @model_validator(mode="after")
    def _sensible(self) -> AccessRuleConfig:
        if not self.users and not self.groups and not self.anonymous:
            raise ValueError("a rule must name users, groups or anonymous: true")
        if self.anonymous and set(self.actions) != {"pull"}:
            raise ValueError("anonymous callers may only be given pull")
        for glob in self.repositories:
            if not glob.strip() or any(c.isspace() for c in glob):
                raise ValueError(f"{glob!r} is not a repository glob")
        return self


class AdminsConfig(_Section):
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class AccessConfig(_Section):
    """``access`` (Dockyard's own): the built-in token service and its rules."""

    signingkey: str | None = None
    htpasswd: str | None = None
    expiration: Duration = timedelta(minutes=5)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    admins: AdminsConfig = Field(default_factory=AdminsConfig)
    rules: list[AccessRuleConfig] = Field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.signingkey is not None

    @field_validator("signingkey", "htpasswd", mode="before")
    @classmethod
    def _optional_path(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("expiration")
    @classmethod
    def _expiration(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=10) <= value <= timedelta(hours=24):
            raise ValueError("must be between 10s and 24h")
        return value

    @model_validator(mode="after")
    def _complete(self) -> AccessConfig:
        configured = self.htpasswd or self.rules or self.groups or self.admins.users
        if not self.enabled:
            if configured:
                raise ValueError(
                    "signingkey is required: the private key the token service signs with"
                )
            return self
        if not self.htpasswd:
            raise ValueError("htpasswd is required: the users of the token service")
        known = set(self.groups)
        for index, rule in enumerate(self.rules):
            unknown = sorted(set(rule.groups) - known)
            if unknown:
                raise ValueError(
                    f"rules[{index}]: unknown group {unknown[0]!r} (define it in groups)"
                )
        unknown = sorted(set(self.admins.groups) - known)
        if unknown:
            raise ValueError(f"admins: unknown group {unknown[0]!r} (define it in groups)")
        return self


class FailedLoginsConfig(_Section):
    limit: int = Field(default=10, ge=0)
    window: Duration = timedelta(minutes=1)


class SecurityConfig(_Section):
    """Dockyard's own: which proxies to believe, and the failed-login limit."""

    trustedproxies: Annotated[list[str], AfterValidator(_networks)] = Field(default_factory=list)
    failedlogins: FailedLoginsConfig = Field(default_factory=FailedLoginsConfig)


class Config(_Section):
    """The effective configuration. Attribute names follow the YAML keys."""

    version: str = SUPPORTED_VERSION
    log: LogConfig = Field(default_factory=LogConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != SUPPORTED_VERSION:
            raise ValueError(
                f"unsupported version {value!r}; only {SUPPORTED_VERSION} is supported"
            )
        return value

    @model_validator(mode="after")
    def _token_keys(self) -> Config:
        token = self.auth.token
        if self.access.enabled:
            if token is None:
                raise ValueError(
                    "access: Dockyard's token service issues the tokens that auth.token "
                    "verifies: configure auth.token (realm: /auth/token, service, issuer)"
                )
            path = self.token_endpoint_path()
            if path == "/" or path.startswith(f"{self.http.prefix}/v2"):
                raise ValueError(
                    f"auth.token.realm: the token service cannot be served at {path!r} "
                    "(choose a path outside the registry API, e.g. /auth/token)"
                )
        elif token is not None and not token.rootcertbundle and not token.jwks:
            raise ValueError(
                "auth.token: no key to verify tokens with: set rootcertbundle (the token "
                "server's certificates) or jwks"
            )
        return self

    def token_endpoint_path(self) -> str:
        """Where Dockyard's token service answers: the path of the token realm."""
        token = self.auth.token
        if token is None:
            return ""
        if token.autoredirect:
            return token.autoredirectpath
        return urlsplit(token.realm).path or "/"

    def database_url(self) -> str:
        """The SQLAlchemy URL of the metadata database.

        ``database.url`` when set; otherwise an embedded SQLite database: the file
        ``<rootdirectory>/dockyard.db`` (absolute) for filesystem storage, or an
        in-memory database for inmemory storage.
        """
        if self.database.url:
            return self.database.url
        if self.storage.driver == "filesystem":
            root = os.path.abspath(os.path.expanduser(self.storage.filesystem.rootdirectory))
            return "sqlite+aiosqlite:///" + os.path.join(root, SQLITE_FILENAME)
        return "sqlite+aiosqlite://"

    def worker_count(self) -> int:
        """How many server processes to run: ``serve.workers``, else one per CPU core.

        Inmemory storage lives inside one process, so it always gets one.
        """
        if self.storage.driver == "inmemory":
            return 1
        return self.serve.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    warnings: list[str]


# --------------------------------------------------------------------------------------
# Keys we know of but do not implement.


def _has_content(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict):
        return any(_has_content(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_content(item) for item in value)
    return True


def _get(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = next((v for k, v in value.items() if _text(k) == key), None)
    return value


def _letsencrypt_requested(value: Any) -> bool:
    # Distribution only uses Let's Encrypt when a cache file is given.
    return _has_content(_get(value, "cachefile"))


def _proxy_requested(value: Any) -> bool:
    return _has_content(_get(value, "remoteurl"))


# Sections Dockyard refuses to ignore: starting without them would quietly weaken the
# deployment. To implement one, model it and delete its entry here.
REFUSED_KEYS: Final[Mapping[str, str]] = {
    "http.tls.letsencrypt": (
        "http.tls.letsencrypt is not supported yet: refusing to start without the TLS this "
        "file asks for (give http.tls.certificate and http.tls.key, or terminate TLS in a "
        "reverse proxy)"
    ),
    "proxy": (
        "proxy is not supported yet: refusing to start as a writable registry where a "
        "read-only pull-through cache was asked for"
    ),
}
# When a refused section actually asks for its feature (Distribution's own test);
# a present but inert section is ignored with a warning instead.
_REFUSAL_TRIGGERS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "http.tls.letsencrypt": _letsencrypt_requested,
    "proxy": _proxy_requested,
}

# Auth types Distribution has that Dockyard refuses, with the reason.
_UNSUPPORTED_AUTH: Final[Mapping[str, str]] = {
    "silly": (
        "the silly auth type (a development stub that lets any Authorization header in) "
        "is not supported; use htpasswd or token"
    ),
}

# Accepted and ignored, with one warning naming the key.
UNSUPPORTED_KEYS: Final[frozenset[str]] = frozenset(
    {
        "log.hooks",
        "log.reportcaller",
        "storage.cache",
        "storage.redirect",
        "storage.tag",
        "http.debug",
        "http.http2",
        "middleware",
        "notifications",
        "redis",
        "health",
        "reporting",
        "compatibility",
        "policy",
    }
)

# Deprecated keys that are honoured the way Distribution honours them.
DEPRECATED_KEYS: Final[Mapping[str, str]] = {
    "loglevel": "loglevel: deprecated, use log.level",
    "validation.enabled": "validation.enabled: deprecated, use validation.disabled",
}

_SPECIAL_KEYS: Final = frozenset(REFUSED_KEYS) | UNSUPPORTED_KEYS | frozenset(DEPRECATED_KEYS)


def _special_children(parent: str) -> list[str]:
    prefix = parent + "." if parent else ""
    return [
        key[len(prefix) :]
        for key in _SPECIAL_KEYS
        if key.startswith(prefix) and "." not in key[len(prefix) :]
    ]


# --------------------------------------------------------------------------------------
# YAML: Go's yaml decoder gives a text-typed key the scalar exactly as written
# (``secret: 0123`` is "0123", ``service: yes`` is "yes"), so keep that text around.


@dataclass(frozen=True)
class _Scalar:
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
) -> Callable[[yaml.SafeLoader, yaml.Node], _Scalar]:
    def constructor(loader: yaml.SafeLoader, node: yaml.Node) -> _Scalar:
        assert isinstance(node, yaml.ScalarNode)
        return _Scalar(construct(loader, node), node.value)

    return constructor


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(node.value)


_Loader.add_constructor("tag:yaml.org,2002:int", _keep_text(yaml.SafeLoader.construct_yaml_int))
_Loader.add_constructor("tag:yaml.org,2002:float", _keep_text(yaml.SafeLoader.construct_yaml_float))
_Loader.add_constructor("tag:yaml.org,2002:bool", _keep_text(yaml.SafeLoader.construct_yaml_bool))
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _parse_yaml(text: str) -> tuple[Any, list[str]]:
    loader = _Loader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    finally:
        loader.dispose()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, _Scalar):
        return value.text
    if value is None:
        return ""
    return str(value)


def _plain(value: Any) -> Any:
    """The tree with every _Scalar replaced by its value (for messages)."""
    if isinstance(value, _Scalar):
        return value.value
    if isinstance(value, dict):
        return {_text(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _describe(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


# --------------------------------------------------------------------------------------
# Walking the tree against the model


def _core(annotation: Any) -> Any:
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


def _allows_none(annotation: Any) -> bool:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation)
    return (origin is Union or origin is types.UnionType) and type(None) in get_args(annotation)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    return get_origin(annotation) is Literal and all(
        isinstance(a, str) for a in get_args(annotation)
    )


_OPAQUE: Final = "<opaque>"  # schema marker: a subtree Dockyard does not model
# Sections that are maps of named parts (a storage driver, an auth type): the environment
# may create any key in them, and their loader judges the names.
_OPEN_SECTIONS: Final[tuple[type[BaseModel], ...]] = (StorageConfig, AuthConfig)
Path_ = tuple[str | int, ...]


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _section_from_text(path: Path_, value: Any) -> Any:
    """``storage: inmemory`` / ``REGISTRY_STORAGE=inmemory`` mean ``storage: {inmemory: {}}``.

    Distribution decodes a bare name into its storage and auth maps that way.
    """
    if path in (("storage",), ("auth",)) and isinstance(value, str | _Scalar):
        name = _text(value).strip()
        return {name: {}} if name else None
    return value


def _has_keys(schema: Any) -> bool:
    """Whether a schema is a section, map or list (something a longer path can go into)."""
    core = _core(schema)
    return core is _OPAQUE or _is_model(core) or get_origin(core) in (dict, list)


def _list_item_schema(schema: Any) -> Any:
    core = _core(schema)
    if get_origin(core) is list:
        return get_args(core)[0]
    return _OPAQUE


def _env_step(schema: Any, parent: str, node: dict[Any, Any], part: str) -> tuple[Any, Any] | None:
    """Which key of ``node`` the variable component ``part`` names, and that key's schema.

    A modelled section (a Go struct in Distribution) only has its known keys, matched
    case-insensitively; an open map (storage, a driver's parameters, a ``dict`` field,
    an unmodelled section) takes any key, reusing an existing one that differs only in
    case, else creating it in lower case.
    """
    upper = part.upper()
    core = _core(schema)
    if _is_model(core) and core not in _OPEN_SECTIONS:
        fields = core.model_fields
        for name in [*fields, *_special_children(parent)]:
            if name.upper() == upper:
                field = fields.get(name)
                child_schema = field.annotation if field is not None else _OPAQUE
                return next((k for k in node if _text(k) == name), name), child_schema
        return None
    if core not in _OPEN_SECTIONS and core is not _OPAQUE and get_origin(core) is not dict:
        return None  # a plain value has no keys inside
    key = next((k for k in node if _text(k).upper() == upper), part.lower())
    if core in _OPEN_SECTIONS:
        field = core.model_fields.get(_text(key))
        if field is None or _text(key) == "driver":
            return key, _OPAQUE
        return key, field.annotation
    if core is _OPAQUE:
        return key, _OPAQUE
    return key, get_args(core)[1]


class _Loading:
    """State of one load: warnings so far, and which keys the environment set."""

    def __init__(self, refuse: bool = True) -> None:
        self.warnings: list[str] = []
        self.origins: dict[Path_, str] = {}
        self.deprecated: dict[str, Any] = {}
        # False for commands that never serve (``dockyard import``): refusals become warnings.
        self.refuse = refuse

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def source(self, path: Path_) -> str:
        """`` (set by REGISTRY_...)`` when the environment set this key or a parent, else ''."""
        for length in range(len(path), 0, -1):
            variable = self.origins.get(path[:length])
            if variable is not None:
                return f" (set by {variable})"
        # A section the environment created by setting a key inside it.
        inside = sorted(name for key, name in self.origins.items() if key[: len(path)] == path)
        return f" (set by {', '.join(inside)})" if path and inside else ""

    # ---- environment ---------------------------------------------------------------

    def apply_environment(self, tree: dict[Any, Any], environ: Mapping[str, str]) -> None:
        # Lexical order, as Distribution: REGISTRY_STORAGE sorts before
        # REGISTRY_STORAGE_DELETE_ENABLED, so a section is replaced before keys in it are set.
        for name in sorted(environ):
            if name.startswith(ENV_PREFIX):
                self._apply_variable(tree, name, environ[name])

    def _apply_variable(self, tree: dict[Any, Any], name: str, payload: str) -> None:
        parts = name[len(ENV_PREFIX) :].split("_")
        if any(not part for part in parts):
            self.warn(f"{name}: does not name a configuration key, ignored")
            return
        if parts[0].upper() == "VERSION":
            self.warn(f"{name}: the version cannot be overridden from the environment, ignored")
            return
        try:
            value, _ = _parse_yaml(payload)
        except yaml.YAMLError:
            value = payload  # not valid YAML: take the text as it is
        node: Any = tree
        schema: Any = Config
        path: list[str | int] = []
        for position, part in enumerate(parts):
            key: Any
            if isinstance(node, list):
                where = _dotted(tuple(path))
                if not part.isascii() or not part.isdigit():
                    raise ConfigError(f"{name}: {where} is a list and {part!r} is not an index")
                index = int(part)
                if index > len(node):
                    raise ConfigError(
                        f"{name}: index {index} is past the end of {where} "
                        f"({len(node)} items; {len(node)} appends)"
                    )
                if index == len(node):
                    node.append(None)
                key, schema = index, _list_item_schema(schema)
                path.append(index)
            else:
                step = _env_step(schema, _dotted(tuple(path)), node, part)
                if step is None:
                    target = _dotted((*path, part.lower()))
                    self.warn(f"{name}: there is no configuration key {target}, ignored")
                    return
                key, schema = step
                path.append(_text(key))
            here = tuple(path)
            if position == len(parts) - 1:
                node[key] = _section_from_text(here, value)
                self.origins[here] = name
                return
            if not _has_keys(schema):
                target = _dotted((*here, parts[position + 1].lower()))
                self.warn(f"{name}: there is no configuration key {target}, ignored")
                return
            child = node[key] if isinstance(node, list) or key in node else None
            if child is None:
                child = [] if get_origin(_core(schema)) is list else {}
                node[key] = child
            elif not isinstance(child, dict | list):
                self.warn(f"{name}: {_dotted(here)} holds a value, not a section; ignored")
                return
            node = child

    # ---- normalising the tree for the model ------------------------------------------

    def normalize(self, annotation: Any, value: Any, path: Path_) -> Any:
        core = _core(annotation)
        if core is StorageConfig:
            return self._storage(value, path)
        if core is AuthConfig:
            return self._auth(value, path)
        if _is_model(core):
            return self._section(core, value, path)
        origin = get_origin(core)
        if origin is dict:
            if value is None:
                return {}
            if not isinstance(value, dict):
                got = _describe(value)
                raise ConfigError(
                    f"{_dotted(path)}: expected a mapping, got {got}{self.source(path)}"
                )
            item_annotation = get_args(core)[1]
            item_core = _core(item_annotation)
            result: dict[str, Any] = {}
            for raw_key, item in value.items():
                key = _text(raw_key)
                if item is None and get_origin(item_core) is list:
                    continue  # ``X-Header:`` with nothing: no header, as Go's nil slice
                if item is None and _is_text(item_core):
                    result[key] = ""
                    continue
                result[key] = self.normalize(item_annotation, item, (*path, key))
            return result
        if origin is list:
            if value is None:
                return []
            if not isinstance(value, list):
                return _plain(value)  # the model reports the type error
            item_annotation = get_args(core)[0]
            return [self.normalize(item_annotation, v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, _Scalar):
            return value.text if _is_text(core) else value.value
        return _plain(value)

    def _section(self, model: type[BaseModel], value: Any, path: Path_) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(
                f"{_dotted(path) or 'the configuration'}: expected a mapping of keys, "
                f"got {_describe(value)}{self.source(path)}"
            )
        result: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = _text(raw_key)
            child = (*path, key)
            if self._special(child, item):
                continue
            field = model.model_fields.get(key)
            if field is None:
                self.warn(f"{_dotted(child)}: unknown key, ignored{self.source(child)}")
                continue
            if item is None and not _allows_none(field.annotation):
                continue  # ``key:`` with no value keeps the default
            result[key] = self.normalize(field.annotation, item, child)
        return result

    def _special(self, path: Path_, value: Any) -> bool:
        """Handle a refused, unsupported or deprecated key; False for any other key."""
        dotted = _dotted(path)
        if dotted in REFUSED_KEYS:
            if _REFUSAL_TRIGGERS[dotted](value):
                if self.refuse:
                    raise ConfigError(REFUSED_KEYS[dotted] + self.source(path))
                self.warn(f"{dotted}: ignored by this command{self.source(path)}")
                return True
            if _has_content(value):
                self.warn(f"{dotted}: asks for nothing Distribution would act on, ignored")
            return True
        if dotted in UNSUPPORTED_KEYS:
            if _has_content(value):
                self.warn(f"{dotted}: not supported yet, ignored{self.source(path)}")
            return True
        if dotted in DEPRECATED_KEYS:
            self.deprecated[dotted] = value
            self.warn(DEPRECATED_KEYS[dotted] + self.source(path))
            return True
        return False

    def _auth(self, value: Any, path: Path_) -> dict[str, Any]:
        """``auth`` names one access controller. An unknown or unsupported one stops
        Dockyard: ignoring it would serve without the authentication the file asks for."""
        value = _section_from_text(path, value)
        if value is None:
            return {}
        if not isinstance(value, dict):
            got = _describe(value)
            raise ConfigError(f"auth: expected a mapping, got {got}{self.source(path)}")
        result: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = _text(raw_key)
            child = (*path, key)
            if key == "none":
                continue
            if key in _UNSUPPORTED_AUTH:
                raise ConfigError(f"auth.{key}: {_UNSUPPORTED_AUTH[key]}{self.source(child)}")
            field = AuthConfig.model_fields.get(key)
            if field is None:
                supported = ", ".join(AuthConfig.model_fields)
                raise ConfigError(
                    f"auth.{key}: unknown auth type (supported: {supported}); refusing to "
                    f"start without the authentication this file asks for{self.source(child)}"
                )
            result[key] = self.normalize(field.annotation, item if item is not None else {}, child)
        if len(result) > 1:
            found = ", ".join(result)
            raise ConfigError(
                f"auth: exactly one auth type may be configured, found {found}{self.source(path)}"
            )
        return result

    def _storage(self, value: Any, path: Path_) -> dict[str, Any]:
        value = _section_from_text(path, value)
        missing = (
            "storage: no storage driver configured; add a storage.filesystem or "
            f"storage.inmemory section{self.source(path)}"
        )
        if value is None:
            raise ConfigError(missing)
        if not isinstance(value, dict):
            got = _describe(value)
            raise ConfigError(f"storage: expected a mapping, got {got}{self.source(path)}")
        result: dict[str, Any] = {}
        drivers: list[tuple[str, Any, Path_]] = []
        for raw_key, item in value.items():
            key = _text(raw_key)
            child = (*path, key)
            if self._special(child, item):
                continue
            if key in _STORAGE_OPTION_KEYS:
                if item is not None:
                    annotation = StorageConfig.model_fields[key].annotation
                    result[key] = self.normalize(annotation, item, child)
                continue
            if key == "driver":
                raise ConfigError(
                    "storage.driver: not a configuration key; choose the driver with a "
                    "storage.filesystem or storage.inmemory section "
                    f"(or REGISTRY_STORAGE=inmemory){self.source(child)}"
                )
            drivers.append((key, item, child))
        if not drivers:
            raise ConfigError(missing)
        if len(drivers) > 1:
            found = ", ".join(f"{key}{self.source(child)}" for key, _, child in drivers)
            raise ConfigError(
                f"storage: exactly one storage driver may be configured, found {found}"
            )
        name, params, child = drivers[0]
        if name == "filesystem":
            result["filesystem"] = self._section(FilesystemConfig, params, child)
        elif name == "inmemory":
            if isinstance(params, dict):
                for raw_key in params:
                    self.warn(
                        f"storage.inmemory.{_text(raw_key)}: unknown key, ignored "
                        "(the inmemory driver takes no parameters)"
                    )
            elif _has_content(params):
                self.warn("storage.inmemory: the inmemory driver takes no parameters, ignored")
        elif name in KNOWN_STORAGE_DRIVERS:
            raise ConfigError(
                f"storage.{name}: the {name} storage driver is not supported yet "
                f"(supported: {', '.join(SUPPORTED_STORAGE_DRIVERS)}); refusing to start on "
                f"other storage than configured{self.source(child)}"
            )
        else:
            raise ConfigError(
                f"storage.{name}: unknown storage driver "
                f"(supported: {', '.join(SUPPORTED_STORAGE_DRIVERS)}){self.source(child)}"
            )
        result["driver"] = name
        return result

    # ---- Distribution's adjustments ---------------------------------------------------

    def _adjust_tls(self, tls: dict[str, Any]) -> None:
        if not _has_content(tls.get("certificate")):
            if _has_content(tls):
                self.warn("http.tls: asks for nothing Distribution would act on, ignored")
            tls.clear()
            return
        minimum = tls.get("minimumtls")
        if isinstance(minimum, str) and minimum.strip().lower() in ("tls1.0", "tls1.1"):
            self.warn(
                f"http.tls.minimumtls: {minimum.strip().lower()} is not offered, using tls1.2"
            )
            tls["minimumtls"] = "tls1.2"
        elif (
            isinstance(minimum, str)
            and minimum.strip().lower() == "tls1.3"
            and _has_content(tls.get("ciphersuites"))
        ):
            self.warn(
                "http.tls.ciphersuites: cipher suites cannot be chosen for TLS 1.3, "
                "ignored with minimumtls tls1.3"
            )

    def adjust(self, data: dict[str, Any]) -> None:
        """Apply the fix-ups Distribution makes after parsing, with warnings."""
        log = data.setdefault("log", {})
        if "loglevel" in self.deprecated and "level" not in log:
            level = self.deprecated["loglevel"]
            log["level"] = _text(level) if isinstance(level, str | _Scalar) else _plain(level)
        formatter = log.get("formatter")
        if isinstance(formatter, str) and formatter.strip().lower() == "logstash":
            self.warn("log.formatter: logstash is not supported, using json")
            log["formatter"] = "json"

        validation = data.setdefault("validation", {})
        if "validation.enabled" in self.deprecated:
            enabled = _plain(self.deprecated["validation.enabled"])
            if enabled is not None and not isinstance(enabled, bool):
                raise ConfigError(
                    f"validation.enabled: expected true or false, got {_describe(enabled)}"
                )
            if enabled:  # Distribution: enabled: true wins over disabled
                validation["disabled"] = False
        if validation.get("disabled") is True:
            self.warn(
                "validation.disabled: manifest URL validation is off; "
                "pushed manifests may reference any foreign URL"
            )

        maxentries = data.get("catalog", {}).get("maxentries")
        if isinstance(maxentries, int) and not isinstance(maxentries, bool) and maxentries <= 0:
            self.warn(f"catalog.maxentries: {maxentries} is not positive, using 1000")
            data["catalog"]["maxentries"] = 1000

        tls = data.get("http", {}).get("tls")
        if isinstance(tls, dict):
            self._adjust_tls(tls)

        filesystem = data.get("storage", {}).get("filesystem", {})
        threads = filesystem.get("maxthreads")
        if isinstance(threads, int) and not isinstance(threads, bool) and threads < 25:
            self.warn(f"storage.filesystem.maxthreads: {threads} is below the minimum, using 25")
            filesystem["maxthreads"] = 25


# --------------------------------------------------------------------------------------
# Loading

# What ``dockyard`` runs with when no file is given.
_EMBEDDED_DEFAULTS: Final[Mapping[str, Any]] = {
    "version": SUPPORTED_VERSION,
    "storage": {
        "filesystem": {"rootdirectory": "./data"},
        "delete": {"enabled": True},
    },
    "http": {"addr": ":5000"},
}


def _read_file(path: Path, loading: _Loading) -> dict[Any, Any]:
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
        tree, duplicates = _parse_yaml(text)
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
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {_describe(tree)}")
    return tree


def _validation_message(error: ValidationError, loading: _Loading) -> str:
    lines = []
    for item in error.errors(include_url=False):
        path: Path_ = tuple(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        shown = ""
        if item["type"] != "missing" and not isinstance(item.get("input"), dict | list):
            shown = f" (got {_describe(item.get('input'))})"
        lines.append(f"{_dotted(path) or 'configuration'}: {message}{shown}{loading.source(path)}")
    return "\n".join(lines)


def load_config(
    path: Path | None, environ: Mapping[str, str] | None = None, *, serving: bool = True
) -> LoadedConfig:
    """Read a Distribution ``config.yml`` (or the embedded defaults when ``path`` is None),
    apply ``REGISTRY_*`` overrides from ``environ`` (default: ``os.environ``), and validate.

    Raises ConfigError with an operator-facing message when the result cannot be used.
    With ``serving`` False (commands that never serve, such as ``dockyard import``),
    sections refused only because serving without them would be unsafe are warnings.
    """
    loading = _Loading(refuse=serving)
    if path is None:
        tree: dict[Any, Any] = copy.deepcopy(dict(_EMBEDDED_DEFAULTS))
    else:
        tree = _read_file(Path(path), loading)

    raw_version = next((v for k, v in tree.items() if _text(k) == "version"), None)
    if raw_version is None:
        raise ConfigError(
            f"version: missing; a configuration starts with 'version: {SUPPORTED_VERSION}'"
        )
    version = _text(raw_version) if isinstance(raw_version, str | _Scalar) else None
    if version != SUPPORTED_VERSION:
        shown = repr(version) if version is not None else _describe(raw_version)
        raise ConfigError(
            f"version: unsupported version {shown}; only {SUPPORTED_VERSION} is supported"
        )
    for key in list(tree):
        tree[key] = _section_from_text((_text(key),), tree[key])

    loading.apply_environment(tree, os.environ if environ is None else environ)
    if next((v for k, v in tree.items() if _text(k) == "storage"), None) is None:
        loading.normalize(StorageConfig, None, ("storage",))  # raises: no storage driver
    data = loading.normalize(Config, tree, ())
    loading.adjust(data)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, loading)) from None

    if config.storage.driver == "inmemory" and (config.serve.workers or 1) > 1:
        raise ConfigError(
            "serve.workers: inmemory storage lives inside one process, "
            f"so it cannot be served by {config.serve.workers} workers; use 1"
            + loading.source(("serve", "workers"))
        )
    return LoadedConfig(config=config, warnings=loading.warnings)


def render_effective(config: Config) -> str:
    """The effective configuration as YAML in Distribution's layout, secrets masked."""
    data: dict[str, Any] = config.model_dump(mode="json")
    storage = data["storage"]
    driver = storage.pop("driver")
    filesystem = storage.pop("filesystem")
    data["storage"] = {driver: filesystem if driver == "filesystem" else {}, **storage}
    if data["http"]["secret"] is not None:
        data["http"]["secret"] = "***"
    data["auth"] = {kind: section for kind, section in data["auth"].items() if section}
    if not config.http.tls.enabled:
        del data["http"]["tls"]
    if data["database"]["url"] is not None:
        data["database"]["url"] = _mask_url_password(data["database"]["url"])
    header = (
        "# Dockyard effective configuration: defaults filled in, "
        "REGISTRY_* overrides applied, secrets masked.\n"
    )
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return header + body
