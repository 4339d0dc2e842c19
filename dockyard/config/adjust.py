"""The fix-ups Distribution makes to a parsed configuration, each with a warning.

``logstash`` becomes ``json``, a too-small ``catalog.maxentries`` is raised, old TLS
versions become ``tls1.2``, and the deprecated ``loglevel`` and ``validation.enabled`` are
honoured.
"""

from __future__ import annotations

from typing import Any

from dockyard.config.errors import ConfigError
from dockyard.config.state import LoadState
from dockyard.config.tree import describe, has_content, plain, scalar_text
from dockyard.config.yaml_loader import Scalar


def _adjust_tls(loading: LoadState, tls: dict[str, Any]) -> None:
    letsencrypt = tls.get("letsencrypt")
    if isinstance(letsencrypt, dict) and not has_content(letsencrypt.get("cachefile")):
        # Distribution uses Let's Encrypt only when a cache file is given.
        if has_content(letsencrypt):
            loading.warn("http.tls.letsencrypt: without cachefile it is off, ignored")
        del tls["letsencrypt"]
    if not has_content(tls.get("certificate")) and not has_content(tls.get("letsencrypt")):
        if has_content(tls):
            loading.warn("http.tls: asks for nothing Distribution would act on, ignored")
        tls.clear()
        return
    minimum = tls.get("minimumtls")
    if isinstance(minimum, str) and minimum.strip().lower() in ("tls1.0", "tls1.1"):
        loading.warn(f"http.tls.minimumtls: {minimum.strip().lower()} is not offered, using tls1.2")
        tls["minimumtls"] = "tls1.2"
    elif (
        isinstance(minimum, str)
        and minimum.strip().lower() == "tls1.3"
        and has_content(tls.get("ciphersuites"))
    ):
        loading.warn(
            "http.tls.ciphersuites: cipher suites cannot be chosen for TLS 1.3, "
            "ignored with minimumtls tls1.3"
        )


def adjust(loading: LoadState, data: dict[str, Any]) -> None:
    """Apply the fix-ups Distribution makes after parsing, with warnings."""
    log = data.setdefault("log", {})
    if "loglevel" in loading.deprecated and "level" not in log:
        level = loading.deprecated["loglevel"]
        log["level"] = scalar_text(level) if isinstance(level, str | Scalar) else plain(level)
    formatter = log.get("formatter")
    if isinstance(formatter, str) and formatter.strip().lower() == "logstash":
        loading.warn("log.formatter: logstash is not supported, using json")
        log["formatter"] = "json"

    validation = data.setdefault("validation", {})
    if "validation.enabled" in loading.deprecated:
        enabled = plain(loading.deprecated["validation.enabled"])
        if enabled is not None and not isinstance(enabled, bool):
            raise ConfigError(
                f"validation.enabled: expected true or false, got {describe(enabled)}"
            )
        if enabled:  # Distribution: enabled: true wins over disabled
            validation["disabled"] = False
    if validation.get("disabled") is True:
        loading.warn(
            "validation.disabled: manifest URL validation is off; "
            "pushed manifests may reference any foreign URL"
        )

    maxentries = data.get("catalog", {}).get("maxentries")
    if isinstance(maxentries, int) and not isinstance(maxentries, bool) and maxentries <= 0:
        loading.warn(f"catalog.maxentries: {maxentries} is not positive, using 1000")
        data["catalog"]["maxentries"] = 1000

    tls = data.get("http", {}).get("tls")
    if isinstance(tls, dict):
        _adjust_tls(loading, tls)
