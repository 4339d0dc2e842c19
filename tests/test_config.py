"""dockyard.config: Distribution config.yml + REGISTRY_* overrides."""

from __future__ import annotations

import os
import re
import types
import typing
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from dockyard.config import (
    DEPRECATED_KEYS,
    REFUSED_KEYS,
    UNSUPPORTED_KEYS,
    Config,
    ConfigError,
    HttpConfig,
    LoadedConfig,
    StorageConfig,
    format_duration,
    load_config,
    parse_duration,
    render_effective,
)
from dockyard.storage.factory import NOT_IMPLEMENTED, driver_names, parameters_model

REPO = Path(__file__).resolve().parents[1]

# The config.yml shipped in the registry:2 image.
REGISTRY2_SAMPLE = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""

MINIMAL = """\
version: 0.1
storage:
  inmemory:
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> LoadedConfig:
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env or {})


def unset_resolved(config: Config) -> Config:
    """``config`` with the keys that ``render_effective`` resolves (unset keys whose value
    depends on the machine or the database) set to what they resolve to."""
    database = config.database.model_copy(
        update={"url": config.database_url(), "migrate": config.migrate_setting()}
    )
    serve = config.serve.model_copy(update={"workers": config.worker_count()})
    http = config.http.model_copy(update={"draintimeout": config.http.drain_timeout()})
    return config.model_copy(update={"database": database, "serve": serve, "http": http})


def rendered_and_loaded(tmp_path: Path, config: Config) -> LoadedConfig:
    """``render_effective(config)`` loaded back: the same configuration, with what was unset
    resolved, and nothing to warn about."""
    again = load(tmp_path, render_effective(config))
    assert again.warnings == []
    assert again.config == unset_resolved(config)
    return again


TLS = "    certificate: /c.pem\n    key: /k.pem\n"
LE = "      cachefile: /var/lib/registry/letsencrypt.json\n"
TOKEN = "realm: https://auth.example.com/token, service: s, issuer: i, rootcertbundle: /b.pem"


def config_error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return str(caught.value)


# ---- the registry:2 sample ---------------------------------------------------------------


def test_registry2_sample_loads_with_warnings_only(tmp_path: Path) -> None:
    loaded = load(tmp_path, REGISTRY2_SAMPLE)
    config = loaded.config
    assert loaded.warnings == ["storage.cache: not supported yet, ignored"]
    assert config.health.storagedriver.enabled is True
    assert config.health.storagedriver.threshold == 3
    assert config.version == "0.1"
    assert config.log.level == "info"
    assert config.log.formatter == "text"
    assert config.log.fields == {"service": "registry"}
    assert config.log.accesslog.disabled is False
    assert config.storage.driver == "filesystem"
    assert config.storage.local_root == "/var/lib/registry"
    assert config.storage.delete.enabled is False
    assert config.storage.maintenance.readonly.enabled is False
    purging = config.storage.maintenance.uploadpurging
    assert (purging.enabled, purging.age, purging.interval, purging.dryrun) == (
        True,
        timedelta(hours=168),
        timedelta(hours=24),
        False,
    )
    assert config.http.addr == ":5000"
    assert config.http.bind() == ("0.0.0.0", 5000)
    assert config.http.headers == {"X-Content-Type-Options": ["nosniff"]}
    assert config.http.net == "tcp"
    assert config.http.host is None
    assert config.http.prefix == ""
    assert config.http.relativeurls is False
    assert config.http.secret is None
    assert config.http.draintimeout is None
    assert config.http.drain_timeout() == timedelta(seconds=20)
    assert config.catalog.maxentries == 1000
    assert config.validation.disabled is False
    assert config.validation.manifests.urls.allow == []
    assert config.database.url is None
    assert config.limits.manifestmaxbytes == 4 * 1024 * 1024
    assert config.serve.workers is None


def test_minimal_inmemory(tmp_path: Path) -> None:
    loaded = load(tmp_path, MINIMAL)
    assert loaded.warnings == []
    assert loaded.config.storage.driver == "inmemory"
    assert loaded.config.http.headers == {"X-Content-Type-Options": ["nosniff"]}


def test_filesystem_without_rootdirectory_uses_distribution_default(tmp_path: Path) -> None:
    config = load(tmp_path, "version: 0.1\nstorage:\n  filesystem:\n").config
    assert config.storage.driver == "filesystem"
    assert config.storage.local_root == "/var/lib/registry"


def test_storage_as_a_bare_driver_name(tmp_path: Path) -> None:
    assert load(tmp_path, "version: 0.1\nstorage: inmemory\n").config.storage.driver == "inmemory"


def test_full_supported_file(tmp_path: Path) -> None:
    text = """\
version: "0.1"
log:
  level: DEBUG
  formatter: json
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: /srv/registry
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
      age: 48h
      interval: 1h30m
      dryrun: true
    readonly:
      enabled: true
http:
  addr: 127.0.0.1:5001
  host: https://registry.example.com/
  prefix: /my/nested/registry/
  relativeurls: true
  secret: s3cret
  draintimeout: 60s
  headers:
    x-frame-options: [DENY]
catalog:
  maxentries: 50
validation:
  manifests:
    urls:
      allow: ['^https?://([^/]+\\.)*example\\.com/']
      deny: ['^https?://www\\.example\\.com/']
database:
  url: postgresql+asyncpg://dockyard@db/dockyard
limits:
  manifestmaxbytes: 1048576
serve:
  workers: 4
