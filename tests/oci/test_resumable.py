"""The resumable sha256: a saved state continues to the same digest as hashlib."""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import struct
from typing import Any

import pytest

from dockyard.oci import resumable
from dockyard.oci.resumable import LIBRARY_VERSION, ResumableSha256, new_sha256, saved_state

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


def _parts(state: bytes) -> tuple[bytes, bytes]:
    """The tag of a saved state (up to its first ':') and the context after it."""
    tag, _, ctx = state.partition(b":")
    return tag, ctx


def test_the_tag_names_the_library_that_wrote_the_state() -> None:
    hasher = new_sha256()
    hasher.update(b"first chunk")
    state = saved_state(hasher)
    assert state is not None and LIBRARY_VERSION is not None
    tag, ctx = _parts(state)
    assert tag.endswith(f"/{LIBRARY_VERSION:08x}".encode())
    for other in (LIBRARY_VERSION + 1, 0x10101170):  # a newer patch release, OpenSSL 1.1.1w
        foreign = tag.rpartition(b"/")[0] + f"/{other:08x}:".encode() + ctx
        assert ResumableSha256.restore(foreign) is None
    older_format = tag.rpartition(b"/")[0] + b":" + ctx  # a tag without any version
    assert ResumableSha256.restore(older_format) is None
    assert ResumableSha256.restore(state) is not None


def _with_tail(ctx: bytes, waiting: int, digest_size: int) -> bytes:
    return ctx[:104] + struct.pack("=2I", waiting, digest_size)


def test_a_context_whose_counters_disagree_is_refused() -> None:
    hasher = new_sha256()
    hasher.update(b"x" * 100)  # 36 bytes wait in the buffer
    state = saved_state(hasher)
    assert state is not None
    tag, ctx = _parts(state)
    assert ResumableSha256.restore(tag + b":" + _with_tail(ctx, 36, 32)) is not None
    for waiting, digest_size in ((35, 32), (64, 32), (0xFFFFFFFF, 32), (36, 28)):
        damaged = tag + b":" + _with_tail(ctx, waiting, digest_size)
        assert ResumableSha256.restore(damaged) is None, (waiting, digest_size)


def test_a_sha224_context_is_not_taken_for_sha256() -> None:
    """Same struct, other hash: OpenSSL's own SHA-224 context, saved under our tag."""
    library = resumable._libcrypto
    ctx = ctypes.create_string_buffer(112)
    library.SHA224_Init(ctx)
    library.SHA224_Update(ctx, ctypes.c_char_p(b"abc"), ctypes.c_size_t(3))
    tag, _ = _parts(saved_state(new_sha256()) or b"")
    assert ResumableSha256.restore(tag + b":" + ctx.raw) is None


class _WiderContext:
    """libcrypto as a future release might be, with a SHA256_CTX longer than 112 bytes
    (a real one cannot be had here): its Init also writes past the known layout."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def SHA256_Init(self, ctx: Any) -> int:  # libcrypto's names
        self.real.SHA256_Init(ctx)
        ctypes.memset(ctypes.addressof(ctx) + 112, 0, 8)
        return 1

    def SHA256_Update(self, ctx: Any, data: Any, length: Any) -> int:
        return int(self.real.SHA256_Update(ctx, data, length))


def test_a_changed_layout_is_detected_before_any_state_is_saved() -> None:
    assert resumable._layout_holds(resumable._libcrypto)
    assert not resumable._layout_holds(_WiderContext(resumable._libcrypto))
