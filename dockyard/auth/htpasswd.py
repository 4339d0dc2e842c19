"""htpasswd files (bcrypt entries only) read and verified, and Basic authentication
against them. Writing them (``dockyard htpasswd``) is :mod:`dockyard.auth.htpasswd_edit`.

A file holds ``user:hash`` lines; blank lines and lines starting with ``#`` are skipped.
Only bcrypt hashes (``$2a$``, ``$2b$``, ``$2y$``) are accepted, as in registry:2: a user
with another kind of hash (MD5 ``$apr1$``, SHA1 ``{SHA}``, crypt) cannot log in, and the
log says which user, never the hash.

The file is re-read when it changes (checked on every login), so adding a user or changing
a password needs no restart.

Checking a password costs a bcrypt (tens of milliseconds), which a registry cannot pay on
every request of a push. :class:`HtpasswdFile` remembers each verified login as an HMAC of
the password under a key that exists only in this process, filed under the user *and the
stored bcrypt hash*: a changed password or a changed file makes the entry unreachable,
and a wrong password never matches. Comparisons are constant-time, and an unknown user
costs a bcrypt like a known one, so timing tells nothing about which users exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import bcrypt

from dockyard.auth.access import Access
from dockyard.auth.controller import (
    AccessController,
    AuthRequest,
    Identity,
    named_login,
    parse_basic,
    quote,
    too_many_attempts,
    unauthorized,
)
from dockyard.auth.ratelimit import FailedLoginLimiter

log = logging.getLogger("dockyard.auth")

T = TypeVar("T")
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# bcrypt reads at most 72 bytes of a password; longer ones are checked on their first 72
# bytes, as Apache's htpasswd and registry:2 do.
BCRYPT_MAX_PASSWORD = 72
DEFAULT_COST = 10
_CACHE_SIZE = 4096


class HtpasswdError(Exception):
    """An htpasswd file cannot be read, or written as asked (the message is for the
    operator)."""


@dataclass(frozen=True)
class Htpasswd:
    """The parsed content of one file."""

    entries: Mapping[str, bytes]  # user -> bcrypt hash
    unsupported: frozenset[str]  # users whose hash is not bcrypt
    problems: tuple[str, ...] = ()  # what was skipped, for the log (never a hash)

    def typical_cost(self) -> int:
        costs = Counter(c for c in map(_cost, self.entries.values()) if c is not None)
        return costs.most_common(1)[0][0] if costs else DEFAULT_COST


def _cost(stored: bytes) -> int | None:
    parts = stored.split(b"$")
    try:
        return int(parts[2])
    except (IndexError, ValueError):
        return None


def is_bcrypt(stored: str) -> bool:
    return stored.startswith(BCRYPT_PREFIXES)


def parse_htpasswd(text: str) -> Htpasswd:
    entries: dict[str, bytes] = {}
    unsupported: set[str] = set()
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        if not sep or not user:
            problems.append(f"line {number}: not a user:hash entry, skipped")
            continue
        if user in entries or user in unsupported:
            problems.append(f"line {number}: user {user!r} appears again; the last entry wins")
        if is_bcrypt(stored):
            entries[user] = stored.encode("ascii", "replace")
            unsupported.discard(user)
        else:
            unsupported.add(user)
            entries.pop(user, None)
            problems.append(
                f"line {number}: user {user!r} has a password hash that is not bcrypt; "
                "only bcrypt entries are accepted (dockyard htpasswd add writes them)"
            )
    return Htpasswd(entries, frozenset(unsupported), tuple(problems))


@dataclass
class _Loaded:
    stamp: tuple[int, int, int, int] | None = None
    htpasswd: Htpasswd = field(default_factory=lambda: Htpasswd({}, frozenset()))
    error: str | None = None


class HtpasswdFile:
    """One htpasswd file, re-read when it changes, with the verified-login cache."""

    def __init__(self, path: Path | str, cache_size: int = _CACHE_SIZE) -> None:
        self.path = Path(path)
        self._loaded = _Loaded()
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._cache_size = cache_size
        self._inflight: dict[tuple[str, bytes, bytes], asyncio.Future[bool]] = {}
        self._dummies: dict[int, bytes] = {}

    # ---- the file -------------------------------------------------------------------

    def current(self) -> Htpasswd:
        """The entries, re-read if the file changed since the last look."""
        try:
            info = os.stat(self.path)
        except OSError as exc:
            self._fail(f"htpasswd {self.path}: cannot read: {exc.strerror or exc}")
            return self._loaded.htpasswd
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev)
        if stamp == self._loaded.stamp and self._loaded.error is None:
            return self._loaded.htpasswd
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            self._fail(f"htpasswd {self.path}: cannot read: {reason or exc}")
            return self._loaded.htpasswd
        parsed = parse_htpasswd(text)
        for problem in parsed.problems:
            log.warning("htpasswd %s %s", self.path, problem)
        if self._loaded.stamp is not None:
            log.info("htpasswd %s changed: %d users loaded", self.path, len(parsed.entries))
        self._loaded = _Loaded(stamp, parsed)
        return parsed

    def _fail(self, message: str) -> None:
        """An unreadable file lets nobody in (deleting it revokes every login)."""
        if self._loaded.error != message:
            log.error("%s; every login fails until it is readable", message)
        self._loaded = _Loaded(None, Htpasswd({}, frozenset()), message)

    def check_readable(self) -> Htpasswd:
        """Load at startup; raise HtpasswdError when the file cannot be read."""
        htpasswd = self.current()
        if self._loaded.error is not None:
            raise HtpasswdError(self._loaded.error)
        return htpasswd

    # ---- passwords ------------------------------------------------------------------

    async def verify(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s. Never raises for bad input."""
        htpasswd = self.current()
        secret = password.encode("utf-8", "surrogatepass")[:BCRYPT_MAX_PASSWORD]
        stored = htpasswd.entries.get(user)
        if stored is None:
            if user in htpasswd.unsupported:
                log.warning(
                    "login refused for user %r: the htpasswd entry is not bcrypt "
                    "(only bcrypt entries are accepted)",
                    user,
                )
            # Spend the time a real check takes, so timing does not reveal known users.
            await _in_bcrypt_pool(self._check_dummy, secret, htpasswd.typical_cost())
            return False
        tag = hmac.new(self._cache_key, secret, hashlib.sha256).digest()
        cached = self._cache.get((user, stored))
        if cached is not None and hmac.compare_digest(cached, tag):
            self._cache.move_to_end((user, stored))
            return True
        key = (user, stored, tag)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            ok = await _in_bcrypt_pool(_checkpw, secret, stored)
            if ok:
                self._remember((user, stored), tag)
            future.set_result(ok)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody logs it as lost
            raise
        finally:
            del self._inflight[key]
        return ok

    def _remember(self, key: tuple[str, bytes], tag: bytes) -> None:
        self._cache[key] = tag
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _check_dummy(self, secret: bytes, cost: int) -> None:
        """A bcrypt check that always fails, at the cost of the file's entries (thread)."""
        dummy = self._dummies.get(cost)
        if dummy is None:
            dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
            self._dummies[cost] = dummy
        _checkpw(secret, dummy)


