"""``storage.gcs`` and ``storage.azure`` read Distribution's keys with its defaults, take
``REGISTRY_*`` overrides, build their drivers, and never print a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dockyard.config import LoadedConfig, load_config
from dockyard.config.render import render_effective
from dockyard.storage.azure import AzureParameters
from dockyard.storage.azure_driver import AzureDriver
from dockyard.storage.factory import create_driver
from dockyard.storage.gcs import GcsParameters
from dockyard.storage.gcs_driver import GcsDriver
from tests.fakegcs import service_account_info

DATABASE = "database:\n  url: sqlite:////tmp/dockyard-config-test.db\n"


def load(tmp_path: Path, storage: str, env: dict[str, str] | None = None) -> LoadedConfig:
    path = tmp_path / "config.yml"
    path.write_text(f"version: 0.1\nstorage:\n{storage}{DATABASE}")
    return load_config(path, env or {})


def test_azure_keys_and_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path, "  azure: {accountname: acct, accountkey: c2VjcmV0, container: reg}\n")
    parameters = loaded.config.storage.parameters
    assert isinstance(parameters, AzureParameters)
    assert (parameters.realm, parameters.rootdirectory) == ("core.windows.net", "")
    assert parameters.service_url() == "https://acct.blob.core.windows.net"
    china = parameters.model_copy(update={"realm": "core.chinacloudapi.cn"})
    assert china.service_url() == "https://acct.blob.core.chinacloudapi.cn"
    local = parameters.model_copy(update={"serviceurl": "http://127.0.0.1:1/acct/"})
    assert local.service_url() == "http://127.0.0.1:1/acct"
    driver = create_driver("azure", local)
    assert isinstance(driver, AzureDriver) and driver.service_url == "http://127.0.0.1:1/acct"
    rendered = render_effective(loaded.config)
    assert "c2VjcmV0" not in rendered and "accountkey: '***'" in rendered


def test_gcs_keys_defaults_and_overrides(tmp_path: Path) -> None:
    env = {
        "REGISTRY_STORAGE_GCS_ROOTDIRECTORY": "/reg/",
        "REGISTRY_STORAGE_GCS_CHUNKSIZE": "524288",
    }
    loaded = load(tmp_path, "  gcs: {bucket: b}\n", env)
    parameters = loaded.config.storage.parameters
    assert isinstance(parameters, GcsParameters)
    assert (parameters.rootdirectory, parameters.chunksize) == ("/reg/", 524288)
    assert GcsParameters(bucket="b").chunksize == 5 * 1024 * 1024  # Distribution's
    assert parameters.service_account() is None


def test_gcs_key_from_a_file_or_inline_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = service_account_info()
    keyfile = tmp_path / "key.json"
    keyfile.write_text(json.dumps(info))
    loaded = load(tmp_path, f"  gcs: {{bucket: b, keyfile: {keyfile}}}\n")
    parameters = loaded.config.storage.parameters
    assert isinstance(parameters, GcsParameters)
    assert parameters.service_account() == info
    inline = GcsParameters(bucket="b", credentials=info)
    assert inline.service_account() == info
    dumped = json.dumps(inline.model_dump(mode="json"))
    assert "PRIVATE KEY" not in dumped and info["client_email"] in dumped
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")
    driver = create_driver("gcs", inline)
    assert isinstance(driver, GcsDriver) and driver.endpoint == "http://127.0.0.1:4443"
    with pytest.raises(ValueError, match="keyfile or credentials"):
        GcsParameters(bucket="b", keyfile=str(keyfile), credentials=info)


def test_an_object_store_keeps_its_metadata_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As with S3: without database.url, a SQLite file in the working directory (one host),
    never an in-memory database that would lose everything at exit."""
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nstorage:\n  gcs: {bucket: b}\n")
    monkeypatch.chdir(tmp_path)
    url = load_config(path, {}).config.database_url()
    assert url == f"sqlite:///{tmp_path / 'dockyard.db'}"


def test_the_storage_page_examples_pass_config_check(tmp_path: Path) -> None:
    from tests.live.test_documented_configs import config_check, yaml_examples

    examples = yaml_examples("docs/storage.md")
    assert {"gcs", "azure"} <= {
        name for e in examples for name in yaml.safe_load(e.text)["storage"]
    }
    for number, example in enumerate(examples):
        assert example.check_only, f"{example.name}: it names a real bucket"
        config = tmp_path / f"example-{number}.yml"
        config.write_text(example.text)
        checked = config_check(config, {})
        assert checked.returncode == 0, f"{example.name}: {checked.stderr}"


def test_gcs_without_any_credentials_says_so(tmp_path: Path) -> None:
    """No key and no Application Default Credentials: one clear error. (The metadata
    server google-auth would probe is pointed at a closed port on 127.0.0.1.)"""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GOOGLE_", "CLOUDSDK_", "STORAGE_EMULATOR"))
    }
    closed = "127.0.0.1:9"
    environment.update(HOME=str(tmp_path), GCE_METADATA_HOST=closed, GCE_METADATA_IP=closed)
    code = (
        "from dockyard.storage.gcs_driver import GcsDriver\n"
        "from dockyard.storage.driver import StorageError\n"
        "try:\n    GcsDriver(bucket='b')\n"
        "except StorageError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.startswith("storage.gcs: no credentials: give keyfile or credentials")
