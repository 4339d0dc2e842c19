"""Whole tag lists: read once per write generation, pages cut from them, memory bounded;
in byte order on SQLite and PostgreSQL alike."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.metadata import transactions
from dockyard.metadata.generation import WriteGeneration
from dockyard.metadata.store import MetadataStore, TagList, TagListCache
from dockyard.oci.names import TAG_SEPARATOR
from tests.metadata.test_store import digest, manifest, open_store, push_image

# Tags that sort differently by byte order and by most collations: upper before lower
# case, digits and '.', '-', '_' between them, prefixes before their extensions.
TRICKY = ["v10", "v2", "latest", "V1", "1.0", "_x", "a-b", "a.b", "a", "ab", "A", "Z9", "z"]


async def tag_all(store: MetadataStore, name: str, tags: list[str]) -> None:
    image_digest = await push_image(store, name, "v1", None)
    image = manifest("v1", blobs=(digest("v1/config"), digest("v1/layer")))
    assert image.digest == image_digest
    for tag in tags:
        await store.put_manifest(name, image, tag)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[MetadataStore]:
    opened = await open_store(database_url, migrated=True)
    yield opened
    await opened.close()


async def test_whole_list_and_pages_match_the_page_query(
    store: MetadataStore, tmp_path: Path
) -> None:
    await tag_all(store, "app", TRICKY)
    whole = await store.tag_list("app")
    assert whole is not None and whole.tags == sorted(TRICKY)
    # The same database read page by page by SQL (no cache: the path PostgreSQL takes).
    uncached = MetadataStore(store.engine, WriteGeneration(None, disabled=True))
    lasts = [None, "", "0", "A", "V1", "V2", "a", "a-", "a-b", "a.b", "ab", "v2", "zz", "é"]
    for limit in (None, 1, 2, 3, 5, 100):
        for last in lasts:
            expected = await uncached.list_tags("app", limit, last)
            assert await store.list_tags("app", limit, last) == expected, (limit, last)
            assert whole.page(limit, last) == expected


@pytest.mark.parametrize("database", ["sqlite"])  # PostgreSQL caches no reads
async def test_whole_list_is_read_once_per_generation(store: MetadataStore) -> None:
    await tag_all(store, "app", ["b", "a"])
    first = await store.tag_list("app")
    assert first is not None and first.tags == ["a", "b"]
    assert await store.tag_list("app") is first
    assert await store.list_tags("app", 1, "a") == ["b"]
    assert await store.tag_list("app") is first  # a page read the same cached list
    await store.commit_blob("other", digest("unrelated"), 1)  # any write
    assert await store.tag_list("app") is not first


async def test_empty_and_unknown_repositories(store: MetadataStore) -> None:
    assert await store.tag_list("app") is None
    assert await store.list_tags("app", 2, None) is None
    await push_image(store, "app", "v1", None)
    whole = await store.tag_list("app")
    assert whole is not None and whole.tags == [] and whole.joined(", ") == ""
    assert await store.list_tags("app", 2, "x") == []


async def test_a_write_in_another_process_shows_at_once(database_url: str) -> None:
    """Two stores on one database, as two workers: a tag pushed or deleted by one appears
    or disappears at once in the other's whole list and pages, which it had cached."""
    url = database_url
    first, second = await open_store(url, migrated=True), await open_store(url, migrated=True)
    try:
        await tag_all(first, "app", ["t1", "t3"])
        cached = await second.tag_list("app")
        assert cached is not None and cached.tags == ["t1", "t3"]
        assert await second.list_tags("app", 1, "t1") == ["t3"]
        await tag_all(first, "app", ["t2"])
        fresh = await second.tag_list("app")
        assert fresh is not None and fresh.tags == ["t1", "t2", "t3"]
        assert await second.list_tags("app", 1, "t1") == ["t2"]
        await first.delete_tag("app", "t2")
        assert await second.list_tags("app", None, None) == ["t1", "t3"]
        assert await second.list_tags("app", 1, "t1") == ["t3"]
        assert "t2" not in (await second.tag_list("app") or TagList("")).tags
    finally:
        await first.close()
        await second.close()


def test_a_list_joined_out_of_order_is_put_in_byte_order() -> None:
    """SQLite's group_concat promises no order: the store does not rely on it."""
    shuffled = TRICKY[:]
    random.Random(8).shuffle(shuffled)
    found = TagList.in_byte_order(TAG_SEPARATOR.join(shuffled))
    assert found.tags == sorted(TRICKY)
    assert found.joined(TAG_SEPARATOR) == TAG_SEPARATOR.join(sorted(TRICKY))
    assert found.page(2, "V1") == ["Z9", "_x"]
    ordered = TAG_SEPARATOR.join(sorted(TRICKY))
    assert TagList.in_byte_order(ordered).joined(TAG_SEPARATOR) is ordered  # kept as read
    assert TagList.in_byte_order("").tags == []


def test_tag_list_pages() -> None:
    tags = sorted(f"t{random.randrange(10**6):06d}" for _ in range(500))
    tags = sorted(set(tags))
    whole = TagList.of(tags)
    assert whole.size == len(TAG_SEPARATOR.join(tags))
    assert whole.tags == tags
    assert whole.joined(TAG_SEPARATOR) == TAG_SEPARATOR.join(tags)
    assert whole.joined(",") == ",".join(tags)
    walked: list[str] = []
    last = None
    while page := whole.page(7, last):
        walked += page
        last = page[-1]
    assert walked == tags
    assert whole.page(None, tags[-1]) == []
    assert TagList("").tags == [] and TagList("").page(3, None) == []


def test_cache_stays_within_its_budget_and_evicts_the_least_recently_used() -> None:
    generation = WriteGeneration(None)
    cache = TagListCache(generation, budget=1_000)
    lists = {f"repo{i}": TagList.of([f"tag{i}-{j}" for j in range(20)]) for i in range(10)}
    for name, tags in lists.items():
        cache.put(name, generation.current(), tags)
        assert cache.get("repo0") is not None or name != "repo1"  # keep repo0 recent
        assert cache.used <= 1_000
    assert cache.get("repo0") is lists["repo0"]  # used often: kept
    assert cache.get("repo1") is None  # evicted first
    assert cache.get("repo9") is lists["repo9"]  # the newest
    generation.bump()
    assert cache.get("repo9") is None  # a write ends every entry
    assert cache.used <= 1_000


def test_a_list_larger_than_the_budget_is_not_kept() -> None:
    generation = WriteGeneration(None)
    cache = TagListCache(generation, budget=100)
    big = TagList.of([f"tag{j}" for j in range(100)])
    cache.put("big", generation.current(), big)
    assert cache.get("big") is None and cache.used == 0
    assert cache.too_large("big")
    generation.bump()
    assert not cache.too_large("big")  # it may have shrunk since


async def test_pages_of_a_list_too_large_to_cache_come_from_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transactions, "TAG_CACHE_CHARS", 50)
    store = await open_store(f"sqlite:///{tmp_path / 'metadata.db'}")
    try:
        tags = [f"tag{j:03d}" for j in range(30)]
        await tag_all(store, "app", tags)
        assert await store.list_tags("app", None, None) == tags
        assert store._tag_lists.too_large("app")
        assert await store.list_tags("app", 5, "tag010") == tags[11:16]
        assert await store.list_tags("app", None, "tag027") == tags[28:]
        await store.delete_tag("app", "tag011")
        assert await store.list_tags("app", 5, "tag010") == tags[12:17]
    finally:
        await store.close()
