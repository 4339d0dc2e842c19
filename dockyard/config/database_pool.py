"""``database.pool`` (Dockyard's own): the connection pool of each worker process on a
PostgreSQL database. SQLite keeps one reader and one writer per process and ignores it."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dockyard.config.durations import Duration


class PoolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Connections each worker keeps open.
    size: int = Field(default=10, ge=1)
    # Connections a worker may open beyond ``size`` under load, closed again when returned.
    overflow: int = Field(default=20, ge=0)
    # How long a request waits for a free connection before it fails.
    timeout: Duration = timedelta(seconds=30)
    # Connections older than this are replaced when next checked out; 0 keeps them.
    recycle: Duration = timedelta(hours=1)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value
