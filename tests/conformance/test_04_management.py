"""Port of ``conformance/04_management_test.go`` (v1.1.1): the Content Management workflow.

Deleting a tag, then the manifest by digest, then blobs, checking that each deletion is
visible. Upstream allows registries that refuse deletes (400 ``UNSUPPORTED`` / 405).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from .conftest import (
    SUCCESS,
    TEST_TAG,
    OciClient,
    Response,
    TestData,
    expect,
    expect_status,
    push_blob,
    put_manifest,
    skip_unless,
)

pytestmark = pytest.mark.conformance


@dataclass
class ManagementState:
    tag_to_delete: str = ""
    num_tags: int = 0
    blob_delete_allowed: bool = True


@pytest.fixture(scope="module")
def state() -> ManagementState:
    return ManagementState()


def _count_tags(resp: Response) -> int:
    """Upstream unmarshals the body into ``{name, tags}`` and requires that to succeed."""
    try:
        doc = json.loads(resp.body)
    except ValueError:
        raise AssertionError(f"tag list is not JSON\n{resp.trace()}") from None
    expect(isinstance(doc, dict), "tag list is not a JSON object", resp)
    tags = doc.get("tags") or []
    expect(isinstance(tags, list), "tags is not a list", resp)
    return len(tags)


# --------------------------------------------------------------------------- Setup


def test_setup_populate_registry_with_test_config_blob(oci: OciClient, data: TestData) -> None:
    expect_status(push_blob(oci, data.configs[3]), SUCCESS)


def test_setup_populate_registry_with_test_layer(oci: OciClient, data: TestData) -> None:
    expect_status(push_blob(oci, data.layer), SUCCESS)


def test_setup_populate_registry_with_test_tag(
    oci: OciClient, data: TestData, state: ManagementState
) -> None:
    state.tag_to_delete = TEST_TAG
    expect_status(put_manifest(oci, state.tag_to_delete, data.manifests[3]), SUCCESS)


def test_setup_count_tags_before_deleting(oci: OciClient, state: ManagementState) -> None:
    resp = oci.request("GET", "/v2/<name>/tags/list")
    expect_status(resp, 200)
    state.num_tags = _count_tags(resp)


# --------------------------------------------------------------------------- Manifest delete


def test_delete_manifest_by_tag_is_202_unless_disallowed(
    oci: OciClient, state: ManagementState
) -> None:
    resp = oci.request("DELETE", "/v2/<name>/manifests/<reference>", reference=state.tag_to_delete)
    expect_status(resp, 400, 202, 405)
    if resp.status == 400:
        code = resp.errors()[0].get("code")
        expect(code == "UNSUPPORTED", f"a 400 must say UNSUPPORTED, not {code}", resp)


def test_delete_manifest_by_digest_is_202_unless_already_deleted(
    oci: OciClient, data: TestData
) -> None:
    resp = oci.request("DELETE", "/v2/<name>/manifests/<digest>", digest=data.manifests[3].digest)
    expect_status(resp, 202, 404)


def test_get_deleted_manifest_is_404_unless_delete_disallowed(
    oci: OciClient, data: TestData
) -> None:
    resp = oci.request("GET", "/v2/<name>/manifests/<digest>", digest=data.manifests[3].digest)
    expect_status(resp, 404, 200)


def test_tags_list_reflects_manifest_deletion(oci: OciClient, state: ManagementState) -> None:
    resp = oci.request("GET", "/v2/<name>/tags/list")
    expect_status(resp, 200)
    count = _count_tags(resp)
    expect(count < state.num_tags, f"{count} tags, expected fewer than {state.num_tags}", resp)


# --------------------------------------------------------------------------- Blob delete


def test_delete_blob_is_202(oci: OciClient, data: TestData, state: ManagementState) -> None:
    resp = oci.request("DELETE", "/v2/<name>/blobs/<digest>", digest=data.configs[3].digest)
    expect_status(resp, 202, 404, 405)
    resp = oci.request("DELETE", "/v2/<name>/blobs/<digest>", digest=data.layer.digest)
    expect_status(resp, 202, 404, 405)
    if resp.status == 405:
        state.blob_delete_allowed = False


def test_get_deleted_blob_is_404(oci: OciClient, data: TestData, state: ManagementState) -> None:
    skip_unless(state.blob_delete_allowed)
    resp = oci.request("GET", "/v2/<name>/blobs/<digest>", digest=data.configs[3].digest)
    expect_status(resp, 404)
