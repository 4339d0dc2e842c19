"""Copy images between registries: ``dockyard sync`` and ``dockyard promote``, and the
engine that replication inside the server runs."""

from .engine import (
    Copier,
    CopyResult,
    PlannedImage,
    Progress,
    ProgressEvent,
    SyncSummary,
    copy_image,
    plan_sync,
    sync_registries,
)
from .protocols import ImageDestination, ImageSource
from .rules import PrefixMap, SyncRules

__all__ = [
    "Copier",
    "CopyResult",
    "ImageDestination",
    "ImageSource",
    "PlannedImage",
    "PrefixMap",
    "Progress",
    "ProgressEvent",
    "SyncRules",
    "SyncSummary",
    "copy_image",
    "plan_sync",
    "sync_registries",
]
