"""Collection while CI pushes, at a size for the test suite (tests/gc/stress.py says what
runs; bench/gc_stress.py is the long version): every tag whose push succeeded pulls
byte-identical, no push is refused, and after one last collection past the review delay
no unreferenced blob is left in storage. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

from tests.gc.stress import stress

SECONDS = float(os.environ.get("DOCKYARD_GC_STRESS_SECONDS", "10"))


async def test_pushes_beside_collections_lose_nothing_and_leave_no_garbage(
    database_url: str, tmp_path: Path
) -> None:
    outcome, wrong, garbage = await stress(
        tmp_path / "store", database_url, seconds=SECONDS, pushers=6
    )

    assert outcome.refused == []
    assert wrong == []
    assert garbage == set()
    # The run did what it claims: skips, mounts, uploads, deletes and collections.
    assert outcome.pushes > 10 and outcome.deletes > 0 and outcome.commands >= 2
    assert outcome.heads_skipped > 0 and outcome.mounts > 0 and outcome.uploads > 0
