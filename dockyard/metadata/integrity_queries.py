"""What ``dockyard fsck`` compares with the storage: every blob row, every stored manifest
digest, the upload sessions; and the rows of stored bytes nothing knew (fsck's repair,
the import of a registry:2 store)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from dockyard.metadata import schema as t
from dockyard.metadata.transactions import StoreBase, utc_now


@dataclass(frozen=True)
class BlobRow:
    digest: str
    size: int
    missing: bool


class IntegrityQueries(StoreBase):
    async def blob_rows(self) -> list[BlobRow]:
        query = select(t.blobs.c.digest, t.blobs.c.size, t.blobs.c.missing_at).order_by(
            t.blobs.c.digest
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).all()
        return [BlobRow(row[0], int(row[1]), row[2] is not None) for row in rows]

    async def record_blobs_without_links(self, blobs: Sequence[tuple[str, int]]) -> None:
        """Rows for stored bytes the database did not know (``(digest, size)`` pairs),
        linked into no repository: the review queue takes them, and a collection removes
        them once nothing wanted them within its delay (counted from now). A digest that
        has a row already keeps it as it is."""
        if not blobs:
            return
        now = utc_now()
        async with self._write(served=False) as connection:
            await connection.execute(
                self._insert(t.blobs).on_conflict_do_nothing(index_elements=["digest"]),
                [
                    {"digest": d, "size": size, "created_at": now, "wanted_at": now}
                    for d, size in blobs
                ],
            )

    async def manifest_sizes(self) -> dict[str, int]:
        """Every stored manifest digest (once, whatever its repositories) and its size."""
        query = select(t.manifests.c.digest, func.max(t.manifests.c.size)).group_by(
            t.manifests.c.digest
        )
        async with self._read() as connection:
            return {row[0]: int(row[1]) for row in (await connection.execute(query)).all()}

    async def manifest_payload(self, digest: str) -> bytes | None:
        query = select(t.manifests.c.payload).where(t.manifests.c.digest == digest).limit(1)
        async with self._read() as connection:
            found = (await connection.execute(query)).scalar_one_or_none()
        return None if found is None else bytes(found)

    async def upload_ids(self) -> set[str]:
        async with self._read() as connection:
            return set((await connection.execute(select(t.uploads.c.id))).scalars())