"""
    loaded = load(tmp_path, text)
    config = loaded.config
    assert loaded.warnings == []
    assert config.log.level == "debug"
    assert config.log.formatter == "json"
    assert config.log.accesslog.disabled is True
    assert config.storage.local_root == "/srv/registry"
    assert config.storage.delete.enabled is True
    purging = config.storage.maintenance.uploadpurging
    assert purging.enabled is False
    assert purging.age == timedelta(hours=48)
    assert purging.interval == timedelta(hours=1, minutes=30)
    assert purging.dryrun is True
    assert config.storage.maintenance.readonly.enabled is True
    assert config.http.bind() == ("127.0.0.1", 5001)
    assert config.http.host == "https://registry.example.com"
    assert config.http.prefix == "/my/nested/registry"
    assert config.http.relativeurls is True
    assert config.http.secret == "s3cret"
    assert config.http.draintimeout == timedelta(seconds=60)
    assert config.http.headers == {"X-Frame-Options": ["DENY"]}
    assert config.catalog.maxentries == 50
    assert config.validation.manifests.urls.deny == [r"^https?://www\.example\.com/"]
    assert config.database_url() == "postgresql+asyncpg://dockyard@db/dockyard"
    assert config.limits.manifestmaxbytes == 1048576
    assert config.serve.workers == 4
    assert config.worker_count() == 4


def test_text_fields_keep_the_scalar_as_written(tmp_path: Path) -> None:
    # Go's YAML decoder gives a string field the text as written; so do we.
    text = (
        MINIMAL + "http:\n  secret: 0123\n  addr: 1:30\nlog:\n  fields:\n    env: yes\n    n: 1e3\n"
    )
    config = load(tmp_path, text).config
    assert config.http.secret == "0123"
    assert config.http.bind() == ("1", 30)
    assert config.log.fields == {"env": "yes", "n": "1e3"}


# ---- embedded defaults --------------------------------------------------------------------


def test_embedded_defaults() -> None:
    loaded = load_config(None, {})
    config = loaded.config
    assert loaded.warnings == []
    assert config.version == "0.1"
    assert config.storage.driver == "filesystem"
    assert config.storage.local_root == "./data"
    assert config.storage.delete.enabled is True
    assert config.http.addr == ":5000"
    assert config.log.level == "info"


def test_embedded_defaults_take_env_overrides() -> None:
    env = {"REGISTRY_HTTP_ADDR": ":5001", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data"}
    config = load_config(None, env).config
    assert config.http.bind() == ("0.0.0.0", 5001)
    assert config.storage.local_root == "/data"
    assert config.storage.delete.enabled is True


def test_environ_none_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_LOG_LEVEL", "debug")
    assert load_config(None).config.log.level == "debug"


# ---- environment overrides -----------------------------------------------------------------


def test_env_overrides_nested_keys(tmp_path: Path) -> None:
    env = {
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data",
        "REGISTRY_LOG_LEVEL": "debug",
        "REGISTRY_HTTP_ADDR": ":5001",
    }
    loaded = load(tmp_path, REGISTRY2_SAMPLE, env)
    assert loaded.config.storage.local_root == "/data"
    assert loaded.config.log.level == "debug"
    assert loaded.config.http.bind() == ("0.0.0.0", 5001)
    assert loaded.config.log.fields == {"service": "registry"}  # siblings untouched


def test_env_creates_keys_the_file_lacks(tmp_path: Path) -> None:
    env = {
        "REGISTRY_STORAGE_DELETE_ENABLED": "true",
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h",
        "REGISTRY_LOG_FIELDS_ENVIRONMENT": "staging",
        "REGISTRY_LOG_ACCESSLOG_DISABLED": "True",
        "REGISTRY_HTTP_SECRET": "from-env",
        "REGISTRY_HTTP_RELATIVEURLS": "yes",
        "REGISTRY_CATALOG_MAXENTRIES": "25",
        "REGISTRY_DATABASE_URL": "sqlite:////tmp/x.db",
        "REGISTRY_SERVE_WORKERS": "2",
        "REGISTRY_LIMITS_MANIFESTMAXBYTES": "1024",
    }
    config = load(tmp_path, REGISTRY2_SAMPLE, env).config
    assert config.storage.delete.enabled is True
    assert config.storage.maintenance.uploadpurging.age == timedelta(hours=2)
    assert config.log.fields == {"service": "registry", "environment": "staging"}
    assert config.log.accesslog.disabled is True
    assert config.http.secret == "from-env"
    assert config.http.relativeurls is True
    assert config.catalog.maxentries == 25
    assert config.database_url() == "sqlite:////tmp/x.db"
    assert config.serve.workers == 2
    assert config.limits.manifestmaxbytes == 1024


@pytest.mark.parametrize(
    ("payload", "expected"),
    [("true", True), ("TRUE", True), ("on", True), ("false", False), ("no", False)],
)
def test_env_booleans(tmp_path: Path, payload: str, expected: bool) -> None:
    env = {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": payload}
    assert load(tmp_path, MINIMAL, env).config.storage.maintenance.readonly.enabled is expected


def test_env_lists(tmp_path: Path) -> None:
    env = {"REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW": "['^https://a/', '^https://b/']"}
    config = load(tmp_path, MINIMAL, env).config
    assert config.validation.manifests.urls.allow == ["^https://a/", "^https://b/"]


def test_env_list_elements_by_index(tmp_path: Path) -> None:
    text = MINIMAL + "validation:\n  manifests:\n    urls:\n      deny: ['^http://old/']\n"
    env = {
        "REGISTRY_VALIDATION_MANIFESTS_URLS_DENY_0": "^http://first/",
        "REGISTRY_VALIDATION_MANIFESTS_URLS_DENY_1": "^http://second/",
        "REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW_0": "^https://",
    }
    urls = load(tmp_path, text, env).config.validation.manifests.urls
    assert urls.deny == ["^http://first/", "^http://second/"]
    assert urls.allow == ["^https://"]


def test_env_list_index_past_the_end(tmp_path: Path) -> None:
    message = config_error(tmp_path, MINIMAL, {"REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW_3": "x"})
    assert "REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW_3" in message
    assert "index 3" in message


def test_env_headers_map(tmp_path: Path) -> None:
    env = {"REGISTRY_HTTP_HEADERS_STRICT-TRANSPORT-SECURITY": "[max-age=31536000]"}
    headers = load(tmp_path, REGISTRY2_SAMPLE, env).config.http.headers
    assert headers == {
        "X-Content-Type-Options": ["nosniff"],
        "Strict-Transport-Security": ["max-age=31536000"],
    }


def test_env_text_value_kept_as_written(tmp_path: Path) -> None:
    env = {"REGISTRY_HTTP_SECRET": "0123", "REGISTRY_LOG_FIELDS_FLAG": "off"}
    config = load(tmp_path, MINIMAL, env).config
    assert config.http.secret == "0123"
    assert config.log.fields == {"flag": "off"}


def test_env_value_that_is_not_yaml_is_taken_as_text(tmp_path: Path) -> None:
    env = {"REGISTRY_HTTP_SECRET": "*not: [yaml"}
    assert load(tmp_path, MINIMAL, env).config.http.secret == "*not: [yaml"


def test_env_replaces_a_whole_section(tmp_path: Path) -> None:
    env = {"REGISTRY_LOG": "{level: warn}"}
    log = load(tmp_path, REGISTRY2_SAMPLE, env).config.log
    assert log.level == "warn"
    assert log.fields == {}


def test_env_storage_switches_driver(tmp_path: Path) -> None:
    text = REGISTRY2_SAMPLE.replace("storage:\n", "storage:\n  delete:\n    enabled: true\n")
    loaded = load(tmp_path, text, {"REGISTRY_STORAGE": "inmemory"})
    storage = loaded.config.storage
    assert storage.driver == "inmemory"
    # As in Distribution the variable replaces the whole storage section ...
    assert storage.delete.enabled is False
    assert "storage.cache: not supported yet, ignored" not in loaded.warnings


def test_env_storage_switch_then_nested_keys(tmp_path: Path) -> None:
    # ... and keys inside it are applied after it whatever the mapping's order.
    env = {
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/mnt/data",
        "REGISTRY_STORAGE_DELETE_ENABLED": "true",
        "REGISTRY_STORAGE": "filesystem",
    }
    storage = load(tmp_path, MINIMAL, env).config.storage
    assert storage.driver == "filesystem"
    assert storage.local_root == "/mnt/data"
    assert storage.delete.enabled is True


def test_env_adding_a_second_driver_is_an_error(tmp_path: Path) -> None:
    message = config_error(tmp_path, REGISTRY2_SAMPLE, {"REGISTRY_STORAGE_INMEMORY": ""})
    assert "exactly one storage driver" in message
    assert "filesystem" in message
    assert "inmemory (set by REGISTRY_STORAGE_INMEMORY)" in message


def test_env_unknown_variables_warn(tmp_path: Path) -> None:
    # Kubernetes service links produce variables like these for a service named "registry".
    env = {
        "REGISTRY_PORT": "tcp://10.0.0.1:5000",
        "REGISTRY_PORT_5000_TCP_ADDR": "10.0.0.1",
        "REGISTRY_SERVICE_HOST": "10.0.0.1",
        "REGISTRY_HTTP_SERVICE_PORT": "5000",
        "REGISTRY_VERSION": "0.2",
        "REGISTRY__X": "1",
        "registry_log_level": "debug",  # the prefix is case-sensitive, as in Distribution
    }
    loaded = load(tmp_path, MINIMAL, env)
    assert loaded.config.log.level == "info"
    assert loaded.warnings == [
        "REGISTRY_HTTP_SERVICE_PORT: there is no configuration key http.service, ignored",
        "REGISTRY_PORT: there is no configuration key port, ignored",
        "REGISTRY_PORT_5000_TCP_ADDR: there is no configuration key port, ignored",
        "REGISTRY_SERVICE_HOST: there is no configuration key service, ignored",
        "REGISTRY_VERSION: the version cannot be overridden from the environment, ignored",
        "REGISTRY__X: does not name a configuration key, ignored",
    ]


def test_env_into_a_value_is_ignored(tmp_path: Path) -> None:
    loaded = load(tmp_path, MINIMAL, {"REGISTRY_HTTP_ADDR_PORT": "1"})
    assert loaded.warnings == [
        "REGISTRY_HTTP_ADDR_PORT: there is no configuration key http.addr.port, ignored"
    ]


def test_env_bad_value_names_key_and_variable(tmp_path: Path) -> None:
    message = config_error(tmp_path, MINIMAL, {"REGISTRY_CATALOG_MAXENTRIES": "abc"})
    assert message.startswith("catalog.maxentries: ")
    assert "'abc'" in message
    assert "REGISTRY_CATALOG_MAXENTRIES" in message


def test_env_can_select_unsupported_sections_which_then_warn(tmp_path: Path) -> None:
    loaded = load(tmp_path, MINIMAL, {"REGISTRY_REDIS_ADDR": "localhost:6379"})
    assert loaded.warnings == ["redis: not supported yet, ignored (set by REGISTRY_REDIS_ADDR)"]


def test_env_deprecated_loglevel(tmp_path: Path) -> None:
    loaded = load(tmp_path, MINIMAL, {"REGISTRY_LOGLEVEL": "warn"})
    assert loaded.config.log.level == "warn"


# ---- ConfigError cases ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("storage: {inmemory: {}}\n", "version: missing"),
        ("version: 0.2\nstorage: {inmemory: {}}\n", "version: unsupported version '0.2'"),
        ("version: '1.0'\nstorage: {inmemory: {}}\n", "version: unsupported version '1.0'"),
        ("version: 0.10\nstorage: {inmemory: {}}\n", "version: unsupported version '0.10'"),
        ("", "version: missing"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("version: 0.1\n", "storage: no storage driver configured"),
        ("version: 0.1\nstorage:\n  delete: {enabled: true}\n", "storage: no storage driver"),
        (
            "version: 0.1\nstorage:\n  filesystem: {}\n  inmemory: {}\n",
            "storage: exactly one storage driver may be configured, found filesystem, inmemory",
        ),
        (
            "version: 0.1\nstorage:\n  s3: {bucket: b}\n",
            "storage.s3.region: required (as in Distribution)",
        ),
        (
            "version: 0.1\nstorage:\n  s3: {region: r}\n",
            "storage.s3.bucket: required (as in Distribution)",
        ),
        (
            "version: 0.1\nstorage:\n  s3: {bucket: b, region: r, chunksize: 1024}\n",
            "storage.s3.chunksize: Input should be greater than or equal to 5242880",
        ),
        ("version: 0.1\nstorage:\n  gcs: {}\n", "storage.gcs.bucket: Field required"),
        (
            "version: 0.1\nstorage:\n  gcs: {bucket: b, chunksize: 1000}\n",
            "storage.gcs.chunksize: must be a positive multiple of 262144",
        ),
        ("version: 0.1\nstorage:\n  azure: {}\n", "storage.azure.accountname: Field required"),
        (
            "version: 0.1\nstorage:\n  azure: {accountname: a, accountkey: k, container: c}\n",
            "storage.azure.container: a container name has 3 to 63 characters",
        ),
        ("version: 0.1\nstorage:\n  swift: {}\n", "storage.swift: the swift storage driver"),
        ("version: 0.1\nstorage:\n  oss: {}\n", "storage.oss: the oss storage driver"),
        ("version: 0.1\nstorage:\n  floppy: {}\n", "storage.floppy: unknown storage driver"),
        ("version: 0.1\nstorage:\n  driver: inmemory\n", "storage.driver: not a configuration"),
        ("version: 0.1\nstorage:\n  filesystem: /data\n", "storage.filesystem: expected a mapping"),
        (
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ''\n",
            "storage.filesystem.rootdirectory: must not be empty",
        ),
        (
            MINIMAL + "http:\n  tls:\n    letsencrypt:\n      cachefile: /le\n",
            "http.tls.letsencrypt: hosts: give the host names to obtain a certificate for",
        ),
        (
            MINIMAL + f"http:\n  tls:\n    letsencrypt:\n{LE}      hosts: ['*.example.com']\n",
            "http.tls.letsencrypt.hosts: '*.example.com': wildcard names need the DNS-01",
        ),
        (
            MINIMAL + f"http:\n  tls:\n    letsencrypt:\n{LE}      hosts: [a_b.example]\n",
            "http.tls.letsencrypt.hosts: 'a_b.example' is not a DNS host name",
        ),
        (
            MINIMAL + f"http:\n  tls:\n{TLS}    letsencrypt:\n{LE}      hosts: [a.example]\n",
            "http.tls: give either certificate and key, or letsencrypt, not both",
        ),
        (
            MINIMAL
            + f"http:\n  tls:\n    letsencrypt:\n{LE}      hosts: [a.example]\n"
            + "      directoryurl: http://ca.example/dir\n",
            "http.tls.letsencrypt.directoryurl: must be the https URL of an ACME directory",
        ),
        (
            MINIMAL
            + f"http:\n  tls:\n    letsencrypt:\n{LE}      hosts: [a.example]\n"
            + "      httpaddr: '80'\n",
            "http.tls.letsencrypt.httpaddr: missing port in address",
        ),
        (
            MINIMAL + f"http:\n  tls:\n    letsencrypt:\n{LE}      email: nobody\n",
            "http.tls.letsencrypt.email: 'nobody' is not an email address",
        ),
        (
            MINIMAL + "http:\n  tls:\n    certificate: /c.pem\n",
            "http.tls: the certificate needs its key: set http.tls.key",
        ),
        (
            MINIMAL + f"http:\n  tls:\n{TLS}    clientauth: verify-client-cert-if-given\n",
            "http.tls: clientauth needs the CAs to verify clients with: set clientcas",
        ),
        (
            MINIMAL + f"http:\n  tls:\n{TLS}    clientauth: request-client-cert\n",
            "http.tls.clientauth: request-client-cert asks for a client certificate but "
            "accepts any, unverified",
        ),
        (
            MINIMAL + f"http:\n  tls:\n{TLS}    clientauth: require-any-client-cert\n",
            "http.tls.clientauth: require-any-client-cert requires",
        ),
        (
            MINIMAL + f"http:\n  tls:\n{TLS}    minimumtls: tls1.4\n",
            "http.tls.minimumtls: Input should be 'tls1.2' or 'tls1.3'",
        ),
        (
            MINIMAL + f"http:\n  tls:\n{TLS}    ciphersuites: [TLS_BOGUS]\n",
            "http.tls.ciphersuites: [0] 'TLS_BOGUS' is not a TLS cipher suite Go knows",
        ),
        (MINIMAL + "auth:\n  token: {realm: r}\n", "auth.token.realm: must be the token"),
        (
            MINIMAL + "auth:\n  token: {realm: /t, issuer: i}\n",
            "auth.token.service: Field required",
        ),
        (
            MINIMAL + "auth:\n  token: {realm: /t, issuer: i, service: s}\n",
            "auth.token: no key to verify tokens with: set rootcertbundle",
        ),
        (
            MINIMAL + f"auth:\n  token: {{{TOKEN}, signingalgorithms: [HS256]}}\n",
            "auth.token.signingalgorithms: [0] HS256 signs with a shared secret",
        ),
        (
            MINIMAL + f"auth:\n  token: {{{TOKEN}, signingalgorithms: [none]}}\n",
            "auth.token.signingalgorithms: [0] 'none' is not a supported signing algorithm",
        ),
        (
            MINIMAL + "auth:\n  silly: {realm: r, service: s}\n",
            "auth.silly: the silly auth type (a development stub",
        ),
        (
            MINIMAL + "auth:\n  ldap: {url: x}\n",
            "auth.ldap: unknown auth type (supported: htpasswd, token); refusing to start",
        ),
        (MINIMAL + "auth: htpasswd\n", "auth.htpasswd.realm: Field required"),
        (MINIMAL + "auth:\n  htpasswd: {realm: r}\n", "auth.htpasswd.path: Field required"),
        (MINIMAL + "auth: [htpasswd]\n", "auth: expected a mapping, got a list"),
        (
            MINIMAL + "security:\n  trustedproxies: [10.0.0.0/8, nginx]\n",
            "security.trustedproxies: [1] 'nginx' is not an IP address or network",
        ),
        (
            MINIMAL + "security:\n  failedlogins: {limit: -1}\n",
            "security.failedlogins.limit: Input should be greater than or equal to 0",
        ),
        (
            MINIMAL
            + "proxy:\n  remoteurl: http://a\n  upstreams: [{prefix: b, remoteurl: http://b}]\n",
            "proxy: set remoteurl (one upstream for every repository) or upstreams",
        ),
        (MINIMAL + "http:\n  net: unix\n", "http.net: unix sockets are not supported yet"),
        (MINIMAL + "http:\n  net: udp\n", "http.net: must be tcp"),
        (MINIMAL + "http:\n  addr: localhost\n", "http.addr: missing port in address"),
        (MINIMAL + "http:\n  addr: ':http'\n", "http.addr: the port must be a number"),
        (MINIMAL + "http:\n  addr: ':70000'\n", "http.addr: port 70000 is out of range"),
        (MINIMAL + "http:\n  addr: '::1:5000'\n", "http.addr: too many colons"),
        (MINIMAL + "http:\n  host: registry.example.com\n", "http.host: must be an absolute URL"),
        (MINIMAL + "http:\n  host: ftp://x\n", "http.host: must be an absolute URL"),
        (MINIMAL + "http:\n  prefix: /a?b\n", "http.prefix: '/a?b' is not a URL path"),
        (MINIMAL + "http:\n  headers:\n    'Bad Name': [x]\n", "is not a valid header name"),
        (MINIMAL + 'http:\n  headers:\n    X-A: ["a\\r\\nb"]\n', "must not contain line breaks"),
        (MINIMAL + "http:\n  headers:\n    X-A: nosniff\n", "http.headers.X-A: Input should"),
        (MINIMAL + "http:\n  draintimeout: 10\n", "http.draintimeout: a duration needs a unit"),
        (MINIMAL + "http:\n  draintimeout: soon\n", "http.draintimeout: invalid duration"),
        (MINIMAL + "http: [a]\n", "http: expected a mapping of keys, got a list"),
        (MINIMAL + "catalog:\n  maxentries: abc\n", "catalog.maxentries: Input should be"),
        (MINIMAL + "catalog:\n  maxentries: 1.5\n", "catalog.maxentries:"),
        (
            MINIMAL + "storage:\n  inmemory:\n  delete:\n    enabled: maybe\n",
            "storage.delete.enabled: Input should be a valid boolean",
        ),
        (
            MINIMAL.replace(
                "inmemory:", "inmemory:\n  maintenance:\n    uploadpurging:\n      age: -1h\n"
            ),
            "storage.maintenance.uploadpurging.age: a duration must not be negative",
        ),
        (
            MINIMAL.replace(
                "inmemory:", "inmemory:\n  maintenance:\n    uploadpurging:\n      interval: 0s\n"
            ),
            "storage.maintenance.uploadpurging.interval: must be longer than zero",
        ),
        (MINIMAL + "log:\n  level: trace\n", "log.level: Input should be 'error', 'warn'"),
        (MINIMAL + "log:\n  formatter: xml\n", "log.formatter: Input should be 'text' or 'json'"),
        (MINIMAL + "log:\n  fields:\n    nested: {a: b}\n", "log.fields.nested: Input should"),
        (
            MINIMAL + "validation:\n  manifests:\n    urls:\n      allow: ['(unclosed']\n",
            "validation.manifests.urls.allow: [0] '(unclosed' is not a valid regular expression",
        ),
        (MINIMAL + "validation:\n  enabled: maybe\n", "validation.enabled: expected true or false"),
        (MINIMAL + "database:\n  url: not-a-url\n", "database.url: must be a SQLAlchemy URL"),
        (MINIMAL + "limits:\n  manifestmaxbytes: 0\n", "limits.manifestmaxbytes: Input should"),
        (MINIMAL + "serve:\n  workers: 0\n", "serve.workers: Input should be greater than"),
        (MINIMAL + "serve:\n  workers: 4\n", "serve.workers: inmemory storage lives inside one"),
    ],
)
def test_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in config_error(tmp_path, text)


def test_type_error_shows_the_bad_value(tmp_path: Path) -> None:
    message = config_error(tmp_path, MINIMAL + "catalog:\n  maxentries: abc\n")
    assert message == (
        "catalog.maxentries: Input should be a valid integer, "
        "unable to parse string as an integer (got 'abc')"
    )
    message = config_error(
        tmp_path, "version: 0.1\nstorage:\n  inmemory:\n  delete:\n    enabled: maybe\n"
    )
    assert message.startswith("storage.delete.enabled: ")
    assert "(got 'maybe')" in message


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    message = config_error(tmp_path, MINIMAL + "catalog: {maxentries: x}\nlog: {level: loud}\n")
    assert "catalog.maxentries" in message
    assert "log.level" in message


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, "version: 0.1\nstorage:\n  inmemory: {\nhttp: [\n")
    assert "invalid YAML at line" in message
    assert str(tmp_path / "config.yml") in message
    message = config_error(tmp_path, "version: 0.1\nlog:\n  level: info\n level: debug\n")
    assert re.search(r"invalid YAML at line 4\b", message)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yml", {})


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, {})


def test_refusals_from_the_environment(tmp_path: Path) -> None:
    message = config_error(tmp_path, MINIMAL, {"REGISTRY_AUTH_LDAP_URL": "ldap://x"})
    assert message == (
        "auth.ldap: unknown auth type (supported: htpasswd, token), set by the environment "
        "variable REGISTRY_AUTH_LDAP_URL; refusing to start without the authentication it "
        "asks for. To fix it, unset REGISTRY_AUTH_LDAP_URL in the server's environment, or "
        "configure auth.htpasswd or auth.token instead"
    )
    message = config_error(tmp_path, MINIMAL, {"REGISTRY_AUTH": "ldap"})
    assert "set by the environment variable REGISTRY_AUTH;" in message
    assert "unset REGISTRY_AUTH in the server's environment" in message
    message = config_error(tmp_path, MINIMAL, {"REGISTRY_AUTH_SILLY_REALM": "r"})
    assert message.startswith("auth.silly: ")
    assert "unset REGISTRY_AUTH_SILLY_REALM in the server's environment" in message
    message = config_error(tmp_path, MINIMAL, {"REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE": "/le"})
    assert message.startswith("http.tls.letsencrypt: hosts: give the host names")
    message = config_error(tmp_path, MINIMAL, {"REGISTRY_STORAGE": "swift"})
    assert "storage.swift: the swift storage driver is not supported yet" in message
    assert "REGISTRY_STORAGE" in message


def test_unknown_auth_type_in_the_file_says_how_to_fix_it(tmp_path: Path) -> None:
    message = config_error(tmp_path, MINIMAL + "auth:\n  ldap: {url: ldap://x}\n")
    assert "environment" not in message
    assert message.endswith(
        "To fix it, configure auth.htpasswd or auth.token in its place, "
        "or remove auth.ldap to serve without authentication"
    )


def test_registry_auth_file_is_not_an_override(tmp_path: Path) -> None:
    """podman, skopeo and buildah users have REGISTRY_AUTH_FILE set; registry:2 reads it as
    an auth type ``file`` and refuses to start, Dockyard ignores it and says why."""
    loaded = load(tmp_path, MINIMAL, {"REGISTRY_AUTH_FILE": "/run/user/0/containers/auth.json"})
    assert loaded.config.auth.kind() is None
    assert loaded.warnings == [
        "REGISTRY_AUTH_FILE: not a configuration override, ignored: it names the credentials "
        "file (containers-auth.json) of podman, skopeo and buildah, not a registry setting"
    ]
    # Next to a configured auth type it changes nothing either (no "two auth types").
    text = MINIMAL + "auth:\n  htpasswd: {realm: r, path: /auth/htpasswd}\n"
    env = {"REGISTRY_AUTH_FILE": "/auth.json", "REGISTRY_AUTH_HTPASSWD_REALM": "Registry"}
    loaded = load(tmp_path, text, env)
    assert loaded.config.auth.htpasswd is not None
    assert loaded.config.auth.htpasswd.realm == "Registry"
    assert loaded.config.auth.kind() == "htpasswd"
    # Only that exact name: a variable inside it is still read (and refused).
    message = config_error(tmp_path, MINIMAL, {"REGISTRY_AUTH_FILE_PATH": "/x"})
    assert message.startswith("auth.file: unknown auth type")


def test_inert_tls_and_auth_sections_are_accepted(tmp_path: Path) -> None:
    # Distribution itself serves plain HTTP without a certificate, and no auth for "none".
    text = MINIMAL + "http:\n  tls:\n    minimumtls: tls1.2\nauth:\n  none: {}\nproxy: {}\n"
    loaded = load(tmp_path, text)
    assert loaded.warnings == ["http.tls: asks for nothing Distribution would act on, ignored"]
    assert loaded.config.auth.kind() is None
    assert load(tmp_path, MINIMAL + "http:\n  tls:\nauth:\n").warnings == []
    assert load(tmp_path, MINIMAL + "auth: none\n").config.auth.kind() is None


def test_htpasswd_auth(tmp_path: Path) -> None:
    text = MINIMAL + "auth:\n  htpasswd:\n    realm: Registry Realm\n    path: /auth/htpasswd\n"
    loaded = load(tmp_path, text)
    assert loaded.warnings == []
    assert loaded.config.auth.kind() == "htpasswd"
    assert loaded.config.auth.htpasswd is not None
    assert loaded.config.auth.htpasswd.realm == "Registry Realm"
    assert loaded.config.auth.htpasswd.path == "/auth/htpasswd"
    env = {"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "r"}
    env["REGISTRY_AUTH_HTPASSWD_PATH"] = "/etc/htpasswd"
    config = load(tmp_path, MINIMAL, env).config
    assert config.auth.htpasswd is not None
    assert config.auth.htpasswd.path == "/etc/htpasswd"
    message = config_error(
        tmp_path, text.replace("auth:\n", f"auth:\n  none:\n  token: {{{TOKEN}}}\n")
    )
    assert message.startswith("auth: exactly one auth type may be configured, found token, ")


def test_token_auth(tmp_path: Path) -> None:
    text = MINIMAL + (
        "auth:\n  token:\n    realm: https://auth.example.com/token\n"
        "    service: registry.example.com\n    issuer: auth.example.com\n"
        "    rootcertbundle: /etc/token.pem\n    jwks: /etc/jwks.json\n"
        "    signingalgorithms: [RS256, ES256, EdDSA]\n"
    )
    loaded = load(tmp_path, text)
    assert loaded.warnings == []
    token = loaded.config.auth.token
    assert token is not None
    assert (token.realm, token.service, token.issuer) == (
        "https://auth.example.com/token",
        "registry.example.com",
        "auth.example.com",
    )
    assert token.rootcertbundle == "/etc/token.pem" and token.jwks == "/etc/jwks.json"
    assert token.signingalgorithms == ["RS256", "ES256", "EdDSA"]
    assert not token.autoredirect and token.autoredirectpath == "/auth/token"
    relative = load(tmp_path, text.replace("https://auth.example.com/token", "/auth/token/"))
    assert relative.config.auth.token is not None
    assert relative.config.auth.token.realm == "/auth/token"
    rendered_and_loaded(tmp_path, loaded.config)


ACCESS = """\
auth:
  token:
    realm: /auth/token
    service: registry.example.com
    issuer: dockyard
