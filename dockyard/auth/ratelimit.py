"""Failed logins, counted per client address over a sliding window, across workers and
replicas.

When an address has failed ``limit`` times within ``window`` seconds, every further
password check from it is refused (``429 TOOMANYREQUESTS`` with ``Retry-After``) until its
oldest counted failure leaves the window. A success does not clear the count: one valid
account must not let an attacker keep guessing the passwords of others.

Addresses are hashed with a secret key into a fixed number of buckets, each remembering
the times of its last ``limit`` failures: the state is bounded whatever the number of
clients, and a client cannot choose which bucket it lands in. Two addresses that share a
bucket are counted together; with 16384 buckets that is rare.

Where the failure times live is a :class:`FailureLog`:

* :class:`SharedMemoryFailures` (one host): shared memory made before the workers fork,
  guarded by a POSIX record lock that the kernel releases when its holder dies, so a worker
  killed in the middle of a count cannot leave the others waiting forever.
* the database (several replicas on PostgreSQL: ``dockyard.metadata.failed_logins``),
  keyed by the same buckets; every replica must then hash with the same key
  (``http.secret``).
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import math
import mmap
import os
import secrets
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol

DEFAULT_BUCKETS = 16384
_TIME = struct.Struct("<d")


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


class FailureLog(Protocol):
    """The last failure times of each bucket, in seconds of one clock that every process
    sharing the log agrees on."""

    async def recent(self, bucket: int, window: float) -> tuple[float, list[float]]:
        """The clock's time now, and the bucket's failure times within ``window`` of it."""
        ...

    async def add(self, bucket: int, limit: int) -> None:
        """Record a failure now, keeping at most the ``limit`` newest of the bucket."""
        ...


class SharedMemoryFailures:
    """Failure times in memory shared by the processes forked after it was made.

    ``limit`` slots per bucket, 0.0 an empty one. Counting takes a ``lockf`` lock on the
    memory's file (released by the kernel if the holder dies) and a thread lock (``lockf``
    does not exclude the threads of one process)."""

    def __init__(
        self, buckets: int, limit: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``clock`` must be one clock for every process (``time.monotonic`` is, on Linux)."""
        self._limit = max(limit, 1)
        self._clock = clock
        self.slots = buckets * self._limit
        self._fd = os.memfd_create("dockyard-failed-logins", os.MFD_CLOEXEC)
        os.ftruncate(self._fd, self.slots * _TIME.size)
        self._map = mmap.mmap(self._fd, self.slots * _TIME.size)
        self._thread_lock = threading.Lock()

    def _range(self, bucket: int) -> range:
        start = bucket * self._limit
        return range(start, start + self._limit)

    def _read(self, bucket: int) -> list[float]:
        return [_TIME.unpack_from(self._map, i * _TIME.size)[0] for i in self._range(bucket)]

    def _locked(self) -> _RecordLock:
        return _RecordLock(self._fd, self._thread_lock)

    async def recent(self, bucket: int, window: float) -> tuple[float, list[float]]:
        now = self._clock()
        with self._locked():
            times = self._read(bucket)
        return now, [t for t in times if t != 0.0 and t > now - window]

    async def add(self, bucket: int, limit: int) -> None:
        now = self._clock()
        with self._locked():
            times = self._read(bucket)
            oldest = min(range(len(times)), key=times.__getitem__)
            _TIME.pack_into(self._map, self._range(bucket)[oldest] * _TIME.size, now)


class _RecordLock:
    def __init__(self, fd: int, thread_lock: threading.Lock) -> None:
        self._fd = fd
        self._thread_lock = thread_lock

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


class FailedLoginLimiter:
    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        buckets: int = DEFAULT_BUCKETS,
        key: bytes | None = None,
    ) -> None:
        """``limit`` 0 disables limiting. ``key`` hashes addresses into buckets (random
        when None: then only the processes forked from this one count together)."""
        self.limit = max(limit, 0)
        self.window = window
        self.buckets = buckets
        self._key = key or secrets.token_bytes(16)
        self.failures: FailureLog = SharedMemoryFailures(
            buckets if self.limit else 1, self.limit, clock
        )

    def count_in(self, failures: FailureLog) -> None:
        """Keep the counts in ``failures`` from now on (the database, on PostgreSQL: a
        worker switches to it once it has a connection pool)."""
        self.failures = failures

    def bucket(self, client: str) -> int:
        digest = hashlib.blake2b(
            client_key(client).encode("utf-8", "replace"), key=self._key[:64], digest_size=8
        ).digest()
        return int.from_bytes(digest, "big") % self.buckets

    async def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try a password again; 0 when it may now."""
        if not self.limit:
            return 0
        now, recent = await self.failures.recent(self.bucket(client), self.window)
        if len(recent) < self.limit:
            return 0
        return max(1, math.ceil(min(recent) + self.window - now))

    async def failed(self, client: str) -> None:
        if self.limit:
            await self.failures.add(self.bucket(client), self.limit)


def secret_key(secret: str) -> bytes:
    """The bucket key derived from ``http.secret``: the same on every replica."""
    return hashlib.sha256(b"dockyard failed logins\0" + secret.encode()).digest()
