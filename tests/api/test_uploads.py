"""Blob uploads over HTTP: monolithic, chunked, mount, status, cancel, and bad input."""

from __future__ import annotations

import io
import os

from dockyard.registry.service import Registry
from dockyard.storage import paths
from dockyard.storage.driver import WriterState
from dockyard.storage.inmemory import InMemoryDriver
from tests.api.helpers import Client, digest_of, error_code, path_of, push_blob

NAME = "team/app"


async def start(client: Client, name: str = NAME) -> str:
    response = await client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status == 202
    assert response.headers["Range"] == "0-0"
    assert response.headers["Docker-Upload-UUID"]
    return path_of(response.headers["Location"])


async def test_monolithic_post_with_digest(client: Client) -> None:
    data = os.urandom(5000)
    digest = await push_blob(client, NAME, data)
    response = await client.get(f"/v2/{NAME}/blobs/{digest}")
    assert response.status == 200
    assert await response.read() == data
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Length"] == "5000"


async def test_post_then_single_put(client: Client) -> None:
    data = os.urandom(3000)
    location = await start(client)
    response = await client.put(f"{location}?digest={digest_of(data)}", data=data)
    assert response.status == 201
    assert response.headers["Location"].endswith(f"/v2/{NAME}/blobs/{digest_of(data)}")
    assert (await client.get(f"/v2/{NAME}/blobs/{digest_of(data)}")).status == 200


async def test_chunked_upload_with_status_and_final_chunk(client: Client) -> None:
    data = os.urandom(10_000)
    location = await start(client)
    response = await client.patch(location, data=data[:4000], headers={"Content-Range": "0-3999"})
    assert response.status == 202
    assert response.headers["Range"] == "0-3999"
    location = path_of(response.headers["Location"])
    status = await client.get(location)
    assert status.status == 204
    assert status.headers["Range"] == "0-3999"
    response = await client.patch(location, data=data[4000:8000])  # streamed, no range
    assert response.headers["Range"] == "0-7999"
    response = await client.put(
        f"{location}?digest={digest_of(data)}",
        data=data[8000:],
        headers={"Content-Range": "8000-9999"},
    )
    assert response.status == 201, await response.text()
    assert await (await client.get(f"/v2/{NAME}/blobs/{digest_of(data)}")).read() == data
    # The session is gone once completed.
    assert (await client.get(location)).status == 404


async def test_out_of_order_and_repeated_chunks_are_416_and_change_nothing(
    client: Client,
) -> None:
    data = os.urandom(2000)
    location = await start(client)
    await client.patch(location, data=data[:1000], headers={"Content-Range": "0-999"})
    for bad in ("0-999", "1500-1999", "500-1499"):
        response = await client.patch(location, data=data[1000:], headers={"Content-Range": bad})
        assert response.status == 416, bad
        assert await error_code(response) == "RANGE_INVALID"
    status = await client.get(location)
    assert status.headers["Range"] == "0-999"
    response = await client.put(
        f"{location}?digest={digest_of(data)}",
        data=data[1000:],
        headers={"Content-Range": "1000-1999"},
    )
    assert response.status == 201


async def test_malformed_content_range(client: Client) -> None:
    location = await start(client)
    for bad in ("abc", "5-2", "-1-3", "bytes=a-b"):
        response = await client.patch(location, data=b"x", headers={"Content-Range": bad})
        assert response.status == 416, bad


async def test_body_length_must_match_content_range(client: Client) -> None:
    location = await start(client)
    response = await client.patch(location, data=b"0123456789", headers={"Content-Range": "0-4"})
    assert response.status == 400
    assert await error_code(response) == "SIZE_INVALID"
    assert (await client.get(location)).headers["Range"] == "0-0"


async def test_digest_mismatch_commits_nothing(client: Client, registry: object) -> None:
    data = os.urandom(100)
    wrong = digest_of(b"other")
    response = await client.post(f"/v2/{NAME}/blobs/uploads/?digest={wrong}", data=data)
    assert response.status == 400
    assert await error_code(response) == "DIGEST_INVALID"
    assert (await client.head(f"/v2/{NAME}/blobs/{wrong}")).status == 404
    assert (await client.head(f"/v2/{NAME}/blobs/{digest_of(data)}")).status == 404

    location = await start(client)
    response = await client.put(f"{location}?digest={wrong}", data=data)
    assert response.status == 400
    assert await error_code(response) == "DIGEST_INVALID"
    assert (await client.head(f"/v2/{NAME}/blobs/{wrong}")).status == 404


async def test_put_without_digest(client: Client) -> None:
    location = await start(client)
    response = await client.put(location, data=b"abc")
    assert response.status == 400
    assert await error_code(response) == "DIGEST_INVALID"


async def test_sha512_blob(client: Client) -> None:
    data = os.urandom(4096)
    digest = digest_of(data, "sha512")
    response = await client.post(f"/v2/{NAME}/blobs/uploads/?digest={digest}", data=data)
    assert response.status == 201
    response = await client.get(f"/v2/{NAME}/blobs/{digest}")
    assert await response.read() == data


async def test_unknown_upload(client: Client) -> None:
    for path in (
        f"/v2/{NAME}/blobs/uploads/00000000-0000-0000-0000-000000000000",
        f"/v2/{NAME}/blobs/uploads/not-a-uuid",
    ):
        response = await client.patch(path, data=b"abc")
        assert response.status == 404
        assert await error_code(response) == "BLOB_UPLOAD_UNKNOWN"
        assert (await client.get(path)).status == 404
        assert (await client.delete(path)).status == 404