access:
  signingkey: /etc/dockyard/token.key
  htpasswd: /etc/dockyard/htpasswd
  expiration: 10m
  groups:
    developers: [alice, bob]
    ops: [carol]
  admins:
    users: [root]
    groups: [ops]
  rules:
    - repositories: ["public/**"]
      actions: [pull]
      anonymous: true
    - repositories: ["team/**", "shared/*"]
      actions: [pull, push]
      groups: [developers]
    - repositories: ["users/${user}/**"]
      actions: ["*"]
      users: ["*"]
"""


def test_access_token_service(tmp_path: Path) -> None:
    loaded = load(tmp_path, MINIMAL + ACCESS)
    assert loaded.warnings == []
    access = loaded.config.access
    assert access.enabled
    assert access.expiration == timedelta(minutes=10)
    assert access.groups == {"developers": ["alice", "bob"], "ops": ["carol"]}
    assert access.admins.users == ["root"] and access.admins.groups == ["ops"]
    assert [rule.repositories for rule in access.rules] == [
        ["public/**"],
        ["team/**", "shared/*"],
        ["users/${user}/**"],
    ]
    assert access.rules[0].anonymous and access.rules[2].actions == ["*"]
    assert loaded.config.token_endpoint_path() == "/auth/token"
    rendered_and_loaded(tmp_path, loaded.config)
    assert not load(tmp_path, MINIMAL).config.access.enabled


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("  signingkey: /etc/dockyard/token.key\n", ""), "access: signingkey is required"),
        (("  htpasswd: /etc/dockyard/htpasswd\n", ""), "access: htpasswd is required"),
        (("groups: [developers]", "groups: [devs]"), "rules[1]: unknown group 'devs'"),
        (("    groups: [ops]", "    groups: [sre]"), "access: admins: unknown group 'sre'"),
        (
            ("actions: [pull]\n      anonymous", "actions: [push]\n      anonymous"),
            "only be given pull",
        ),
        (
            ("actions: [pull, push]", "actions: [pull, fly]"),
            "access.rules[1].actions[1]: Input should be",
        ),
        (("      groups: [developers]\n", ""), "a rule must name users, groups or anonymous"),
        (("expiration: 10m", "expiration: 2s"), "access.expiration: must be between 10s and 24h"),
        (
            ("realm: /auth/token", "realm: /v2/token"),
            "the token service cannot be served at '/v2/token'",
        ),
        (("auth:\n  token:", "auth:\n  none:\n  x:"), "auth.x: unknown auth type"),
    ],
)
def test_access_errors(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert ACCESS.count(change[0]) == 1, change[0]
    assert expected in config_error(tmp_path, MINIMAL + ACCESS.replace(*change))


def test_the_documented_token_service_example_loads(tmp_path: Path) -> None:
    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = docs[docs.index("### `access`") :]
    example = section[section.index("```yaml\n") + 8 : section.index("\n```\n")]
    loaded = load(tmp_path, example + "\n")
    assert loaded.warnings == []
    assert loaded.config.access.enabled and loaded.config.auth.token is not None
    assert len(loaded.config.access.rules) == 5


def test_access_needs_token_auth(tmp_path: Path) -> None:
    text = MINIMAL + ACCESS[ACCESS.index("access:") :]
    assert "access: Dockyard's token service issues the tokens" in config_error(tmp_path, text)


def test_security_section(tmp_path: Path) -> None:
    text = MINIMAL + (
        "security:\n  trustedproxies: [127.0.0.1, 10.0.0.0/8, '::1']\n"
        "  failedlogins:\n    limit: 5\n    window: 10m\n"
    )
    config = load(tmp_path, text).config
    assert config.security.trustedproxies == ["127.0.0.1", "10.0.0.0/8", "::1"]
    assert config.security.failedlogins.limit == 5
    assert config.security.failedlogins.window == timedelta(minutes=10)
    defaults = load(tmp_path, MINIMAL).config.security
    assert defaults.trustedproxies == []
    assert defaults.failedlogins.limit == 10


def test_tls(tmp_path: Path) -> None:
    text = MINIMAL + (
        f"http:\n  tls:\n{TLS}    clientcas: [/ca1.pem, /ca2.pem]\n"
        "    minimumtls: TLS1.3\n"
        "    ciphersuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
    )
    loaded = load(tmp_path, text)
    tls = loaded.config.http.tls
    assert tls.enabled
    assert (tls.certificate, tls.key) == ("/c.pem", "/k.pem")
    assert tls.clientcas == ["/ca1.pem", "/ca2.pem"]
    assert tls.clientauth is None  # require-and-verify when clientcas are given
    assert tls.minimumtls == "tls1.3"
    assert loaded.warnings == [
        "http.tls.ciphersuites: cipher suites cannot be chosen for TLS 1.3, "
        "ignored with minimumtls tls1.3"
    ]
    loaded = load(tmp_path, MINIMAL + f"http:\n  tls:\n{TLS}    minimumtls: tls1.0\n")
    assert loaded.config.http.tls.minimumtls == "tls1.2"
    assert loaded.warnings == ["http.tls.minimumtls: tls1.0 is not offered, using tls1.2"]
    env = {"REGISTRY_HTTP_TLS_CERTIFICATE": "/c.pem", "REGISTRY_HTTP_TLS_KEY": "/k.pem"}
    assert load(tmp_path, MINIMAL, env).config.http.tls.enabled
    assert not load(tmp_path, MINIMAL).config.http.tls.enabled
    again = load(tmp_path, render_effective(load(tmp_path, text).config))
    assert again.config.http.tls == tls


def test_letsencrypt(tmp_path: Path) -> None:
    text = MINIMAL + (
        f"http:\n  tls:\n    letsencrypt:\n{LE}"
        "      email: ops@example.com\n      hosts: [Registry.Example.com, registry.example.com.]\n"
    )
    loaded = load(tmp_path, text)
    assert loaded.warnings == []
    tls = loaded.config.http.tls
    assert tls.enabled and tls.certificate is None
    section = tls.letsencrypt
    assert section.cachefile == "/var/lib/registry/letsencrypt.json"
    assert section.hosts == ["registry.example.com"]
    assert section.directoryurl == "https://acme-v02.api.letsencrypt.org/directory"
    assert section.http_bind() is None  # TLS-ALPN-01 on the TLS port, as registry:2
    rendered = render_effective(loaded.config)
    assert "letsencrypt:\n      cachefile: /var/lib/registry/letsencrypt.json" in rendered
    assert load(tmp_path, rendered).config.http.tls == tls
    # registry:2's environment names work too
    env = {
        "REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE": "/le.json",
        "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS": "[a.example]",
        "REGISTRY_HTTP_TLS_LETSENCRYPT_HTTPADDR": "127.0.0.1:8080",
    }
    section = load(tmp_path, MINIMAL, env).config.http.tls.letsencrypt
    assert (section.cachefile, section.hosts) == ("/le.json", ["a.example"])
    assert section.http_bind() == ("127.0.0.1", 8080)
    # without a cache file Distribution does not use Let's Encrypt: ignored, with a warning
    loaded = load(tmp_path, MINIMAL + "http:\n  tls:\n    letsencrypt:\n      hosts: [a.b]\n")
    assert not loaded.config.http.tls.enabled
    assert loaded.warnings == ["http.tls.letsencrypt: without cachefile it is off, ignored"]


def test_refused_keys_are_the_documented_set() -> None:
    assert set(REFUSED_KEYS) == set()


def test_proxy_keys_of_registry2_and_upstreams(tmp_path: Path) -> None:
    text = MINIMAL + "proxy:\n  remoteurl: https://up.example\n  username: u\n  password: p\n"
    loaded = load(tmp_path, text).config
    rendered = render_effective(loaded)
    assert "password: '***'" in rendered and "password: p\n" not in rendered
    proxy = loaded.proxy
    assert (proxy.remoteurl, proxy.username, proxy.ttl) == (
        "https://up.example",
        "u",
        timedelta(hours=168),
    )
    text = MINIMAL + (
        "proxy:\n  upstreams:\n    - {prefix: docker.io, remoteurl: http://hub, ttl: 1h30m,"
        " stripprefix: true}\n"
    )
    upstream = load(tmp_path, text).config.proxy.upstreams[0]
    assert (upstream.prefix, upstream.ttl, upstream.stripprefix) == (
        "docker.io",
        timedelta(minutes=90),
        True,
    )


# ---- warnings --------------------------------------------------------------------------------


def test_unknown_keys_warn_with_full_dotted_key(tmp_path: Path) -> None:
    text = MINIMAL + (
        "colour: blue\n"
        "http:\n  addr: :5000\n  bogus: 1\n"
        "storage:\n  inmemory:\n    size: 1\n"
        "log:\n  Level: debug\n  accesslog:\n    enabled: true\n"
    )
    loaded = load(tmp_path, text)
    assert loaded.warnings == [
        f"{tmp_path / 'config.yml'} line 8: key 'storage' appears twice in the same mapping; "
        "the last one wins",
        "storage.inmemory.size: unknown key, ignored (the inmemory driver takes no parameters)",
        "colour: unknown key, ignored",
        "http.bogus: unknown key, ignored",
        "log.Level: unknown key, ignored; did you mean log.level?",
        "log.accesslog.enabled: unknown key, ignored; did you mean log.accesslog.disabled?",
    ]
    assert loaded.config.log.level == "info"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL + "  delete:\n    enabeld: true\n",
            "storage.delete.enabeld: unknown key, ignored; did you mean storage.delete.enabled?",
        ),
        (
            "version: 0.1\nstorage:\n  filesystem:\n    rootdir: /srv\n",
            "storage.filesystem.rootdir: unknown key, ignored; "
            "did you mean storage.filesystem.rootdirectory?",
        ),
        (
            MINIMAL + "  maintenance:\n    readonly:\n      enable: true\n",
            "storage.maintenance.readonly.enable: unknown key, ignored; "
            "did you mean storage.maintenance.readonly.enabled?",
        ),
        (
            MINIMAL + "http:\n  adr: :5001\n",
            "http.adr: unknown key, ignored; did you mean http.addr?",
        ),
        (
            MINIMAL + "catalog:\n  maxentrys: 10\n",
            "catalog.maxentrys: unknown key, ignored; did you mean catalog.maxentries?",
        ),
        (
            MINIMAL + "security:\n  trustedproxy: [127.0.0.1]\n",
            "security.trustedproxy: unknown key, ignored; did you mean security.trustedproxies?",
        ),
        # keys Dockyard knows but does not implement are suggested too
        (MINIMAL + "helth: {}\n", "helth: unknown key, ignored; did you mean health?"),
        # nothing close: no suggestion
        (MINIMAL + "colour: blue\n", "colour: unknown key, ignored"),
    ],
)
def test_unknown_keys_suggest_the_closest_known_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert load(tmp_path, text).warnings == [expected]


def test_a_typo_leaves_the_setting_at_its_default(tmp_path: Path) -> None:
    """Why the suggestion matters: the typo'd key is ignored, so deletes stay off."""
    loaded = load(tmp_path, MINIMAL + "  delete:\n    enabeld: true\n")
    assert loaded.config.storage.delete.enabled is False


