"""Upload sessions: their rows, progress and purging."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from dockyard.metadata import schema as t
from dockyard.metadata.engine import (
    prepared,
)
from dockyard.metadata.records import (
    UploadProgress,
    UploadRecord,
)
from dockyard.metadata.transactions import StoreBase, as_utc, utc_now

_UPLOAD = prepared(select(t.uploads).where(t.uploads.c.id == bindparam("id")))
_INSERT_UPLOAD = prepared(t.uploads.insert())
DELETE_UPLOAD = prepared(delete(t.uploads).where(t.uploads.c.id == bindparam("id")))
_SAVE_UPLOAD_PROGRESS = prepared(
    update(t.uploads)
    .where(t.uploads.c.id == bindparam("upload_id"), t.uploads.c.size == bindparam("expected"))
    .values(
        size=bindparam("new_size"),
        driver_state=bindparam("new_driver_state"),
        hash_offset=bindparam("new_hash_offset"),
        hash_state=bindparam("new_hash_state"),
    )
)


def _upload_record(row: Any) -> UploadRecord:
    progress = UploadProgress(row.size, row.driver_state, row.hash_offset, row.hash_state)
    return UploadRecord(row.id, row.repository, as_utc(row.started_at), progress)


class UploadQueries(StoreBase):
    """Upload sessions."""

    async def create_upload(self, upload_id: str, name: str) -> None:
        async with self._write(invalidates=False) as connection:
            await connection.execute(
                _INSERT_UPLOAD, {"id": upload_id, "repository": name, "started_at": utc_now()}
            )

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        async with self._read() as connection:
            row = (await connection.execute(_UPLOAD, {"id": upload_id})).one_or_none()
        return None if row is None else _upload_record(row)

    async def save_upload_progress(
        self, upload_id: str, expected_size: int, progress: UploadProgress
    ) -> bool:
        """Record how far the upload got (for whoever gets its next request), provided it
        still holds ``expected_size`` bytes; False when another request moved it meanwhile,
        or it is gone."""
        async with self._write(invalidates=False) as connection:
            result = await connection.execute(
                _SAVE_UPLOAD_PROGRESS,
                {
                    "upload_id": upload_id,
                    "expected": expected_size,
                    "new_size": progress.size,
                    "new_driver_state": progress.driver_state,
                    "new_hash_offset": progress.hash_offset,
                    "new_hash_state": progress.hash_state,
                },
            )
            return bool(result.rowcount)

    async def delete_upload(self, upload_id: str) -> bool:
        async with self._write(invalidates=False) as connection:
            result = await connection.execute(DELETE_UPLOAD, {"id": upload_id})
            return bool(result.rowcount)

    async def uploads_started_before(self, moment: datetime) -> Sequence[UploadRecord]:
        # Times are stored in UTC (SQLite keeps no offset): compare in UTC too.
        moment = moment.astimezone(UTC)
        if self._dialect == "sqlite":
            moment = moment.replace(tzinfo=None)
        async with self._read() as connection:
            rows = (
                await connection.execute(select(t.uploads).where(t.uploads.c.started_at < moment))
            ).all()
        return [_upload_record(row) for row in rows]
