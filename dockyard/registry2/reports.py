"""What ``dockyard import`` and ``dockyard export`` tell the operator, and their exit status.

Both commands share one convention, so that scripts can tell the outcomes apart:

* :data:`EXIT_CLEAN` (0): done (or, in a dry run, would be done), nothing to report;
* :data:`EXIT_PROBLEMS` (1): done, but problems were reported (``warning:`` lines);
* :data:`EXIT_REFUSED` (2): refused, nothing was changed (the reason is printed);
* :data:`EXIT_STOPPED` (3): stopped by a storage error, partly done (run it again).
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_CLEAN = 0
EXIT_PROBLEMS = 1
EXIT_REFUSED = 2
EXIT_STOPPED = 3


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


@dataclass
class Counts:
    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    blob_links: int = 0

    def describe(self, repositories: bool = True) -> str:
        parts = [
            plural(self.tags, "tag", "tags"),
            plural(self.manifests, "manifest", "manifests"),
            plural(self.blob_links, "blob link", "blob links"),
        ]
        if repositories:
            parts.insert(0, plural(self.repositories, "repository", "repositories"))
        return ", ".join(parts)


@dataclass
class Report:
    """The outcome of a run: refused (with why), or done with problems (maybe none)."""

    dry_run: bool = False
    #: one line per thing skipped or adjusted, for the operator
    problems: list[str] = field(default_factory=list)
    #: why nothing was done, when the run was refused
    refused: str | None = None

    def summary(self) -> str:
        """What was done, a few lines for standard output (unless refused)."""
        raise NotImplementedError

    @property
    def exit_status(self) -> int:
        if self.refused is not None:
            return EXIT_REFUSED
        return EXIT_PROBLEMS if self.problems else EXIT_CLEAN
