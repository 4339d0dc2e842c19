"""dockyard.allocator: freed pieces stay in the heap for the next ones (no page faults per
piece), unless glibc's own settings are in the environment."""

from __future__ import annotations

import os
import subprocess
import sys

from dockyard.allocator import tune_malloc

# Pieces as a body through aiohttp's parser makes them: several at once, then all freed.
_CHURN = """
import resource, sys
from dockyard.allocator import tune_malloc
tuned = tune_malloc() if sys.argv[1] == "tuned" else False
source = b"x" * (256 * 1024)
pieces = [bytes(bytearray(source)) for _ in range(8)]
del pieces
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    pieces = [bytes(bytearray(source)) for _ in range(8)]
    del pieces
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    out = subprocess.run(
        [sys.executable, "-c", _CHURN, mode], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_freed_pieces_are_reused_without_page_faults() -> None:
    tuned, tuned_faults = _page_faults("tuned")
    _, default_faults = _page_faults("default")
    assert tuned == "True"
    # glibc's defaults give the heap's top back after every round: 2 MiB of fresh pages
    # (512 faults) each time; tuned, the same pages serve every round.
    assert default_faults > 100 * 256
    assert tuned_faults < default_faults / 10


def test_glibc_settings_in_the_environment_win() -> None:
    assert tune_malloc({"MALLOC_TRIM_THRESHOLD_": "131072"}) is False
    assert tune_malloc({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}) is False
