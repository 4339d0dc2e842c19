"""``storage.s3`` and ``storage.redirect`` as a configuration file and the environment give
them: Distribution's keys and defaults, one warning per key Dockyard does not act on, the
secrets masked, and no SDK imported to check a file."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from dockyard.config import ConfigError, LoadedConfig, load_config, render_effective
from dockyard.storage.s3 import MiB, S3Parameters
from dockyard.storage.s3_bucket import endpoint_url

S3 = "version: 0.1\nstorage:\n  s3:\n    bucket: images\n    region: eu-west-1\n"


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> LoadedConfig:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return load_config(path, environ=env or {})


def test_distributions_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path, S3)
    assert loaded.warnings == []
    storage = loaded.config.storage
    assert storage.driver == "s3"
    parameters = storage.parameters
    assert isinstance(parameters, S3Parameters)
    assert (parameters.bucket, parameters.region) == ("images", "eu-west-1")
    assert parameters.secure and parameters.v4auth and not parameters.skipverify
    assert parameters.chunksize == 10 * MiB
    assert parameters.multipartcopychunksize == 32 * MiB
    assert parameters.multipartcopythresholdsize == 32 * MiB
    assert parameters.multipartcopymaxconcurrency == 100
    assert (parameters.storageclass, parameters.objectacl) == ("STANDARD", "private")
    assert not parameters.encrypt and parameters.rootdirectory == ""
    assert parameters.streamparts
    assert not parameters.path_style  # virtual-hosted on AWS itself
    assert storage.redirect.expiry_or_none == timedelta(minutes=20)


def test_every_key_from_file_and_environment(tmp_path: Path) -> None:
    text = S3 + (
        "    accesskey: AKIA\n    secretkey: hush-1\n    sessiontoken: hush-2\n"
        "    regionendpoint: minio.local:9000\n    secure: false\n    skipverify: true\n"
        "    v4auth: false\n    chunksize: 5242880\n    multipartcopychunksize: 6291456\n"
        "    multipartcopymaxconcurrency: 3\n    multipartcopythresholdsize: 0\n"
        "    encrypt: true\n    keyid: kms-key\n    storageclass: reduced_redundancy\n"
        "    objectacl: bucket-owner-full-control\n    rootdirectory: /registry/\n"
        "    useragent: mirror\n    streamparts: false\n"
        "  redirect:\n    disable: true\n    expiry: 5m\n"
    )
    loaded = load(tmp_path, text, {"REGISTRY_STORAGE_S3_CHUNKSIZE": "8388608"})
    assert loaded.warnings == []
    parameters = loaded.config.storage.parameters
    assert isinstance(parameters, S3Parameters)
    assert parameters.chunksize == 8 * MiB  # the environment wins
    assert parameters.path_style  # an endpoint of its own: path style unless told
    assert endpoint_url(parameters) == "http://minio.local:9000"
    assert parameters.rootdirectory == "registry"
    assert parameters.storageclass == "REDUCED_REDUNDANCY"
    assert not parameters.streamparts
    assert loaded.config.storage.redirect.disable
    assert loaded.config.storage.redirect.expiry_or_none is None
    rendered = render_effective(loaded.config)
    assert "hush" not in rendered
    assert "secretkey: '***'" in rendered and "accesskey: AKIA" in rendered


def test_keys_not_acted_on_get_one_warning_each(tmp_path: Path) -> None:
    text = S3 + "    accelerate: true\n    usedualstack: true\n    chunksise: 5\n"
    warnings = load(tmp_path, text).warnings
    assert len(warnings) == 3
    assert any(w.startswith("storage.s3.accelerate: not supported yet") for w in warnings)
    assert any(w.startswith("storage.s3.usedualstack: not supported yet") for w in warnings)
    assert any("storage.s3.chunksise: unknown key" in w and "chunksize" in w for w in warnings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (S3 + "    multipartcopymaxconcurrency: 0\n", "multipartcopymaxconcurrency"),
        (S3 + "    chunksize: 6442450944\n", "storage.s3.chunksize"),
        (S3 + "    storageclass: COLD\n", "storage.s3.storageclass"),
        (S3 + "    rootdirectory: /a/../b\n", "storage.s3.rootdirectory"),
        (S3 + "  redirect:\n    expiry: 0s\n", "storage.redirect.expiry"),
        (S3 + "  redirect:\n    expiry: 200h\n", "storage.redirect.expiry"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load(tmp_path, text)


def test_checking_a_file_imports_no_sdk(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(S3)
    code = (
        "import sys, pathlib, dockyard.config\n"
        f"dockyard.config.load_config(pathlib.Path({str(config)!r}))\n"
        "assert 'aiobotocore' not in sys.modules and 'botocore' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_preload_leaves_the_s3_model_in_the_shared_session(tmp_path: Path) -> None:
    """What the parent loads before forking is what every worker's client is made from."""
    from dockyard.storage import s3_bucket

    load(tmp_path, S3).config.storage.parameters.preload()
    loader = s3_bucket.shared_session().get_component("data_loader")
    model = loader.load_service_model("s3", "service-2")
    assert model["metadata"]["endpointPrefix"] == "s3"
    assert loader.load_service_model("s3", "service-2") is model  # cached, not parsed again