_pool: tuple[int, ThreadPoolExecutor] | None = None


async def _in_bcrypt_pool(function: Callable[..., T], *args: object) -> T:
    """Run a bcrypt in this process's own small pool: a burst of logins must not take the
    threads that uploads and file reads use."""
    global _pool
    if _pool is None or _pool[0] != os.getpid():  # made after a fork, once per process
        workers = max(2, os.cpu_count() or 2)
        _pool = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="bcrypt"))
    return await asyncio.get_running_loop().run_in_executor(_pool[1], function, *args)


def _checkpw(secret: bytes, stored: bytes) -> bool:
    try:
        return bcrypt.checkpw(secret, stored)
    except ValueError:  # a malformed bcrypt hash: nobody logs in with it
        return False


# --------------------------------------------------------------------------------------
# The access controller


class HtpasswdController(AccessController):
    """``auth.htpasswd``: HTTP Basic against a file; every valid user may do everything,
    as in registry:2."""

    def __init__(
        self, realm: str, users: HtpasswdFile, limiter: FailedLoginLimiter | None = None
    ) -> None:
        self.realm = realm
        self.users = users
        self.limiter = limiter or FailedLoginLimiter(0, 0)

    def _challenge(self) -> str:
        return f"Basic realm={quote(self.realm)}"

    async def authenticate(self, request: AuthRequest, required: Sequence[Access]) -> Identity:
        credentials = named_login(parse_basic(request.authorization))
        if credentials is None:  # no login, or containers/image's empty one: a challenge
            raise unauthorized(self._challenge(), required)
        retry_after = await self.limiter.retry_after(request.client)
        if retry_after:
            raise too_many_attempts(retry_after)
        user, password = credentials
        if not await self.users.verify(user, password):
            await self.limiter.failed(request.client)
            log.info("authentication failed for user %r from %s", user, request.client)
            raise unauthorized(self._challenge(), required)
        return Identity(user)

    def authorize(
        self, identity: Identity, request: AuthRequest, required: Sequence[Access]
    ) -> None:
        return None

    def allows(self, identity: Identity, access: Access) -> bool:
        return not identity.anonymous

    def pulls_everything(self, identity: Identity) -> bool:
        return not identity.anonymous