def test_unknown_key_in_a_section_from_the_environment_names_the_variable(
    tmp_path: Path,
) -> None:
    loaded = load(tmp_path, MINIMAL, {"REGISTRY_LOG": "{levl: debug}"})
    assert loaded.warnings == [
        "log.levl: unknown key, ignored; did you mean log.level? (set by REGISTRY_LOG)"
    ]


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        (
            "REGISTRY_STORAGE_DELETE_ENABELD",
            "there is no configuration key storage.delete.enabeld, ignored; "
            "did you mean REGISTRY_STORAGE_DELETE_ENABLED?",
        ),
        (
            "REGISTRY_STROAGE_DELETE_ENABLED",
            "there is no configuration key stroage, ignored; "
            "did you mean REGISTRY_STORAGE_DELETE_ENABLED?",
        ),
        (
            "REGISTRY_VALIDATION_MANIFESTS_URLS_ALOW_0",
            "there is no configuration key validation.manifests.urls.alow, ignored; "
            "did you mean REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW_0?",
        ),
        # "serve" is close to "service", but REGISTRY_SERVE_HOST names nothing either
        ("REGISTRY_SERVICE_HOST", "there is no configuration key service, ignored"),
    ],
)
def test_unknown_variables_suggest_a_variable_that_names_a_key(
    tmp_path: Path, variable: str, expected: str
) -> None:
    assert load(tmp_path, MINIMAL, {variable: "true"}).warnings == [f"{variable}: {expected}"]


