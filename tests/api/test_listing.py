"""/v2/, tag lists, the catalog and their pagination; names and unknown routes."""

from __future__ import annotations

import json
import os

from tests.api.helpers import Client, error_code, push_blob, push_image, raw_request


async def test_base(client: Client) -> None:
    for path in ("/v2/", "/v2"):
        response = await client.get(path)
        assert response.status == 200
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_tags_pagination(client: Client) -> None:
    name = "paged/repo"
    for tag in ("b", "a", "d", "c", "e"):
        await push_image(client, name, tag, layers=1)
    response = await client.get(f"/v2/{name}/tags/list")
    assert (await response.json())["tags"] == ["a", "b", "c", "d", "e"]
    response = await client.get(f"/v2/{name}/tags/list?n=2")
    assert (await response.json())["tags"] == ["a", "b"]
    assert response.headers["Link"] == f'</v2/{name}/tags/list?n=2&last=b>; rel="next"'
    response = await client.get(f"/v2/{name}/tags/list?n=2&last=b")
    assert (await response.json())["tags"] == ["c", "d"]
    response = await client.get(f"/v2/{name}/tags/list?n=10&last=d")
    assert (await response.json())["tags"] == ["e"]
    assert "Link" not in response.headers
    # A page that ends exactly at the last tag says there is no next one.
    response = await client.get(f"/v2/{name}/tags/list?n=3&last=b")
    assert (await response.json())["tags"] == ["c", "d", "e"]
    assert "Link" not in response.headers
    response = await client.get(f"/v2/{name}/tags/list?n=0")
    assert (await response.json())["tags"] == []
    response = await client.get(f"/v2/{name}/tags/list?n=-1")
    assert response.status == 400
    assert await error_code(response) == "PAGINATION_NUMBER_INVALID"


async def test_tags_of_unknown_repository(client: Client) -> None:
    response = await client.get("/v2/no/such/tags/list")
    assert response.status == 404
    assert await error_code(response) == "NAME_UNKNOWN"


async def test_catalog(client: Client) -> None:
    for name in ("zeta", "alpha/one", "alpha/two", "mid"):
        await push_blob(client, name, os.urandom(10))
    response = await client.get("/v2/_catalog")
    assert (await response.json())["repositories"] == ["alpha/one", "alpha/two", "mid", "zeta"]
    response = await client.get("/v2/_catalog?n=3")
    assert (await response.json())["repositories"] == ["alpha/one", "alpha/two", "mid"]
    assert response.headers["Link"] == '</v2/_catalog?n=3&last=mid>; rel="next"'
    response = await client.get("/v2/_catalog?n=3&last=mid")
    assert (await response.json())["repositories"] == ["zeta"]
    response = await client.get("/v2/_catalog?n=4")
    assert len((await response.json())["repositories"]) == 4
    assert "Link" not in response.headers


async def test_catalog_orders_by_path_component_as_registry2(client: Client) -> None:
    for name in ("team-tools", "team/app", "team", "team.x/y", "team/app/api"):
        await push_blob(client, name, os.urandom(10))
    expected = ["team", "team/app", "team/app/api", "team-tools", "team.x/y"]
    response = await client.get("/v2/_catalog")
    assert (await response.json())["repositories"] == expected
    response = await client.get("/v2/_catalog?n=2&last=team/app")
    assert (await response.json())["repositories"] == expected[2:4]


async def test_invalid_names(client: Client) -> None:
    for name in (
        "UPPER/case",
        "a/../b",
        "..",
        "a//b",
        "-lead",
        "trail-",
        "a" * 256,
        "x/%2e%2e/y",
    ):
        for method, suffix in (("GET", "tags/list"), ("POST", "blobs/uploads/")):
            status, body = await raw_request(client, method, f"/v2/{name}/{suffix}")
            assert status == 400, (name, suffix)
            assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID", name
    response = await client.get("/v2/_catalog")
    assert (await response.json())["repositories"] == []


async def test_unknown_route_is_json_404(client: Client) -> None:
    response = await client.get("/v2/repo/unknown/thing/x")
    assert response.status == 404
    assert await error_code(response) == "NAME_UNKNOWN"


async def test_method_not_allowed(client: Client) -> None:
    response = await client.post("/v2/_catalog")
    assert response.status == 405
    assert await error_code(response) == "UNSUPPORTED"


async def test_tag_list_body_is_the_json_of_its_fields(client: Client) -> None:
    name = "json/check"
    for tag in ("v1.0", "latest", "a_b-c"):
        await push_image(client, name, tag, layers=1)
    response = await client.get(f"/v2/{name}/tags/list")
    assert json.loads(await response.read()) == {"name": name, "tags": ["a_b-c", "latest", "v1.0"]}
    assert response.headers["Content-Type"] == "application/json"
    response = await client.get(f"/v2/{name}/tags/list?n=0")
    assert json.loads(await response.read()) == {"name": name, "tags": []}


async def test_tag_list_body_bytes(client: Client) -> None:
    """The full list's body is cached; it keeps the exact bytes it always had."""
    name = "json/bytes"
    for tag in ("b", "a"):
        await push_image(client, name, tag, layers=1)
    for _ in range(2):  # the second answer comes from the cache
        response = await client.get(f"/v2/{name}/tags/list")
        assert await response.read() == b'{"name": "json/bytes", "tags": ["a", "b"]}'
        assert "Link" not in response.headers
    response = await client.get(f"/v2/{name}/tags/list?n=1")
    assert await response.read() == b'{"name": "json/bytes", "tags": ["a"]}'
    assert response.headers["Link"] == f'</v2/{name}/tags/list?n=1&last=a>; rel="next"'


async def test_tag_list_of_a_repository_without_tags(client: Client) -> None:
    await push_blob(client, "no/tags", os.urandom(10))
    for query in ("", "?n=5", "?last=a"):
        response = await client.get(f"/v2/no/tags/tags/list{query}")
        assert response.status == 200
        assert await response.read() == b'{"name": "no/tags", "tags": []}'
        assert "Link" not in response.headers


async def test_tag_writes_show_at_once_in_cached_lists_and_pages(client: Client) -> None:
    name = "cached/tags"

    async def listed(query: str = "") -> list[str]:
        response = await client.get(f"/v2/{name}/tags/list{query}")
        assert response.status == 200
        return list((await response.json())["tags"])

    async def walked() -> list[str]:
        tags: list[str] = []
        url: str | None = f"/v2/{name}/tags/list?n=2"
        while url is not None:
            response = await client.get(url)
            tags += (await response.json())["tags"]
            link = response.headers.get("Link")
            url = link[1 : link.index(">")] if link else None
        return tags

    for tag in ("t1", "t3", "t5"):
        await push_image(client, name, tag, layers=1)
    assert await listed() == await walked() == ["t1", "t3", "t5"]
    assert await listed("?n=1&last=t1") == ["t3"]
    digest, _, _ = await push_image(client, name, "t2", layers=1)
    assert await listed() == await walked() == ["t1", "t2", "t3", "t5"]
    assert await listed("?n=1&last=t1") == ["t2"]
    assert (await client.delete(f"/v2/{name}/manifests/t3")).status == 202
    assert await listed() == await walked() == ["t1", "t2", "t5"]
    assert await listed("?n=1&last=t2") == ["t5"]
    assert (await client.delete(f"/v2/{name}/manifests/{digest}")).status == 202
    assert await listed() == await walked() == ["t1", "t5"]
    assert await listed("?last=t1") == ["t5"]
