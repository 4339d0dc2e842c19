"""The shipped deployment files: the Kubernetes example (deploy/kubernetes/) parses, hangs
together, and its ConfigMap names only keys that exist (the config loader, strict); the
systemd unit (deploy/systemd/dockyard.service) parses and starts ``dockyard serve``."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from dockyard.cli import main
from dockyard.config import load_config

REPO = Path(__file__).resolve().parents[1]
KUBERNETES = REPO / "deploy" / "kubernetes"
UNIT = REPO / "deploy" / "systemd" / "dockyard.service"


def _manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object of the example, by kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["apiVersion"] and document["metadata"]["name"], path
            assert document["kind"] not in found, f"{path}: a second {document['kind']}"
            found[document["kind"]] = document
    return found


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _environment(container: dict[str, Any], secret: dict[str, Any]) -> dict[str, str]:
    """The container's environment with the Secret's values filled in."""
    environ = {}
    for variable in container.get("env", []):
        reference = variable["valueFrom"]["secretKeyRef"]
        assert reference["name"] == secret["metadata"]["name"]
        environ[variable["name"]] = secret["stringData"][reference["key"]]
    return environ


def _command(argv: list[str]) -> click.Command:
    """The Dockyard command ``argv`` names (``dockyard serve ...``), its options and
    arguments checked by click."""
    assert argv[0].endswith("dockyard")
    context = click.Context(main)
    command: click.Command | None = main
    rest = list(argv[1:])
    while isinstance(command, click.Group):
        command = command.get_command(context, rest.pop(0))
        assert command is not None, argv
    assert command is not None
    command.make_context(str(command.name), rest)  # raises on an unknown option
    return command


def test_the_kubernetes_example_has_every_part() -> None:
    assert set(_manifests()) >= {"ConfigMap", "Secret", "Deployment", "Service", "Job"}


def test_the_configmap_names_only_keys_that_exist(tmp_path: Path) -> None:
    manifests = _manifests()
    deployment, config_map = manifests["Deployment"], manifests["ConfigMap"]
    container = _container(deployment)
    assert container["command"][:2] == ["dockyard", "serve"]
    config_path = Path(container["command"][-1])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    (config_volume,) = [n for n, v in volumes.items() if "configMap" in v]
    assert volumes[config_volume]["configMap"]["name"] == config_map["metadata"]["name"]
    assert Path(mounts[config_volume]) == config_path.parent
    written = tmp_path / config_path.name
    written.write_text(config_map["data"][config_path.name])
    environ = _environment(container, manifests["Secret"])
    loaded = load_config(written, environ, strict=True)  # any warning is an error
    assert loaded.config.database.url and loaded.config.database.url.startswith("postgresql")
    assert loaded.config.http.secret == manifests["Secret"]["stringData"]["http-secret"]
    assert loaded.config.storage.local_root == mounts["store"]


def test_the_deployment_probes_and_the_service_point_at_the_registry() -> None:
    manifests = _manifests()
    deployment, service = manifests["Deployment"], manifests["Service"]
    pod = deployment["spec"]["template"]
    assert pod["spec"]["enableServiceLinks"] is False  # no REGISTRY_* variables from Services
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    container = _container(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in ports
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/v2/" and check["port"] in ports
    _command(container["command"])


def test_the_migration_job_runs_db_migrate() -> None:
    job = _manifests()["Job"]
    command = _container(job)["command"]
    assert command[:3] == ["dockyard", "db", "migrate"]
    _command(command)


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_systemd_unit_parses_and_starts_dockyard_serve() -> None:
    unit = _unit()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0] == "/opt/dockyard/.venv/bin/dockyard"
    assert argv[1] == "serve" and argv[-1] == "/etc/dockyard/config.yml"
    assert _command(argv).name == "serve"
    check = shlex.split(unit["Service"]["ExecStartPre"])
    assert _command(check).name == "check"
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("key", ["User", "Group", "KillSignal", "TimeoutStopSec"])
def test_the_systemd_unit_sets(key: str) -> None:
    assert _unit()["Service"][key]
