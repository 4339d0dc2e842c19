"""Failed logins, counted per client address over a sliding window.

When an address has failed ``limit`` times within ``window`` seconds, every further
password check from it is refused (``429 TOOMANYREQUESTS`` with ``Retry-After``) until its
oldest counted failure leaves the window. A success does not clear the count: one valid
account must not let an attacker keep guessing the passwords of others.

The state lives in the worker process, so with N workers an address gets at most N times
the limit; that bounds guessing just as well and needs no shared store.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


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
        max_clients: int = 100_000,
    ) -> None:
        """``limit`` 0 disables limiting. At most ``max_clients`` addresses are tracked;
        beyond that the least recently failing ones are forgotten."""
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try a password again; 0 when it may now."""
        if self.limit <= 0:
            return 0
        client = client_key(client)
        now = self._clock()
        failures = self._recent(client, now)
        if failures is None or len(failures) < self.limit:
            return 0
        return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, client: str) -> None:
        if self.limit <= 0:
            return
        client = client_key(client)
        now = self._clock()
        failures = self._recent(client, now)
        if failures is None:
            failures = deque(maxlen=self.limit)
            self._failures[client] = failures
        failures.append(now)
        self._failures.move_to_end(client)
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)
