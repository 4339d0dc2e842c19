"""Keeping a certificate from the CA: at start, renewed while serving, reloaded by every
worker.

* :meth:`CertificateManager.at_start` runs once in ``serve``'s parent, before the workers
  are forked: a cached certificate that covers the hosts and is not due is used as it is
  (no CA contacted); otherwise one is obtained, and when that fails a cached one that is
  still valid is served with a warning. With neither, ``serve`` stops with the reason.
* :func:`keep_renewed` runs in one worker (and, across replicas, under the
  ``letsencrypt`` lease): it sleeps until the certificate is due (a third of its lifetime
  before expiry), obtains the next one and writes it to the cache file.
* :class:`Reloader` runs in every worker: it notices that the cache file was replaced and
  loads the new certificate into the worker's TLS context, for the next handshakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final

from dockyard.letsencrypt.cache import CacheContents, CacheFile, Certificate
from dockyard.letsencrypt.issuer import new_account_key_pem, obtain

log = logging.getLogger("dockyard.letsencrypt")

LEASE: Final = "letsencrypt"
# How often every worker looks whether the cache file was replaced (one stat call).
RELOAD_INTERVAL: Final = 1.0
# The renewer's sleep is never longer (so a changed clock or cache is noticed) ...
LONGEST_SLEEP: Final = 3600.0
# ... and a failed renewal is retried after a tenth of the time left, within these bounds.
RETRY_BOUNDS: Final = (5.0, 3600.0)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class CertificateManager:
    cache: CacheFile
    directory_url: str
    hosts: tuple[str, ...]
    email: str | None
    #: answer HTTP-01 (on ``httpaddr``) rather than TLS-ALPN-01 (on the TLS port)
    http01: bool = False

    def cached(self) -> Certificate | None:
        """The cached certificate when it covers the hosts (expired or not)."""
        certificate = self.cache.read().certificate
        return certificate if certificate and certificate.covers(self.hosts) else None

    def due(self, now: datetime.datetime) -> bool:
        certificate = self.cached()
        return certificate is None or now >= certificate.renew_at()

    def obtain(self) -> Certificate:
        """A new certificate from the CA, written to the cache (blocking); IssueError."""
        contents = self.cache.read()
        account_key = contents.account_key_pem
        if account_key is None:  # kept from the start, so a failed order loses no account
            account_key = new_account_key_pem()
            self.cache.write(replace(contents, account_key_pem=account_key))
        issued = obtain(
            self.directory_url,
            self.hosts,
            self.email,
            account_key,
            self._publish,
            http01=self.http01,
        )
        contents = self.cache.read()
        self.cache.write(
            replace(
                contents,
                account_key_pem=issued.account_key_pem,
                account_uri=issued.account_uri,
                certificate=issued.certificate,
            )
        )
        log.info(
            "certificate for %s obtained from %s: serial %x, valid until %s",
            ", ".join(self.hosts),
            self.directory_url,
            issued.certificate.serial,
            issued.certificate.not_after.isoformat(),
        )
        return issued.certificate

    def _publish(self, answers: Mapping[str, str]) -> None:
        contents = self.cache.read()
        self.cache.write(replace(contents, challenges=dict(answers)))

    def at_start(
        self, responder: Callable[[], contextlib.AbstractAsyncContextManager[None]]
    ) -> Certificate:
        """The certificate to start serving with (see the module's docstring); raises
        IssueError or CacheError. ``responder`` answers the challenges while obtaining."""
        now = utcnow()
        cached = self.cached()
        if cached is not None and now < cached.renew_at():
            log.info(
                "using the cached certificate for %s (serial %x, valid until %s)",
                ", ".join(self.hosts),
                cached.serial,
                cached.not_after.isoformat(),
            )
            return cached

        async def obtain_answering() -> Certificate:
            async with responder():
                return await asyncio.to_thread(self.obtain)

        try:
            return asyncio.run(obtain_answering())
        except Exception as exc:
            if cached is None or not cached.valid(utcnow()):
                raise
            log.warning(
                "could not renew the certificate (%s); serving the cached one, valid until %s",
                exc,
                cached.not_after.isoformat(),
            )
            return cached


def retry_delay(certificate: Certificate | None, now: datetime.datetime) -> float:
    left = 0.0 if certificate is None else (certificate.not_after - now).total_seconds()
    low, high = RETRY_BOUNDS
    return min(max(left / 10, low), high)


async def keep_renewed(
    manager: CertificateManager,
    lease: Callable[[], contextlib.AbstractAsyncContextManager[bool]],
) -> None:
    """Renew the certificate whenever it is due, forever (cancel to stop)."""
    log.info("certificate renewal running in this worker (pid %d)", os.getpid())
    while True:
        now = utcnow()
        try:
            certificate = await asyncio.to_thread(manager.cached)
        except Exception as exc:
            log.error("certificate renewal: %s", exc)
            await asyncio.sleep(RETRY_BOUNDS[0])
            continue
        if certificate is not None and now < certificate.renew_at():
            wait = (certificate.renew_at() - now).total_seconds()
            await asyncio.sleep(min(max(wait, 0.5), LONGEST_SLEEP))
            continue
        try:
            async with lease() as held:
                # another replica may have renewed in the meantime: look again
                if held and await asyncio.to_thread(manager.due, utcnow()):
                    await asyncio.to_thread(manager.obtain)
        except Exception as exc:
            delay = retry_delay(certificate, utcnow())
            log.error("certificate renewal failed: %s; trying again in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            continue
        if not held:  # another replica renews: look again later
            await asyncio.sleep(retry_delay(certificate, utcnow()))


class Reloader:
    """Hands the cache file's certificate to ``load`` (which puts it into the worker's TLS
    context) whenever the file changes to another certificate than ``serving``."""

    def __init__(
        self, load: Callable[[Certificate], None], cache: CacheFile, serving: Certificate | None
    ) -> None:
        self._load = load
        self._cache = cache
        self._stamp = cache.stamp()
        self._serial = None if serving is None else serving.serial

    def load(self, certificate: Certificate) -> None:
        self._load(certificate)
        self._serial = certificate.serial

    def check(self) -> bool:
        """Reload when the file was replaced by another certificate; True when it did."""
        stamp = self._cache.stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp  # a damaged file is reported once, not every second
        contents: CacheContents = self._cache.read()
        certificate = contents.certificate
        if certificate is None or certificate.serial == self._serial:
            return False
        self.load(certificate)
        log.info(
            "serving the renewed certificate (serial %x, valid until %s) in pid %d",
            certificate.serial,
            certificate.not_after.isoformat(),
            os.getpid(),
        )
        return True

    async def watch(self, interval: float = RELOAD_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.check)
            except Exception as exc:  # a damaged file: keep the certificate we have
                log.error("certificate reload: %s", exc)
