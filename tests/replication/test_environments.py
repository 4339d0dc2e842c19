"""The multi-environment test (issue 12, item 4), with real parts started here:

* dev: a Dockyard with a ``replication`` rule to prod;
* test: a Dockyard mirroring dev (``proxy.remoteurl``);
* prod: a Distribution 2.8.2 that dev replicates into.

An image pushed to dev with skopeo reaches prod by replication and pulls byte-identical
there; ctr, as a cluster would, pulls it through the test mirror, and again once dev is
stopped (the mirror serves what it cached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.clients import Ctr, Skopeo
from tests.e2e.images import build_image
from tests.e2e.server import RegistryServer
from tests.replication.helpers import (
    assert_same_image,
    dockyard_with,
    eventually,
    has_manifest,
    replication_section,
    serving,
)

pytestmark = pytest.mark.e2e


def test_dev_to_prod_by_replication_and_test_mirrors_dev(
    tmp_path: Path, prod: RegistryServer, skopeo: Skopeo, ctr: Ctr, repo: str
) -> None:
    rule = f"    - name: dev-to-prod\n      destination: prod\n      repositories: ['{repo}/*']\n"
    dev = dockyard_with(tmp_path / "dev", replication_section({"prod": prod.url}, rule))
    with serving(dev):
        test = dockyard_with(tmp_path / "test", f"proxy:\n  remoteurl: {dev.url}\n")
        with serving(test):
            app = f"{repo}/app"
            built = build_image(tmp_path / "built", "1.0", data_size=256 * 1024)
            skopeo.copy(built.ref, dev.docker_ref(app, "1.0"))

            eventually(lambda: has_manifest(prod, app, "1.0"), "the image in prod")
            assert skopeo.inspect_raw(prod.docker_ref(app, "1.0")) == built.manifest_bytes
            assert_same_image(skopeo, dev, prod, app, "1.0")
            skopeo.copy(prod.docker_ref(app, "1.0"), f"oci:{tmp_path / 'from-prod'}:1.0")

            ref = test.ref(app, "1.0")
            pull = ("images", "pull", "--plain-http", "--snapshotter", "native", ref)
            ctr(*pull)
            assert ctr.image_digest(ref) == built.manifest_digest
            for layer in built.layers:
                assert ctr("content", "get", layer.digest, text=False).stdout == layer.blob
            ctr("images", "rm", "--sync", ref)

            dev.stop()
            ctr(*pull)  # dev is down: the mirror serves what it cached
            assert ctr.image_digest(ref) == built.manifest_digest
            for layer in built.layers:
                assert ctr("content", "get", layer.digest, text=False).stdout == layer.blob
            ctr("images", "rm", "--sync", ref)
            assert skopeo.inspect_raw(prod.docker_ref(app, "1.0")) == built.manifest_bytes
