"""glibc's malloc thresholds for a process that streams bodies through short-lived pieces.

A body that comes through aiohttp's parser (a chunked ``PATCH``, as docker and podman push
a layer; any body over TLS) is handed over as ``bytes`` of up to a few hundred KiB, joined
by ``StreamReader.readany`` from the pieces of one socket read. With glibc's defaults, a
piece above the (dynamic) mmap threshold is mapped and unmapped each time, and the heap's
top goes back to the kernel whenever twice that threshold is free there: the next piece
lands on fresh pages, a page fault and a zeroed page per 4 KiB. That churn was about a fifth
of the CPU a chunked upload cost here (docs/performance.md, "Real-client pushes").

Serving allocations below :data:`MMAP_THRESHOLD` from the heap and keeping up to
:data:`TRIM_THRESHOLD` free at its top ends it. The freed memory is kept for the next
pieces, not added to: what stays mapped is at most what a process once used plus that
slack, per malloc arena. glibc's own settings in the environment (``MALLOC_*_`` or
``GLIBC_TUNABLES``) win; elsewhere than glibc nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger("dockyard.allocator")

MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024
# mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_GLIBC_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def tune_malloc(environ: dict[str, str] | None = None) -> bool:
    """Set the thresholds in this process (forked workers inherit them), unless the
    environment sets glibc's own; whether they were set."""
    environ = dict(os.environ) if environ is None else environ
    if any(name in environ for name in _GLIBC_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False  # not glibc: its allocator has its own ways
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    if not done:
        log.warning("mallopt refused the thresholds; glibc's defaults stay")
    return bool(done)
