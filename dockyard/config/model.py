"""The configuration model: one frozen pydantic model per section, field names the YAML keys.

Validators hold the rules of a single section; by the time pydantic sees a tree,
``normalize.py`` has matched its keys and refused or ignored what Dockyard does not
implement, and ``adjust.py`` has made the adjustments Distribution makes.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from dockyard.auth.algorithms import ASYMMETRIC_ALGORITHMS
from dockyard.config.database_pool import PoolConfig
from dockyard.config.debug import DebugConfig
from dockyard.config.durations import Duration
from dockyard.config.gc import GcConfig
from dockyard.config.health import HealthConfig
from dockyard.config.http_syntax import (
    checked_headers,
    normalize_prefix,
    split_host_port,
)
from dockyard.config.letsencrypt import LetsEncryptConfig
from dockyard.config.notifications import NotificationsConfig, OutboxConfig
from dockyard.config.proxy import ProxyConfig
from dockyard.config.redirect import RedirectConfig
from dockyard.config.replication import ReplicationConfig
from dockyard.config.retention import ImmutableTagsConfig, RetentionConfig
from dockyard.storage.factory import (
    FALLBACK_DRIVER,
    DriverParameters,
    driver_names,
    parameters_model,
)
from dockyard.tls import is_known_suite

SUPPORTED_VERSION: Final = "0.1"
DEFAULT_MANIFEST_MAX_BYTES: Final = 4 * 1024 * 1024
SQLITE_FILENAME: Final = "dockyard.db"


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


# A file's path, or None when unset or blank.
_OptionalPath = Annotated[str | None, BeforeValidator(_blank_is_none)]
_NonBlank = Annotated[str, AfterValidator(_not_blank)]


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


def _driver_model(name: object) -> type[DriverParameters]:
    if not isinstance(name, str) or name not in driver_names():
        raise ValueError(f"unknown storage driver {name!r} (drivers: {', '.join(driver_names())})")
    return parameters_model(name)


class StorageConfig(_Section):
    """``storage``: ``driver`` is the name of the one driver section the file has, and
    ``parameters`` that section, read by the driver's own model
    (:mod:`dockyard.storage.factory`): the configuration names no driver itself.

    The model's own default is the factory's fallback driver (in memory), safe for code
    that builds a Config directly; a configuration file must always name its driver.
    """

    driver: str = FALLBACK_DRIVER
    parameters: SerializeAsAny[DriverParameters] = Field(
        default_factory=lambda: parameters_model(FALLBACK_DRIVER)()
    )
    delete: DeleteConfig = Field(default_factory=DeleteConfig)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)
    redirect: RedirectConfig = Field(default_factory=RedirectConfig)

    @model_validator(mode="before")
    @classmethod
    def _read_parameters(cls, data: object) -> object:
        """Parameters given as a mapping, or not at all (code building a Config), are
        read by the driver's model; the loader hands them over read already."""
        if isinstance(data, Mapping):
            parameters = data.get("parameters")
            if parameters is None or isinstance(parameters, Mapping):
                model = _driver_model(data.get("driver", FALLBACK_DRIVER))
                try:
                    read = model.model_validate(parameters or {})
                except ValidationError as exc:
                    raise ValueError(str(exc)) from None
                data = {**data, "parameters": read}
        return data

    @model_validator(mode="after")
    def _parameters_fit(self) -> StorageConfig:
        model = _driver_model(self.driver)
        if not isinstance(self.parameters, model):
            raise ValueError(f"the {self.driver} driver's parameters are a {model.__name__}")
        return self

    @property
    def in_process(self) -> bool:
        """The data lives inside the serving process: one worker, nothing shared."""
        return self.parameters.in_process

    @property
    def local_root(self) -> str | None:
        """The local directory that holds the store, if the driver has one."""
        return self.parameters.local_root()

    @property
    def local_root_key(self) -> str | None:
        """The key that sets :attr:`local_root` (``storage.<driver>.<key>``)."""
        key = self.parameters.local_root_key
        return f"storage.{self.driver}.{key}" if key else None


def _default_headers() -> dict[str, list[str]]:
    return {"X-Content-Type-Options": ["nosniff"]}


_CLIENT_AUTH_REFUSED: Final[Mapping[str, str]] = {
    "request-client-cert": "asks for a client certificate but accepts any, unverified",
    "require-any-client-cert": "requires a client certificate but accepts any, unverified",
}


class TlsConfig(_Section):
    """``http.tls``. TLS is on when ``certificate`` is set, as in Distribution."""

    certificate: _OptionalPath = None
    key: _OptionalPath = None
    clientcas: list[str] = Field(default_factory=list)
    clientauth: Literal["require-and-verify-client-cert", "verify-client-cert-if-given"] | None = (
        None
    )
    minimumtls: Literal["tls1.2", "tls1.3"] = "tls1.2"
    ciphersuites: list[str] = Field(default_factory=list)
    letsencrypt: LetsEncryptConfig = Field(default_factory=LetsEncryptConfig)

    @property
    def enabled(self) -> bool:
        return bool(self.certificate) or self.letsencrypt.enabled

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
        if self.certificate and self.letsencrypt.enabled:
            raise ValueError("give either certificate and key, or letsencrypt, not both")
        if self.enabled and self.clientauth and not self.clientcas:
            raise ValueError("clientauth needs the CAs to verify clients with: set clientcas")
        return self


#: the drain on stop when ``http.draintimeout`` is unset: within Kubernetes' default
#: 30 s grace period, with the supervisor's margin on top
DEFAULT_DRAIN: Final = timedelta(seconds=20)


