"""Port of ``conformance/01_pull_test.go`` (v1.1.1): the Pull workflow.

Every test is one upstream ``Specify`` and they run in file order, sharing state through
the module's ``state`` fixture, as the Ginkgo specs share closure variables.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from .conftest import (
    ERROR_CODES,
    MANIFEST_V1,
    NONEXISTENT_MANIFEST,
    SETTINGS,
    SUCCESS,
    TEST_TAG,
    OciClient,
    TestData,
    expect,
    expect_status,
    push_blob,
    put_manifest,
)

pytestmark = pytest.mark.conformance


@dataclass
class PullState:
    tag: str = ""


@pytest.fixture(scope="module")
def state() -> PullState:
    return PullState()


# --------------------------------------------------------------------------- Setup


def test_setup_populate_registry_with_config0_blob(oci: OciClient, data: TestData) -> None:
    expect_status(push_blob(oci, data.configs[0]), SUCCESS)


def test_setup_populate_registry_with_config1_blob(oci: OciClient, data: TestData) -> None:
    expect_status(push_blob(oci, data.configs[1]), SUCCESS)


def test_setup_populate_registry_with_test_layer(oci: OciClient, data: TestData) -> None:
    expect_status(push_blob(oci, data.layer), SUCCESS)


def test_setup_populate_registry_with_manifest0_by_tag(
    oci: OciClient, data: TestData, state: PullState
) -> None:
    state.tag = TEST_TAG
    expect_status(put_manifest(oci, state.tag, data.manifests[0]), SUCCESS)


def test_setup_populate_registry_with_manifest1_by_digest(oci: OciClient, data: TestData) -> None:
    expect_status(put_manifest(oci, data.manifests[1].digest, data.manifests[1]), SUCCESS)


# --------------------------------------------------------------------------- Pull blobs


def test_head_nonexistent_blob_is_404(oci: OciClient, data: TestData) -> None:
    resp = oci.request("HEAD", "/v2/<name>/blobs/<digest>", digest=data.dummy_digest)
    expect_status(resp, 404)


def test_head_existing_blob_is_200(oci: OciClient, data: TestData) -> None:
    resp = oci.request("HEAD", "/v2/<name>/blobs/<digest>", digest=data.configs[0].digest)
    expect_status(resp, 200)
    if h := resp.header("Docker-Content-Digest"):
        expect(h == data.configs[0].digest, "Docker-Content-Digest mismatch", resp)


def test_get_nonexistent_blob_is_404(oci: OciClient, data: TestData) -> None:
    resp = oci.request("GET", "/v2/<name>/blobs/<digest>", digest=data.dummy_digest)
    expect_status(resp, 404)


def test_get_existing_blob_is_200(oci: OciClient, data: TestData) -> None:
    resp = oci.request("GET", "/v2/<name>/blobs/<digest>", digest=data.configs[0].digest)
    expect_status(resp, 200)


# --------------------------------------------------------------------------- Pull manifests

ACCEPT_MANIFEST = {"Accept": MANIFEST_V1}


def test_head_nonexistent_manifest_is_404(oci: OciClient) -> None:
    resp = oci.request("HEAD", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST)
    expect_status(resp, 404)


@pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
def test_head_manifest_by_digest_is_200(oci: OciClient, data: TestData, index: int) -> None:
    digest = data.manifests[index].digest
    resp = oci.request(
        "HEAD", "/v2/<name>/manifests/<digest>", digest=digest, headers=ACCEPT_MANIFEST
    )
    expect_status(resp, 200)
    if h := resp.header("Docker-Content-Digest"):
        expect(h == digest, "Docker-Content-Digest mismatch", resp)


def test_head_manifest_by_tag_is_200(oci: OciClient, data: TestData, state: PullState) -> None:
    expect(state.tag != "", "no tag from setup")
    resp = oci.request(
        "HEAD", "/v2/<name>/manifests/<reference>", reference=state.tag, headers=ACCEPT_MANIFEST
    )
    expect_status(resp, 200)
    if h := resp.header("Docker-Content-Digest"):
        expect(h == data.manifests[0].digest, "Docker-Content-Digest mismatch", resp)


def test_get_nonexistent_manifest_is_404(oci: OciClient) -> None:
    resp = oci.request("GET", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST)
    expect_status(resp, 404)


@pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
def test_get_manifest_by_digest_is_200(oci: OciClient, data: TestData, index: int) -> None:
    resp = oci.request(
        "GET",
        "/v2/<name>/manifests/<digest>",
        digest=data.manifests[index].digest,
        headers=ACCEPT_MANIFEST,
    )
    expect_status(resp, 200)


def test_get_manifest_by_tag_is_200(oci: OciClient, state: PullState) -> None:
    expect(state.tag != "", "no tag from setup")
    resp = oci.request(
        "GET", "/v2/<name>/manifests/<reference>", reference=state.tag, headers=ACCEPT_MANIFEST
    )
    expect_status(resp, 200)


# --------------------------------------------------------------------------- Error codes


def test_400_response_body_has_oci_error_json(oci: OciClient, data: TestData) -> None:
    resp = oci.request(
        "GET",
        "/v2/<name>/manifests/<reference>",
        reference="sha256:totallywrong",
        headers={"Content-Type": MANIFEST_V1},
        body=data.invalid_manifest_content,
    )
    expect_status(resp, 400, 404)
    if resp.status == 400:
        errors = resp.errors()
        expect(errors[0].get("code") in ERROR_CODES, "first error code is not a spec code", resp)


# --------------------------------------------------------------------------- Teardown

DELETE_MANIFEST_OK = (SUCCESS, 405)
DELETE_BLOB_OK = (SUCCESS, 404, 405)


def _delete_manifest(oci: OciClient, digest: str) -> None:
    resp = oci.request("DELETE", "/v2/<name>/manifests/<digest>", digest=digest)
    expect_status(resp, *DELETE_MANIFEST_OK)


# Upstream builds the teardown specs in one order or the other (OCI_DELETE_MANIFEST_BEFORE_BLOBS)
if SETTINGS.delete_manifest_before_blobs:

    @pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
    def test_teardown_delete_manifest(oci: OciClient, data: TestData, index: int) -> None:
        _delete_manifest(oci, data.manifests[index].digest)


@pytest.mark.parametrize("which", ["config0", "config1", "layer"])
def test_teardown_delete_blob(oci: OciClient, data: TestData, which: str) -> None:
    blob = {"config0": data.configs[0], "config1": data.configs[1], "layer": data.layer}[which]
    resp = oci.request("DELETE", "/v2/<name>/blobs/<digest>", digest=blob.digest)
    expect_status(resp, *DELETE_BLOB_OK)


if not SETTINGS.delete_manifest_before_blobs:

    @pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
    def test_teardown_delete_manifest_last(oci: OciClient, data: TestData, index: int) -> None:
        _delete_manifest(oci, data.manifests[index].digest)
