"""How long the usage figures and a retention run take on a repository of 10,000 tags, on
SQLite and on PostgreSQL (the figures of docs/retention.md):
``.venv/bin/python -m bench.store_figures [POSTGRESQL_URL_OF_AN_EMPTY_DATABASE]``.

Fills a fresh database through SQL (not the API, which would take minutes): one repository
with 10,000 tagged manifests of 3 layers each, 100 of them shared with a second repository,
then ``ANALYZE``, and times ``repository_usage`` of that repository, ``registry_usage`` and
``repository_usage`` of every repository, best of 5; then a retention rule that keeps the
last 10 tags and removes untagged manifests, as a dry run and for real (once each).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from dockyard.metadata import schema as t
from dockyard.metadata.engine import create_engine, migrate
from dockyard.metadata.store import MetadataStore
from dockyard.retention.apply import apply_retention
from dockyard.retention.policy import RetentionPolicy, RetentionRule

TAGS = 10_000


def digest(kind: str, n: int) -> str:
    return "sha256:" + f"{kind}{n:x}".rjust(64, "0")


async def fill(store: MetadataStore) -> None:
    now = datetime.now(UTC)
    async with store.engine.connect() as connection, connection.begin():
        await connection.execute(
            t.repositories.insert(),
            [
                {"id": 1, "name": "big/app", "created_at": now},
                {"id": 2, "name": "small", "created_at": now},
            ],
        )
        blobs = [digest("b", n) for n in range(TAGS * 3)]
        await connection.execute(
            t.blobs.insert(),
            [{"digest": d, "size": 1000 + i, "created_at": now} for i, d in enumerate(blobs)],
        )
        links = [{"repository_id": 1, "digest": d, "created_at": now} for d in blobs]
        links += [{"repository_id": 2, "digest": d, "created_at": now} for d in blobs[:100]]
        await connection.execute(t.repository_blobs.insert(), links)
        await connection.execute(
            t.manifests.insert(),
            [
                {
                    "id": n + 1,
                    "repository_id": 1,
                    "digest": digest("m", n),
                    "media_type": "application/vnd.oci.image.manifest.v1+json",
                    "size": 500,
                    "payload": b"{}",
                    "created_at": now,
                }
                for n in range(TAGS)
            ],
        )
        await connection.execute(
            t.manifest_references.insert(),
            [
                {"manifest_id": n + 1, "digest": blobs[3 * n + k], "kind": "blob"}
                for n in range(TAGS)
                for k in range(3)
            ],
        )
        await connection.execute(
            t.tags.insert(),
            [
                {"repository_id": 1, "name": f"t{n}", "manifest_id": n + 1, "updated_at": now}
                for n in range(TAGS)
            ],
        )


async def best_ms(call: object, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        await call()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best * 1000


async def measure(url: str) -> str:
    engine = create_engine(url)
    await migrate(engine)
    store = MetadataStore(engine)
    try:
        await fill(store)
        async with store.engine.connect() as connection, connection.begin():
            await connection.execute(text("ANALYZE"))  # as autovacuum would, after a bulk load
        repository = await best_ms(lambda: store.repository_usage(["big/app"]))
        registry = await best_ms(store.registry_usage)
        every = await best_ms(store.repository_usage)
        rule = RetentionRule("bench", ("**",), keep_last=10, untagged_older_than=timedelta(hours=1))
        policy, later = RetentionPolicy((rule,)), datetime.now(UTC) + timedelta(days=1)
        dry = await apply_retention(store, policy, True, now=later)
        done = await apply_retention(store, policy, False, now=later)
    finally:
        await store.close()
    return (
        f"{url.split(':')[0]}: usage of the repository {repository:.1f} ms, of the registry "
        f"{registry:.1f} ms, of every repository {every:.1f} ms; retention dry run "
        f"{dry.seconds:.2f} s, run {done.seconds:.2f} s ({done.summary()})"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        print(await measure(f"sqlite:///{Path(directory) / 'usage.db'}"))
    if len(sys.argv) > 1:  # a PostgreSQL URL of an empty database
        print(await measure(sys.argv[1]))


if __name__ == "__main__":
    asyncio.run(main())