def test_typo_of_an_auth_type_or_driver_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    message = config_error(tmp_path, MINIMAL + "auth:\n  htpaswd: {realm: r, path: /p}\n")
    assert message.startswith(
        "auth.htpaswd: unknown auth type (supported: htpasswd, token; "
        "did you mean auth.htpasswd?); refusing to start"
    )
    message = config_error(tmp_path, "version: 0.1\nstorage:\n  filesytem: {}\n")
    assert message == (
        "storage.filesytem: unknown storage driver "
        "(supported: azure, filesystem, gcs, inmemory, s3; did you mean storage.filesystem?)"
    )


# ---- strict mode -------------------------------------------------------------------------


def test_strict_turns_every_warning_into_one_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(MINIMAL + "  delete:\n    enabeld: true\nreporting: {bugsnag: {apikey: k}}\n")
    env = {"REGISTRY_HTTP_ADR": ":5001"}
    warnings = load_config(path, env).warnings
    assert len(warnings) == 3
    with pytest.raises(ConfigError) as caught:
        load_config(path, env, strict=True)
    message = str(caught.value)
    assert message.startswith(
        "strict mode turns every configuration warning into an error; 3 warnings:"
    )
    for warning in warnings:
        assert f"\n  {warning}" in message


def test_strict_accepts_a_configuration_without_warnings(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(MINIMAL)
    assert load_config(path, {}, strict=True).warnings == []
    assert load_config(None, {}, strict=True).config.storage.delete.enabled is True


def test_strict_counts_the_ignored_registry_auth_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(MINIMAL)
    with pytest.raises(ConfigError, match="1 warning:\n  REGISTRY_AUTH_FILE: "):
        load_config(path, {"REGISTRY_AUTH_FILE": "/auth.json"}, strict=True)


def test_unsupported_sections_warn_once_each(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "inmemory:",
        "inmemory:\n  cache:\n    blobdescriptor: inmemory\n    blobdescriptorsize: 10\n"
        "  tag:\n    concurrencylimit: 4\n",
    ) + (
        "log:\n  hooks:\n    - type: mail\n  reportcaller: true\n"
        "http:\n  http2:\n    disabled: true\n"
        "redis:\n  addr: localhost:6379\n"
        "reporting:\n  bugsnag: {apikey: k}\n"
        "compatibility:\n  schema1: {enabled: true}\n"
        "middleware:\n  storage:\n    - name: cloudfront\n"
        "policy:\n  repository:\n    classes: [image]\n"
    )
    warnings = load(tmp_path, text).warnings
    for key in [
        "storage.cache",
        "storage.tag",
        "log.hooks",
        "log.reportcaller",
        "http.http2",
        "redis",
        "reporting",
        "compatibility",
        "middleware",
        "policy",
    ]:
        assert warnings.count(f"{key}: not supported yet, ignored") == 1, key
    assert len(warnings) == 10


def test_empty_unsupported_sections_do_not_warn(tmp_path: Path) -> None:
    assert (
        load(tmp_path, MINIMAL + "health:\nredis: {}\nnotifications: {endpoints: []}\n").warnings
        == []
    )


def test_logstash_is_json_with_a_warning(tmp_path: Path) -> None:
    loaded = load(tmp_path, MINIMAL + "log:\n  formatter: logstash\n")
    assert loaded.config.log.formatter == "json"
    assert loaded.warnings == ["log.formatter: logstash is not supported, using json"]


def test_deprecated_loglevel_applies_when_log_level_is_unset(tmp_path: Path) -> None:
    loaded = load(tmp_path, MINIMAL + "loglevel: debug\n")
    assert loaded.config.log.level == "debug"
    assert loaded.warnings == ["loglevel: deprecated, use log.level"]
    loaded = load(tmp_path, MINIMAL + "loglevel: debug\nlog:\n  level: error\n")
    assert loaded.config.log.level == "error"


def test_validation_flags(tmp_path: Path) -> None:
    loaded = load(tmp_path, MINIMAL + "validation:\n  disabled: true\n")
    assert loaded.config.validation.disabled is True
    assert loaded.warnings == [
        "validation.disabled: manifest URL validation is off; "
        "pushed manifests may reference any foreign URL"
    ]
    # Distribution: the deprecated enabled: true wins over disabled.
    loaded = load(tmp_path, MINIMAL + "validation:\n  enabled: true\n  disabled: true\n")
    assert loaded.config.validation.disabled is False
    assert loaded.warnings == ["validation.enabled: deprecated, use validation.disabled"]


def test_distribution_adjustments(tmp_path: Path) -> None:
    text = MINIMAL + "catalog:\n  maxentries: 0\n"
    loaded = load(tmp_path, text)
    assert loaded.config.catalog.maxentries == 1000
    assert loaded.warnings == ["catalog.maxentries: 0 is not positive, using 1000"]


def test_maxthreads_is_accepted_and_ignored(tmp_path: Path) -> None:
    """Distribution's limit on filesystem threads has nothing to limit in Dockyard."""
    text = "version: 0.1\nstorage:\n  filesystem:\n    maxthreads: 5\n"
    loaded = load(tmp_path, text)
    assert loaded.warnings == ["storage.filesystem.maxthreads: not supported yet, ignored"]
    assert "maxthreads" not in loaded.config.storage.parameters.model_dump()
    text = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv\n"
    from_env = load(tmp_path, text, {"REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS": "50"})
    assert from_env.warnings == [
        "storage.filesystem.maxthreads: not supported yet, ignored "
        "(set by REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS)"
    ]


def test_null_values_keep_defaults(tmp_path: Path) -> None:
    text = MINIMAL + "http:\n  addr:\n  secret:\n  headers:\n    X-Empty:\nlog:\n  level:\n"
    config = load(tmp_path, text).config
    assert config.http.addr == ":5000"
    assert config.http.secret is None
    assert config.http.headers == {}
    assert config.log.level == "info"


# ---- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("-0", timedelta(0)),
        ("0s", timedelta(0)),
        ("10s", timedelta(seconds=10)),
        ("+10s", timedelta(seconds=10)),
        ("30m", timedelta(minutes=30)),
        ("168h", timedelta(hours=168)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2h45m30.5s", timedelta(hours=2, minutes=45, seconds=30, milliseconds=500)),
        ("1.5h", timedelta(minutes=90)),
        (".5s", timedelta(milliseconds=500)),
        ("1.s", timedelta(seconds=1)),
        ("300ms", timedelta(milliseconds=300)),
        ("10us", timedelta(microseconds=10)),
        ("10\u00b5s", timedelta(microseconds=10)),
        ("10\u03bcs", timedelta(microseconds=10)),
        ("1500ns", timedelta(microseconds=1)),
        ("1ns", timedelta(0)),
        ("30s1h", timedelta(hours=1, seconds=30)),
        ("-1h", timedelta(hours=-1)),
        ("2562047h47m16.854775807s", timedelta(hours=2562047, minutes=47, seconds=16.854775)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        "+",
        "1",
        "10",
        "h",
        ".s",
        ".",
        "1d",
        "1 h",
        "1h 30m",
        "1hh",
        "s1",
        "1e3s",
        "2562047h47m16.854775808s",
        "9" * 40 + "h",
        "1.2.3s",
        "\u0661s",  # a non-ASCII digit
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(hours=168), "168h"),
        (timedelta(hours=24), "24h"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(seconds=10), "10s"),
        (timedelta(seconds=1, milliseconds=500), "1.5s"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(microseconds=7), "7us"),
        (timedelta(hours=1, microseconds=1), "1h0.000001s"),
        (timedelta(minutes=-5), "-5m"),
    ],
)
def test_format_duration(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


_DAYS_IN_GO_RANGE = 100_000  # time.Duration reaches about 106751 days


@given(
    st.timedeltas(
        min_value=timedelta(days=-_DAYS_IN_GO_RANGE), max_value=timedelta(days=_DAYS_IN_GO_RANGE)
    )
)
def test_duration_round_trip(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


_UNIT_MICROS = {"h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000, "ms": 1_000, "us": 1}


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(_UNIT_MICROS))),
        min_size=1,
        max_size=6,
    )
)
def test_duration_segments_add_up(segments: list[tuple[int, str]]) -> None:
    text = "".join(f"{amount}{unit}" for amount, unit in segments)
    expected = sum(amount * _UNIT_MICROS[unit] for amount, unit in segments)
    assert parse_duration(text) == timedelta(microseconds=expected)


