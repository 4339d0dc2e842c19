"""What ``dockyard retention``, ``du`` and ``fsck`` print: a rich table on a terminal,
tab-separated lines elsewhere (for scripts), and progress bars on standard error."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence

import click

from dockyard.fsck.check import FsckReport
from dockyard.gc.report import human_bytes
from dockyard.metadata.usage_queries import RegistryUsage, RepositoryUsage
from dockyard.retention.apply import RetentionReport


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not rows:
        return
    if not sys.stdout.isatty():
        for row in rows:
            click.echo("\t".join(row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress bar on standard error when it is a terminal: ``(what, done, total)``."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def advance(what: str, done: int, total: int) -> None:
            bar.update(
                task, completed=done, total=total or None, description=f"{description}: {what}"
            )

        yield advance


def show_retention(report: RetentionReport) -> None:
    rows = [
        (
            r.kind,
            f"{r.repository}:{r.reference}" if r.kind == "tag" else f"{r.repository}@{r.digest}",
            r.digest,
            r.rule,
            r.since.isoformat(timespec="seconds"),
            ("would go" if report.dry_run else "removed") if r.done else "kept (changed)",
        )
        for r in report.removals
    ]
    header = ("kind", "what", "digest", "rule", "pushed or last used", "outcome")
    print_table("retention", header, rows)
    click.echo(report.summary(), err=True)


def show_usage(repositories: list[RepositoryUsage], registry: RegistryUsage) -> None:
    rows = [
        (
            u.name,
            str(u.tags),
            str(u.manifests),
            human_bytes(u.total_bytes),
            human_bytes(u.unique_bytes),
        )
        for u in repositories
    ]
    print_table("usage", ("repository", "tags", "manifests", "total", "unique"), rows)
    click.echo(
        f"registry: {registry.repositories} repositories, "
        f"stored {human_bytes(registry.stored_bytes)}, "
        f"referenced {human_bytes(registry.referenced_bytes)}, deduplication ratio "
        f"{registry.deduplication_ratio:.2f}, unlinked {human_bytes(registry.unlinked_bytes)}"
    )


def show_fsck(report: FsckReport) -> None:
    for finding in report.findings:
        click.echo(finding.line())
    click.echo(report.summary(), err=True)
