"""Failed logins, counted per client address over a sliding window, across workers.

When an address has failed ``limit`` times within ``window`` seconds, every further
password check from it is refused (``429 TOOMANYREQUESTS`` with ``Retry-After``) until its
oldest counted failure leaves the window. A success does not clear the count: one valid
account must not let an attacker keep guessing the passwords of others.

The counts live in shared memory made when the limiter is built, so the worker processes
forked after that (``dockyard serve`` builds it before forking) count together. Addresses
are hashed with a per-server key into a fixed number of buckets, each remembering the
times of its last ``limit`` failures: memory is bounded whatever the number of clients,
and a client cannot choose which bucket it lands in. Two addresses that share a bucket
are counted together; with 16384 buckets that is rare.
"""

from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import math
import multiprocessing
import secrets
import time
from collections.abc import Callable

DEFAULT_BUCKETS = 16384


def client_key(client: str) -> str:
    """The unit that is counted: an IPv4 address, or the /64 network of an IPv6 address
    (one host usually has a whole /64 to pick addresses from)."""
    try:
        ip = ipaddress.ip_address(client.strip("[]"))
    except ValueError:
        return client
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


class FailedLoginLimiter:
    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        buckets: int = DEFAULT_BUCKETS,
    ) -> None:
        """``limit`` 0 disables limiting. ``clock`` must be one clock for every process
        (``time.monotonic`` is, on Linux)."""
        self.limit = max(limit, 0)
        self.window = window
        self._clock = clock
        self._buckets = buckets
        context = multiprocessing.get_context("fork")
        # failure times; 0.0 is an empty slot
        self._times = context.RawArray(ctypes.c_double, buckets * self.limit if self.limit else 1)
        self._lock = context.Lock()
        self._key = secrets.token_bytes(16)

    def _slots(self, client: str) -> range:
        digest = hashlib.blake2b(
            client_key(client).encode("utf-8", "replace"), key=self._key, digest_size=8
        ).digest()
        start = int.from_bytes(digest, "big") % self._buckets * self.limit
        return range(start, start + self.limit)

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try a password again; 0 when it may now."""
        if not self.limit:
            return 0
        slots = self._slots(client)
        now = self._clock()
        with self._lock:
            times = [self._times[i] for i in slots]
        recent = [t for t in times if t != 0.0 and t > now - self.window]
        if len(recent) < self.limit:
            return 0
        return max(1, math.ceil(min(recent) + self.window - now))

    def failed(self, client: str) -> None:
        if not self.limit:
            return
        slots = self._slots(client)
        now = self._clock()
        with self._lock:
            oldest = min(slots, key=self._times.__getitem__)
            self._times[oldest] = now