class HttpConfig(_Section):
    addr: str = ":5000"
    net: Literal["tcp"] = "tcp"
    host: str | None = None
    prefix: str = ""
    relativeurls: bool = False
    headers: dict[str, list[str]] = Field(default_factory=_default_headers)
    secret: str | None = Field(default=None, repr=False)
    # registry:2's key; unset, a stopping worker lets requests finish for DEFAULT_DRAIN.
    draintimeout: Duration | None = None
    tls: TlsConfig = Field(default_factory=TlsConfig)
    debug: DebugConfig = Field(default_factory=DebugConfig)

    def drain_timeout(self) -> timedelta:
        """How long a stopping worker lets the requests in flight finish: ``draintimeout``
        when set (``0s`` stops at once, as registry:2 does by default), else
        :data:`DEFAULT_DRAIN`, so that a rolling restart does not cut pushes off."""
        return DEFAULT_DRAIN if self.draintimeout is None else self.draintimeout

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        value = value.strip()
        split_host_port(value)
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
        return normalize_prefix(value) if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return checked_headers(value)

    @field_validator("secret", mode="before")
    @classmethod
    def _secret(cls, value: object) -> object:
        return None if value == "" else value

    def bind(self) -> tuple[str, int]:
        """The (host, port) to listen on; an empty host means every IPv4 interface."""
        host, port = split_host_port(self.addr)
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


_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9.\-]*)(\+[A-Za-z0-9_.\-]+)?://")
# PostgreSQL runs on SQLAlchemy's asyncio engine: plain dialect names get asyncpg. SQLite
# runs inline on Python's sqlite3 (metadata/engine.py); the aiosqlite spelling that older
# versions printed is accepted and means the same.
_URL_SCHEMES: Final[Mapping[str, str]] = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite+aiosqlite": "sqlite",
}


class DatabaseConfig(_Section):
    url: str | None = Field(default=None, repr=False)
    # Whether ``serve`` migrates the schema: ``onstart``, or ``never`` (refuse an old one
    # and name ``dockyard db migrate``). Unset: onstart for SQLite, never for PostgreSQL.
    migrate: Literal["onstart", "never"] | None = None
    pool: PoolConfig = Field(default_factory=PoolConfig)
    # Per-process read caches; on PostgreSQL kept only while LISTEN/NOTIFY invalidates them.
    readcache: bool = True

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
        scheme = match.group(1) + (match.group(2) or "")
        if scheme in _URL_SCHEMES:
            value = _URL_SCHEMES[scheme] + value[len(scheme) :]
        return value


class LimitsConfig(_Section):
    manifestmaxbytes: int = Field(default=DEFAULT_MANIFEST_MAX_BYTES, gt=0)


class ServeConfig(_Section):
    workers: int | None = Field(default=None, ge=1)


class HtpasswdAuthConfig(_Section):
    """``auth.htpasswd``: HTTP Basic against an htpasswd file of bcrypt entries."""

    realm: str
    path: _NonBlank


_HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")


class TokenAuthConfig(_Section):
    """``auth.token``: Bearer tokens from a token server (the Docker token flow)."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: _OptionalPath = None
    jwks: _OptionalPath = None
    signingalgorithms: list[str] = Field(default_factory=list)
    autoredirect: bool = False
    autoredirectpath: str = "/auth/token"

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("/") and not value.startswith("//"):
            return normalize_prefix(value) or "/"
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "must be the token endpoint's URL (https://auth.example.com/token), or a path "
                "(/auth/token) on the host the client used"
            )
        return value

    @field_validator("autoredirectpath")
    @classmethod
    def _autoredirectpath(cls, value: str) -> str:
        return normalize_prefix(value) or "/"

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

    signingkey: _OptionalPath = None
    htpasswd: _OptionalPath = None
    expiration: Duration = timedelta(minutes=5)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    admins: AdminsConfig = Field(default_factory=AdminsConfig)
    rules: list[AccessRuleConfig] = Field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.signingkey is not None

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
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    immutabletags: ImmutableTagsConfig = Field(default_factory=ImmutableTagsConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    gc: GcConfig = Field(default_factory=GcConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    replication: ReplicationConfig = Field(default_factory=ReplicationConfig)

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
        ``dockyard.db`` (absolute) in the storage's local directory (filesystem storage's
        ``rootdirectory``), in the working directory for object storage (no local
        directory), or an in-memory database for storage in the process (inmemory).
        """
        if self.database.url:
            return self.database.url
        root = self.storage.local_root
        if root is None and not self.storage.in_process:
            root = "."
        if root is not None:
            root = os.path.abspath(os.path.expanduser(root))
            return "sqlite:///" + os.path.join(root, SQLITE_FILENAME)
        return "sqlite://"

    def migrate_setting(self) -> Literal["onstart", "never"]:
        """``database.migrate`` in effect: when unset, ``onstart`` for SQLite (embedded,
        one server) and ``never`` for PostgreSQL (replicas; ``dockyard db migrate``)."""
        if self.database.migrate is not None:
            return self.database.migrate
        backend = self.database_url().partition(":")[0].partition("+")[0]
        return "onstart" if backend == "sqlite" else "never"

    def worker_count(self) -> int:
        """How many server processes to run: ``serve.workers``, else one per CPU core.

        Storage that lives inside one process (inmemory) always gets one.
        """
        if self.storage.in_process:
            return 1
        return self.serve.workers or os.cpu_count() or 1
