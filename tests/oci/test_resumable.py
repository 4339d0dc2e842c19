"""The resumable sha256: a saved state continues to the same digest as hashlib."""

from __future__ import annotations

import hashlib
import mmap
import os

import pytest

from dockyard.oci.resumable import ResumableSha256, new_sha256, saved_state

pytestmark = pytest.mark.skipif(
    not isinstance(new_sha256(), ResumableSha256), reason="libcrypto's SHA256_* not found"
)


@pytest.mark.parametrize("split", [0, 1, 63, 64, 65, 4096, 99_999, 100_000])
def test_saved_state_continues_to_the_same_digest(split: int) -> None:
    data = os.urandom(100_000)
    first = new_sha256()
    first.update(data[:split])
    state = saved_state(first)
    assert state is not None
    second = ResumableSha256.restore(state)
    assert second is not None
    second.update(memoryview(data)[split:])
    assert second.hexdigest() == hashlib.sha256(data).hexdigest()
    # Reading the digest does not end the hash.
    assert first.hexdigest() == hashlib.sha256(data[:split]).hexdigest()
    first.update(data[split:])
    assert first.hexdigest() == hashlib.sha256(data).hexdigest()


def test_every_kind_of_buffer_hashes_the_same() -> None:
    data = os.urandom(3 * 4096)
    writable = mmap.mmap(-1, len(data))
    writable.write(data)
    hasher = new_sha256()
    hasher.update(data[:4096])  # bytes
    hasher.update(memoryview(writable)[4096:8192])  # a writable view: no copy
    hasher.update(memoryview(data)[8192:])  # a read-only view
    hasher.update(b"")
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_foreign_or_damaged_states_are_refused() -> None:
    state = saved_state(new_sha256())
    assert state is not None
    assert ResumableSha256.restore(b"") is None
    assert ResumableSha256.restore(state[:-1]) is None
    assert ResumableSha256.restore(b"x" + state[1:]) is None
    assert saved_state(hashlib.sha256()) is None