@given(st.integers(0, 10**9), st.integers(0, 999_999))
def test_duration_fractions(seconds: int, micros: int) -> None:
    assert parse_duration(f"{seconds}.{micros:06d}s") == timedelta(
        seconds=seconds, microseconds=micros
    )


@given(st.text(max_size=30))
def test_duration_parser_only_raises_value_error(text: str) -> None:
    try:
        result = parse_duration(text)
    except ValueError:
        return
    assert isinstance(result, timedelta)


@given(st.text(alphabet="0123456789.+-hmsunµ", max_size=16))
def test_duration_parser_on_near_miss_text(text: str) -> None:
    try:
        result = parse_duration(text)
    except ValueError:
        return
    # Whatever parses renders back to the same value.
    assert parse_duration(format_duration(result)) == result


# ---- http.prefix, http.addr ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", ""),
        ("/", ""),
        ("//", ""),
        ("registry", "/registry"),
        ("/registry", "/registry"),
        ("/registry/", "/registry"),
        ("registry/", "/registry"),
        ("/my/nested/registry/", "/my/nested/registry"),
        ("//my//nested//", "/my/nested"),
    ],
)
def test_prefix_normalisation(tmp_path: Path, prefix: str, expected: str) -> None:
    config = load(tmp_path, MINIMAL + f"http:\n  prefix: '{prefix}'\n").config
    assert config.http.prefix == expected
    assert HttpConfig(prefix=prefix).prefix == expected


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        (":5000", ("0.0.0.0", 5000)),
        ("0.0.0.0:5000", ("0.0.0.0", 5000)),
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:5000", ("localhost", 5000)),
        ("registry.internal:443", ("registry.internal", 443)),
        ("[::1]:5000", ("::1", 5000)),
        ("[::]:5000", ("::", 5000)),
        (":0", ("0.0.0.0", 0)),
        (" :5000 ", ("0.0.0.0", 5000)),
    ],
)
def test_bind(addr: str, expected: tuple[str, int]) -> None:
    assert HttpConfig(addr=addr).bind() == expected


