"""The long version of tests/gc/test_stress.py: pushers sharing layers as CI does, beside
the scheduled collection and ``dockyard garbage-collect`` in a loop, for minutes.

    python -m bench.gc_stress [--seconds 300] [--pushers 12] [--database sqlite|postgresql]
                              [--review-after 2]

Prints what the run did and fails (status 1) when a push was refused, a tag did not pull
byte-identical, or an unreferenced blob was left after the last collection.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from tests.gc.stress import stress
from tests.postgres import PostgresServer


async def run(args: argparse.Namespace, work: Path) -> int:
    server = None
    if args.database == "postgresql":
        server = PostgresServer.start()
        url = await server.acquire()
    else:
        url = f"sqlite:///{work / 'dockyard.db'}"
    try:
        outcome, wrong, garbage = await stress(
            work / "store",
            url,
            seconds=args.seconds,
            pushers=args.pushers,
            review_after=args.review_after,
        )
    finally:
        if server is not None:
            server.stop()
    print(
        f"{outcome.pushes} pushes ({outcome.heads_skipped} layers skipped after a HEAD, "
        f"{outcome.mounts} mounted, {outcome.uploads} uploaded), {outcome.deletes} manifest "
        f"deletes, {outcome.commands} garbage-collect commands beside the scheduled "
        f"collection; {len(outcome.tags)} tags checked; the longest push took "
        f"{outcome.longest_push:.1f} s (review delay {args.review_after:g} s)"
    )
    for line in [*outcome.refused, *wrong, *(f"left in storage: {d}" for d in garbage)]:
        print(f"FAIL {line}")
    return 1 if outcome.refused or wrong or garbage else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--pushers", type=int, default=12)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--review-after", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockyard-gc-stress-") as work:
        sys.exit(asyncio.run(run(args, Path(work))))


if __name__ == "__main__":
    main()