async def test_upload_belongs_to_its_repository(client: Client) -> None:
    location = await start(client)
    other = location.replace(f"/v2/{NAME}/", "/v2/other/repo/")
    response = await client.patch(other, data=b"abc")
    assert response.status == 404


async def test_cancel(client: Client) -> None:
    location = await start(client)
    await client.patch(location, data=b"abc")
    assert (await client.delete(location)).status == 204
    assert (await client.get(location)).status == 404


async def test_cross_repository_mount(client: Client) -> None:
    digest = await push_blob(client, "source/repo", os.urandom(500))
    response = await client.post(f"/v2/{NAME}/blobs/uploads/?mount={digest}&from=source/repo")
    assert response.status == 201
    assert response.headers["Docker-Content-Digest"] == digest
    assert (await client.head(f"/v2/{NAME}/blobs/{digest}")).status == 200


async def test_mount_from_repository_without_the_blob_starts_an_upload(client: Client) -> None:
    digest = await push_blob(client, "source/repo", os.urandom(500))
    response = await client.post(f"/v2/{NAME}/blobs/uploads/?mount={digest}&from=empty/repo")
    assert response.status == 202
    assert (await client.head(f"/v2/{NAME}/blobs/{digest}")).status == 404


async def test_automatic_mount_without_from(client: Client) -> None:
    digest = await push_blob(client, "source/repo", os.urandom(500))
    response = await client.post(f"/v2/{NAME}/blobs/uploads/?mount={digest}")
    assert response.status == 201
    unknown = digest_of(b"never pushed")
    response = await client.post(f"/v2/{NAME}/blobs/uploads/?mount={unknown}")
    assert response.status == 202


async def test_empty_blob(client: Client) -> None:
    digest = await push_blob(client, NAME, b"")
    response = await client.get(f"/v2/{NAME}/blobs/{digest}")
    assert response.status == 200
    assert await response.read() == b""


async def nothing_left_of_uploads(registry: Registry, name: str = NAME) -> bool:
    """No upload data under the repository, and (inmemory) no upload in progress."""
    storage = registry.storage
    pending = storage.uploads if isinstance(storage, InMemoryDriver) else {}
    return await storage.list(f"{paths.repository(name)}/_uploads") == [] and not pending


async def test_a_failed_chunk_is_not_kept(client: Client, registry: Registry) -> None:
    """The row moves only for a whole chunk: one that fails after its bytes were written
    leaves the upload where it was, and the next chunk goes on from there."""
    first, rest = os.urandom(3000), os.urandom(2000)
    location = await start(client)
    response = await client.patch(location, data=first, headers={"Content-Range": "0-2999"})
    assert response.status == 202
    response = await client.patch(
        location, data=os.urandom(4000), headers={"Content-Range": "3000-3999"}
    )
    assert response.status == 400
    assert await error_code(response) == "SIZE_INVALID"
    status = await client.get(location)
    assert status.status == 204 and status.headers["Range"] == "0-2999"
    response = await client.patch(location, data=rest, headers={"Content-Range": "3000-4999"})
    assert response.status == 202 and response.headers["Range"] == "0-4999"
    response = await client.put(f"{location}?digest={digest_of(first + rest)}")
    assert response.status == 201, await response.text()
    blob = await client.get(f"/v2/{NAME}/blobs/{digest_of(first + rest)}")
    assert await blob.read() == first + rest
    assert await nothing_left_of_uploads(registry)


async def test_status_comes_from_the_row_not_the_storage(
    client: Client, registry: Registry
) -> None:
    location = await start(client)
    await client.patch(location, data=b"x" * 1234)
    upload_id = location.rsplit("/", 1)[1]
    record = await registry.metadata.get_upload(upload_id)
    assert record is not None and record.progress.size == 1234
    # Bytes removed behind Dockyard's back: GET still says what the row keeps; the next
    # chunk finds them gone and ends the session.
    await registry.storage.abort(
        paths.upload_data(NAME, upload_id), WriterState(1234, record.progress.driver_state)
    )
    assert (await client.get(location)).headers["Range"] == "0-1233"
    response = await client.patch(location, data=b"y", headers={"Content-Range": "1234-1234"})
    assert response.status == 404
    assert await error_code(response) == "BLOB_UPLOAD_UNKNOWN"
    assert (await client.get(location)).status == 404


async def test_completed_and_cancelled_uploads_leave_nothing(
    client: Client, registry: Registry
) -> None:
    for size in (0, 100, 5 * 1024 * 1024):  # an empty, a small and a chunked body
        data = os.urandom(size)
        location = await start(client)
        response = await client.patch(location, data=io.BytesIO(data))
        location = path_of(response.headers["Location"])
        response = await client.put(f"{location}?digest={digest_of(data)}")
        assert response.status == 201, await response.text()
        cancelled = await start(client)
        await client.patch(cancelled, data=io.BytesIO(data))
        assert (await client.delete(cancelled)).status == 204
    await push_blob(client, NAME, b"monolithic")
    assert await nothing_left_of_uploads(registry)
    assert await registry.metadata.count("uploads") == 0