@pytest.mark.parametrize(
    "addr", ["5000", "localhost", ":", ":-1", ":65536", "::1:5000", "[::1]", "[::1:5000", ":5k"]
)
def test_bind_rejects(addr: str) -> None:
    with pytest.raises(ValueError):
        HttpConfig(addr=addr)


# ---- database_url -----------------------------------------------------------------------------


def test_database_url_explicit(tmp_path: Path) -> None:
    text = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv\ndatabase:\n  url: sqlite:////x/y.db\n"
    assert load(tmp_path, text).config.database_url() == "sqlite:////x/y.db"


def test_database_url_beside_filesystem_storage(tmp_path: Path) -> None:
    text = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n"
    url = load(tmp_path, text).config.database_url()
    assert url == "sqlite:////var/lib/registry/dockyard.db"


def test_database_url_relative_rootdirectory_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {}).config
    assert config.storage.local_root == "./data"
    expected = "sqlite:///" + os.path.join(os.path.abspath("data"), "dockyard.db")
    assert config.database_url() == expected
    assert config.database_url().startswith("sqlite:////")


def test_database_url_inmemory(tmp_path: Path) -> None:
    assert load(tmp_path, MINIMAL).config.database_url() == "sqlite://"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db/dockyard", "postgresql+asyncpg://u:p@db/dockyard"),
        ("postgres://db/dockyard", "postgresql+asyncpg://db/dockyard"),
        ("sqlite:////data/d.db", "sqlite:////data/d.db"),
        ("sqlite+aiosqlite:////data/d.db", "sqlite:////data/d.db"),
        ("sqlite+pysqlite:////data/d.db", "sqlite+pysqlite:////data/d.db"),
        ("postgresql+asyncpg://db/x", "postgresql+asyncpg://db/x"),
        ("  ", None),
    ],
)
def test_database_url_driver_names(tmp_path: Path, url: str, expected: str | None) -> None:
    config = load(tmp_path, MINIMAL + f"database:\n  url: '{url}'\n").config
    assert config.database.url == expected


