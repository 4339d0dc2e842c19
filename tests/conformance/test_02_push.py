"""Port of ``conformance/02_push_test.go`` (v1.1.1): the Push workflow.

Streamed, monolithic and chunked blob uploads, cross-repository mounts (including the
automatic mount, ``OCI_AUTOMATIC_CROSSMOUNT``), manifest uploads, teardown. The specs run in
file order and hand responses to each other through ``state`` (upstream: ``lastResponse``
and ``prevResponse``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from .conftest import (
    EMPTY_LAYER_TAG,
    MANIFEST_V1,
    NONEXISTENT_MANIFEST,
    OCTET_STREAM,
    SETTINGS,
    SUCCESS,
    OciClient,
    Response,
    SuiteSettings,
    TestData,
    expect,
    expect_status,
    put_manifest,
    skip_unless,
    warn,
)

pytestmark = pytest.mark.conformance


@dataclass
class PushState:
    last: Response | None = None
    prev: Response | None = None
    empty_layer_manifest_ref: str = ""


@pytest.fixture(scope="module")
def state() -> PushState:
    return PushState()


def _last(state: PushState) -> Response:
    expect(state.last is not None, "no response from the previous spec")
    assert state.last is not None
    return state.last


def _prev(state: PushState) -> Response:
    expect(state.prev is not None, "no response from the earlier spec")
    assert state.prev is not None
    return state.prev


# --------------------------------------------------------------------------- Blob Upload Streamed


def test_streamed_patch_with_blob_in_body_is_202(
    oci: OciClient, data: TestData, state: PushState
) -> None:
    resp = oci.request("POST", "/v2/<name>/blobs/uploads/")
    expect(resp.header("Location") != "", "POST gave no Location", resp)
    resp = oci.request(
        "PATCH",
        resp.relative_location(),
        headers={"Content-Type": OCTET_STREAM},
        body=data.blob_a.content,
    )
    expect_status(resp, 202)
    state.last = resp


def test_streamed_put_to_session_with_digest_is_201(
    oci: OciClient, data: TestData, state: PushState
) -> None:
    last = _last(state)
    resp = oci.request(
        "PUT",
        last.relative_location(),
        query={"digest": data.blob_a.digest},
        headers={"Content-Type": OCTET_STREAM, "Content-Length": data.blob_a.length},
    )
    expect_status(resp, 201)
    expect(resp.header("Location") != "", "no Location", resp)


# --------------------------------------------------------------------------- Blob Upload Monolithic


def test_monolithic_get_nonexistent_blob_is_404(oci: OciClient, data: TestData) -> None:
    resp = oci.request("GET", "/v2/<name>/blobs/<digest>", digest=data.dummy_digest)
    expect_status(resp, 404)


def test_monolithic_post_with_digest_and_blob_is_201_or_202(
    oci: OciClient, data: TestData, state: PushState
) -> None:
    config = data.configs[1]
    resp = oci.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        query={"digest": config.digest},
        headers={"Content-Length": config.length, "Content-Type": OCTET_STREAM},
        body=config.content,
    )
    expect(resp.header("Location") != "", "no Location", resp)
    expect_status(resp, 201, 202)
    state.last = resp


def test_monolithic_get_blob_from_prior_request_is_200_or_404(
    oci: OciClient, data: TestData, state: PushState
) -> None:
    last = _last(state)
    resp = oci.request("GET", "/v2/<name>/blobs/<digest>", digest=data.configs[1].digest)
    expect_status(resp, 404 if last.status == 202 else 200)


def test_monolithic_post_yields_session_id(oci: OciClient, state: PushState) -> None:
    resp = oci.request("POST", "/v2/<name>/blobs/uploads/")
    expect_status(resp, 202)
    state.last = resp


def test_monolithic_put_upload_of_blob_is_201(
    oci: OciClient, data: TestData, state: PushState
) -> None:
    config = data.configs[1]
    resp = oci.request(
        "PUT",
        _last(state).relative_location(),
        query={"digest": config.digest},
        headers={"Content-Length": config.length, "Content-Type": OCTET_STREAM},
        body=config.content,
    )
    expect(resp.header("Location") != "", "no Location", resp)
    expect_status(resp, 201)


def test_monolithic_get_existing_blob_is_200(oci: OciClient, data: TestData) -> None:
    resp = oci.request("GET", "/v2/<name>/blobs/<digest>", digest=data.configs[1].digest)
    expect_status(resp, 200)


def test_monolithic_put_upload_of_layer_is_201(oci: OciClient, data: TestData) -> None:
    resp = oci.request("POST", "/v2/<name>/blobs/uploads/")
    resp = oci.request(
        "PUT",
        resp.relative_location(),
        query={"digest": data.layer.digest},
        headers={"Content-Length": data.layer.length, "Content-Type": OCTET_STREAM},
        body=data.layer.content,
    )
    expect(resp.header("Location") != "", "no Location", resp)
    expect_status(resp, 201)


def test_monolithic_get_existing_layer_is_200(oci: OciClient, data: TestData) -> None:
    resp = oci.request("GET", "/v2/<name>/blobs/<digest>", digest=data.layer.digest)
    expect_status(resp, 200)


# --------------------------------------------------------------------------- Blob Upload Chunked


def test_chunked_out_of_order_upload_is_416(oci: OciClient, data: TestData) -> None:
    resp = oci.request("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    expect(resp.header("Location") != "", "no Location", resp)
    # with a minimum chunk size above the first chunk, the blob is rebuilt larger
    if min_size := resp.header("OCI-Chunk-Min-Length"):
        expect(min_size.isdigit(), "OCI-Chunk-Min-Length is not an integer", resp)
        if int(min_size) > len(data.chunked.chunk1):
            data.rebuild_chunked(int(min_size) * 2 - 2)
    chunked = data.chunked
    resp = oci.request(
        "PATCH",
        resp.relative_location(),
        headers={
            "Content-Type": OCTET_STREAM,
            "Content-Length": str(len(chunked.chunk2)),
            "Content-Range": chunked.chunk2_range,
        },
        body=chunked.chunk2,
    )
    expect_status(resp, 416)


def test_chunked_patch_with_first_chunk_is_202(
    oci: OciClient, data: TestData, state: PushState
) -> None:
    chunked = data.chunked
    resp = oci.request("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    expect(resp.header("Location") != "", "no Location", resp)
    state.prev = resp
    resp = oci.request(
        "PATCH",
        resp.relative_location(),
        headers={
            "Content-Type": OCTET_STREAM,
            "Content-Length": str(len(chunked.chunk1)),
            "Content-Range": chunked.chunk1_range,
        },
        body=chunked.chunk1,
    )
    expect_status(resp, 202)
    expect(resp.header("Range") == chunked.chunk1_range, "Range after chunk 1", resp)
    state.last = resp


def test_chunked_retry_previous_chunk_is_416(
    oci: OciClient, data: TestData, state: PushState
) -> None:
    chunked = data.chunked
    resp = oci.request(
        "PATCH",
        _prev(state).relative_location(),
        headers={
            "Content-Type": OCTET_STREAM,
            "Content-Length": str(len(chunked.chunk1)),
            "Content-Range": chunked.chunk1_range,
        },
        body=chunked.chunk1,
    )
    expect_status(resp, 416)


def test_chunked_get_on_stale_upload_is_204_with_range_and_location(
    oci: OciClient, data: TestData, state: PushState
) -> None:
    resp = oci.request("GET", _prev(state).relative_location())
    expect_status(resp, 204)
    expect(resp.header("Location") != "", "no Location", resp)
    expect(resp.header("Range") == data.chunked.chunk1_range, "Range of the upload", resp)
    state.last = resp


def test_chunked_patch_with_second_chunk_is_202(
    oci: OciClient, data: TestData, state: PushState
) -> None:
    chunked = data.chunked
    resp = oci.request(
        "PATCH",
        _last(state).relative_location(),
        headers={
            "Content-Length": str(len(chunked.chunk2)),
            "Content-Range": chunked.chunk2_range,
            "Content-Type": OCTET_STREAM,
        },
        body=chunked.chunk2,
    )
    expect_status(resp, 202)
    expect(resp.header("Location") != "", "no Location", resp)
    state.last = resp


def test_chunked_put_with_digest_is_201(oci: OciClient, data: TestData, state: PushState) -> None:
    resp = oci.request(
        "PUT",
        _last(state).relative_location(),
        query={"digest": data.chunked.blob.digest},
        headers={"Content-Length": "0", "Content-Type": OCTET_STREAM},
    )
    expect_status(resp, 201)
    expect(resp.header("Location") != "", "no Location", resp)


# ------------------------------------------------------------- Cross-Repository Blob Mount


def test_crossmount_without_from_yields_session_id(
    oci: OciClient, data: TestData, suite: SuiteSettings
) -> None:
    resp = oci.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=suite.crossmount_namespace,
        query={"mount": data.dummy_digest},
    )
    expect_status(resp, 202)
    expect(resp.absolute_location() != "", "no Location", resp)


def test_crossmount_post_mount_from_other_repository_is_201_or_202(
    oci: OciClient, data: TestData, suite: SuiteSettings, state: PushState
) -> None:
    resp = oci.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=suite.crossmount_namespace,
        query={"mount": data.blob_a.digest, "from": suite.namespace},
    )
    expect_status(resp, 201, 202)
    state.last = resp


def test_crossmount_get_mounted_digest_in_target_is_200(
    oci: OciClient, data: TestData, suite: SuiteSettings, state: PushState
) -> None:
    last = _last(state)
    skip_unless(last.status == 201)
    expected = f"/v2/{suite.crossmount_namespace}/blobs/{data.blob_a.digest}"
    expect(last.relative_location() == expected, f"mount Location is not {expected}", last)
    resp = oci.request("GET", last.relative_location())
    expect_status(resp, 200)


def test_crossmount_of_nonexistent_blob_yields_session_id(
    suite: SuiteSettings, state: PushState
) -> None:
    last = _last(state)
    skip_unless(last.status == 202)
    prefix = f"/v2/{suite.crossmount_namespace}/blobs/uploads/"
    expect(last.relative_location().startswith(prefix), f"Location not under {prefix}", last)


def test_crossmount_without_from_automatic_enabled_is_201(
    oci: OciClient, data: TestData, suite: SuiteSettings, state: PushState
) -> None:
    skip_unless(suite.run_automatic_crossmount_test)
    skip_unless(_last(state).status == 201)
    skip_unless(suite.automatic_crossmount_enabled)
    resp = oci.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=suite.crossmount_namespace,
        query={"mount": data.blob_a.digest},
    )
    expect_status(resp, 201)


def test_crossmount_without_from_automatic_disabled_is_202(
    oci: OciClient, data: TestData, suite: SuiteSettings, state: PushState
) -> None:
    skip_unless(suite.run_automatic_crossmount_test)
    skip_unless(_last(state).status == 201)
    skip_unless(not suite.automatic_crossmount_enabled)
    resp = oci.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=suite.crossmount_namespace,
        query={"mount": data.blob_a.digest},
    )
    expect_status(resp, 202)


# --------------------------------------------------------------------------- Manifest Upload


def test_manifest_get_nonexistent_is_404(oci: OciClient) -> None:
    resp = oci.request("GET", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST)
    expect_status(resp, 404)


def test_manifest_put_is_accepted(oci: OciClient, data: TestData) -> None:
    for i in range(4):
        resp = put_manifest(oci, f"test{i}", data.manifests[1])
        expect(resp.header("Location") != "", "no Location", resp)
        expect_status(resp, 201)


def test_manifest_put_with_no_layers_is_accepted(
    oci: OciClient, data: TestData, state: PushState
) -> None:
    resp = put_manifest(oci, EMPTY_LAYER_TAG, data.empty_layer_manifest)
    if resp.status == 201:
        state.empty_layer_manifest_ref = resp.header("Location")
        expect(state.empty_layer_manifest_ref != "", "no Location", resp)
    else:
        warn("image manifest with no layers is not supported")


def test_manifest_get_by_digest_is_200(oci: OciClient, data: TestData) -> None:
    resp = oci.request(
        "GET",
        "/v2/<name>/manifests/<digest>",
        digest=data.manifests[1].digest,
        headers={"Accept": MANIFEST_V1},
    )
    expect_status(resp, 200)


# --------------------------------------------------------------------------- Teardown


def _delete_manifests(oci: OciClient, data: TestData, state: PushState) -> None:
    resp = oci.request("DELETE", "/v2/<name>/manifests/<digest>", digest=data.manifests[1].digest)
    expect_status(resp, SUCCESS, 405)
    if state.empty_layer_manifest_ref:
        resp = oci.request(
            "DELETE",
            "/v2/<name>/manifests/<reference>",
            reference=data.empty_layer_manifest.digest,
        )
        expect_status(resp, SUCCESS, 405)


if SETTINGS.delete_manifest_before_blobs:

    def test_teardown_delete_manifests(oci: OciClient, data: TestData, state: PushState) -> None:
        _delete_manifests(oci, data, state)


@pytest.mark.parametrize("which", ["config1", "layer"])
def test_teardown_delete_blob(oci: OciClient, data: TestData, which: str) -> None:
    blob = data.configs[1] if which == "config1" else data.layer
    resp = oci.request("DELETE", "/v2/<name>/blobs/<digest>", digest=blob.digest)
    expect_status(resp, SUCCESS, 404, 405)


if not SETTINGS.delete_manifest_before_blobs:

    def test_teardown_delete_manifests_last(
        oci: OciClient, data: TestData, state: PushState
    ) -> None:
        _delete_manifests(oci, data, state)
