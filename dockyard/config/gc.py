"""``gc``: Dockyard's own section for garbage collection while serving."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from dockyard.config.durations import Duration, PositiveDuration


class GcConfig(BaseModel):
    """``enabled`` makes ``serve`` collect every ``interval``; ``reviewafter`` is the review
    delay, which ``dockyard garbage-collect`` honours too; ``deleteuntagged`` makes the
    scheduled collection remove what no tag reaches (the command's ``--delete-untagged``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    interval: PositiveDuration = timedelta(hours=1)
    reviewafter: Duration = timedelta(hours=24)
    deleteuntagged: bool = False