def test_worker_count() -> None:
    assert Config().worker_count() == 1  # the model's default storage is inmemory
    fs = StorageConfig(driver="filesystem")
    assert Config(storage=fs).worker_count() == (os.cpu_count() or 1)
    assert Config(storage=fs, serve={"workers": 3}).worker_count() == 3  # type: ignore[arg-type]


# ---- render_effective --------------------------------------------------------------------------


def test_render_effective_masks_secrets(tmp_path: Path) -> None:
    text = REGISTRY2_SAMPLE.replace("  addr: :5000\n", "  addr: :5000\n  secret: hunter2\n")
    text += "database:\n  url: postgresql+asyncpg://dock:pw0rd@db:5432/dockyard\n"
    rendered = render_effective(load(tmp_path, text).config)
    assert "hunter2" not in rendered
    assert "pw0rd" not in rendered
    data = yaml.safe_load(rendered)
    assert data["http"]["secret"] == "***"
    assert data["database"]["url"] == "postgresql+asyncpg://dock:***@db:5432/dockyard"


def test_render_effective_layout(tmp_path: Path) -> None:
    rendered = render_effective(load(tmp_path, REGISTRY2_SAMPLE).config)
    data = yaml.safe_load(rendered)
    assert data["version"] == "0.1"
    assert data["storage"]["filesystem"] == {
        "rootdirectory": "/var/lib/registry",
        "cacheuploads": False,
    }
    assert "driver" not in data["storage"]
    assert data["storage"]["maintenance"]["uploadpurging"]["age"] == "168h"
    assert data["http"]["secret"] is None
    assert data["http"]["headers"] == {"X-Content-Type-Options": ["nosniff"]}
    assert (
        yaml.safe_load(render_effective(load(tmp_path, MINIMAL).config))["storage"]["inmemory"]
        == {}
    )


def test_render_effective_loads_back_to_the_same_config(tmp_path: Path) -> None:
    text = REGISTRY2_SAMPLE + "  draintimeout: 1m30s\n  prefix: /r/\nlog:\n  level: warn\n"
    rendered_and_loaded(tmp_path, load(tmp_path, text).config)


# ---- docs cannot drift -------------------------------------------------------------------------


def _core(annotation: object) -> object:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        if model is StorageConfig and name == "driver":
            for driver in driver_names():
                keys += [f"storage.{driver}"]
                keys += _model_keys(parameters_model(driver), f"storage.{driver}.")
            continue
        if model is StorageConfig and name == "parameters":
            continue
        dotted = prefix + name
        core = _core(field.annotation)
        if isinstance(core, type) and issubclass(core, BaseModel):
            keys += _model_keys(core, dotted + ".")
        else:
            keys.append(dotted)
    return keys


def test_every_key_is_documented() -> None:
    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    keys = _model_keys(Config)
    assert "storage.filesystem.rootdirectory" in keys
    assert "database.url" in keys
    keys += [*REFUSED_KEYS, *UNSUPPORTED_KEYS, *DEPRECATED_KEYS]
    keys += [f"storage.{name}" for name in NOT_IMPLEMENTED]
    missing = [key for key in keys if f"`{key}`" not in docs]
    assert missing == []
