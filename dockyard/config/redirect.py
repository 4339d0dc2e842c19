"""``storage.redirect``: whether blob ``GET`` and ``HEAD`` answer with a redirect to the
object store (a presigned URL) instead of streaming the bytes through Dockyard.

Distribution's key is ``disable`` (redirects are on unless it is true, for the drivers that
can presign); ``expiry`` is Dockyard's own: how long a presigned URL stays valid,
registry:2's fixed 20 minutes by default.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, field_validator

from dockyard.config.durations import Duration

DEFAULT_EXPIRY = timedelta(minutes=20)
# SigV4 presigned URLs are valid for at most 7 days.
MAX_EXPIRY = timedelta(days=7)


class RedirectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    disable: bool = False
    expiry: Duration = DEFAULT_EXPIRY

    @field_validator("expiry")
    @classmethod
    def _expiry(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= MAX_EXPIRY:
            raise ValueError("must be between 1s and 168h")
        return value

    @property
    def expiry_or_none(self) -> timedelta | None:
        """The expiry the drivers take: None when redirects are off."""
        return None if self.disable else self.expiry
