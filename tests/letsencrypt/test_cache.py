"""The cache file: atomic, private, refused with a clear error when foreign or damaged;
the renewal point; the reload of a replaced certificate into a live TLS context."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from dockyard.letsencrypt.cache import (
    FILE_IN_DIRECTORY,
    CacheContents,
    CacheError,
    CacheFile,
    Certificate,
)
from dockyard.letsencrypt.issuer import new_account_key_pem
from dockyard.letsencrypt.manager import Reloader, retry_delay
from dockyard.tls import load_certificate, server_context

from .certificates import NOW, certificate, handshake


def test_round_trip_private_and_atomic(tmp_path: Path) -> None:
    cache = CacheFile(tmp_path / "sub" / "le.json")
    assert cache.read() == CacheContents()  # nothing yet
    assert cache.stamp() is None
    contents = CacheContents(
        account_key_pem=new_account_key_pem(),
        account_uri="https://ca.example/acct/1",
        certificate=certificate(),
        challenges={"token": "token.thumbprint"},
    )
    cache.write(contents)
    assert cache.read() == contents
    assert cache.path.stat().st_mode & 0o777 == 0o600
    before = cache.stamp()
    cache.write(CacheContents(account_key_pem=contents.account_key_pem))
    assert cache.stamp() != before  # a new file replaced the old one
    assert [p.name for p in cache.path.parent.iterdir()] == ["le.json"]  # no temporary left


def test_a_directory_holds_dockyards_file_beside_registry2s(tmp_path: Path) -> None:
    (tmp_path / "acme_account+key").write_text("registry:2's autocert file")
    cache = CacheFile(tmp_path)
    assert cache.path == tmp_path / FILE_IN_DIRECTORY
    cache.write(CacheContents(account_uri="u"))
    assert cache.read().account_uri == "u"
    assert (tmp_path / "acme_account+key").read_text() == "registry:2's autocert file"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x01binary", "not a Dockyard Let's Encrypt cache file"),
        (b'{"some": "other json"}', "not a Dockyard Let's Encrypt cache file"),
        (b'{"format": "dockyard-letsencrypt-cache", "version": 7}', "cache version 7 is not 1"),
        (b'{"format": "dockyard-letsencrypt-cache", "version": 1}', "damaged (KeyError"),
        (
            json.dumps(
                {
                    "format": "dockyard-letsencrypt-cache",
                    "version": 1,
                    "account": {"key": "-----BEGIN PRIVATE KEY-----\nxx\n", "uri": None},
                    "certificate": None,
                    "challenges": {},
                }
            ).encode(),
            "damaged (ValueError",
        ),
    ],
)
def test_foreign_or_damaged_files_are_refused(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "le.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(CacheError) as caught:
        CacheFile(path).read()
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)
    assert path.read_bytes() == content


def test_a_file_others_may_read_is_refused(tmp_path: Path) -> None:
    cache = CacheFile(tmp_path / "le.json")
    cache.write(CacheContents())
    cache.path.chmod(0o640)
    with pytest.raises(CacheError, match=r"others may read it \(mode 0640\).*chmod 600"):
        cache.read()


def test_renewal_point() -> None:
    short = certificate(days=3)
    assert short.renew_at() == short.not_after - datetime.timedelta(days=1)
    long = certificate(days=90)
    assert long.renew_at() == long.not_after - datetime.timedelta(days=30)
    assert long.covers(("registry.example",)) and not long.covers(("other.example",))
    assert retry_delay(None, NOW) == 5.0
    assert retry_delay(long, NOW) == 3600.0


def test_reloader_loads_a_replaced_certificate_into_the_context(tmp_path: Path) -> None:
    cache = CacheFile(tmp_path / "le.json")
    first = certificate()
    cache.write(CacheContents(certificate=first))
    context = server_context(None, None)
    load_certificate(context, first.chain_pem, first.key_pem)
    assert handshake(context, [])[0].serial_number == first.serial
    served: list[int] = []

    def load(c: Certificate) -> None:
        load_certificate(context, c.chain_pem, c.key_pem)
        served.append(c.serial)

    reloader = Reloader(load, cache, first)
    assert not reloader.check()  # unchanged file
    cache.write(CacheContents(certificate=first, challenges={"t": "a"}))
    assert not reloader.check() and served == []  # same certificate: nothing to load
    second = certificate()
    cache.write(CacheContents(certificate=second))
    assert reloader.check()
    assert served == [second.serial]
    assert handshake(context, [])[0].serial_number == second.serial  # the next handshake has it
