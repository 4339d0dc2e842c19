"""What a collection did (or, in a dry run, would do): for the operator and for metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Removed:
    """One thing a run removed: a manifest (with its repository) or a blob's bytes."""

    digest: str
    size: int
    repository: str | None = None


def human_bytes(count: int) -> str:
    """``count`` bytes for people: ``512 B``, ``1.5 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass
class GcReport:
    """The outcome of one run. ``manifests`` are manifest rows removed (only with
    ``delete_untagged``); ``blobs`` are layers and configs; ``manifest_bytes`` the copies of
    deleted manifests at their blob paths. Observers (metrics) read the counts."""

    dry_run: bool = False
    delete_untagged: bool = False
    manifests: list[Removed] = field(default_factory=list)
    blobs: list[Removed] = field(default_factory=list)
    manifest_bytes: list[Removed] = field(default_factory=list)
    #: bytes a step could not delete (they stay, with their rows, for the next run), and
    #: rows whose bytes went that a failed batch could not mark (see dockyard.gc.recovery)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def manifests_removed(self) -> int:
        return len(self.manifests)

    @property
    def blobs_removed(self) -> int:
        return len(self.blobs)

    @property
    def bytes_freed(self) -> int:
        return sum(r.size for r in self.blobs) + sum(r.size for r in self.manifest_bytes)

    def items(self) -> list[str]:
        """One line per thing removed (a dry run: that would be removed)."""
        verb = "would delete" if self.dry_run else "deleted"
        lines = [f"{r.repository}: {verb} manifest {r.digest}" for r in self.manifests]
        lines += [f"{verb} blob {r.digest} ({human_bytes(r.size)})" for r in self.blobs]
        lines += [f"{verb} manifest bytes {r.digest}" for r in self.manifest_bytes]
        return lines

    def summary(self) -> str:
        head = "Dry run: nothing was changed. Would remove" if self.dry_run else "Removed"
        manifests = f"{self.manifests_removed} manifest{'s' * (self.manifests_removed != 1)}"
        blobs = f"{self.blobs_removed} blob{'s' * (self.blobs_removed != 1)}"
        freed = "would free" if self.dry_run else "freed"
        return (
            f"{head} {manifests} and {blobs}; {freed} {human_bytes(self.bytes_freed)} "
            f"in {self.seconds:.2f}s."
        )
