"""A sha256 whose state can be saved and picked up again by another process.

A chunked upload's chunks may land on different workers or replicas. With hashlib, the
one that did not see the earlier chunks must hash the whole upload again, for every such
chunk. Distribution saves its hash state beside the upload for this reason; Dockyard does
the same with OpenSSL's own ``SHA256_CTX`` (the code hashlib runs, at the same speed),
reached through ctypes.

The context is raw memory, so nothing is taken on trust. At import, a fresh and a fed
context must look exactly as the layout below says, or nothing is ever saved. The saved
form carries a tag with the layout, the byte order and the version of the library that
wrote it, and its counters must agree with each other: a state from another kind of
machine, another OpenSSL, or damaged on the way is refused, and the caller hashes from
the start.

Where libcrypto's ``SHA256_*`` functions are not found, :func:`new_sha256` returns a plain
hashlib object and nothing can be saved.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import struct
import sys
from typing import Any

from dockyard.oci.digest import Hasher

# SHA256_CTX in OpenSSL 1.1 and 3, in 32-bit words: h[8], Nl, Nh, data[16], num, md_len.
_CTX_SIZE = 112
_BLOCK = 64
_COUNTS = struct.Struct("=2I")  # Nl, Nh: the bits hashed so far, low and high word
_COUNTS_AT = 32
_TAIL = struct.Struct("=2I")  # num (bytes waiting in data), md_len (32 for SHA-256)
_TAIL_AT = 104
_SHA256_IV = struct.pack(
    "=8I",
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)


def _counts_agree(ctx: bytes) -> bool:
    """Whether a context's counters are those of a SHA-256 that has hashed whole bytes."""
    low, high = (int(word) for word in _COUNTS.unpack_from(ctx, _COUNTS_AT))
    waiting, digest_size = (int(word) for word in _TAIL.unpack_from(ctx, _TAIL_AT))
    hashed = ((high << 32) | low) // 8
    return digest_size == 32 and low % 8 == 0 and waiting == hashed % _BLOCK


def _layout_holds(library: Any) -> bool:
    """Whether this libcrypto's SHA256_CTX is the layout above: it stays within
    :data:`_CTX_SIZE` bytes, starts from SHA-256's initial value, and counts where the
    layout says (checked on a buffer with room to spare, filled with a marker)."""
    room = _CTX_SIZE + 144
    ctx = ctypes.create_string_buffer(b"\xa5" * room, room)
    library.SHA256_Init(ctx)
    fresh = ctx.raw
    library.SHA256_Update(ctx, ctypes.c_char_p(b"abc"), ctypes.c_size_t(3))
    fed = ctx.raw
    return (
        fresh[_CTX_SIZE:] == fed[_CTX_SIZE:] == b"\xa5" * (room - _CTX_SIZE)
        and fresh.startswith(_SHA256_IV)
        and _COUNTS.unpack_from(fresh, _COUNTS_AT) == (0, 0)
        and _TAIL.unpack_from(fresh, _TAIL_AT) == (0, 32)
        and _COUNTS.unpack_from(fed, _COUNTS_AT) == (24, 0)
        and _TAIL.unpack_from(fed, _TAIL_AT) == (3, 32)
    )


def _load() -> tuple[Any, int] | None:
    """libcrypto and its version number, when its SHA256_CTX can be saved and restored."""
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
        for function in (library.SHA256_Init, library.SHA256_Update, library.SHA256_Final):
            function.restype = ctypes.c_int
        library.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        library.OpenSSL_version_num.restype = ctypes.c_ulong
        library.OpenSSL_version_num.argtypes = []
        version = int(library.OpenSSL_version_num())
    except (OSError, AttributeError):
        return None
    return (library, version) if _layout_holds(library) else None


_loaded = _load()
_libcrypto: Any = _loaded[0] if _loaded else None
# OpenSSL_version_num() of the libcrypto in use (0x30000130 is 3.0.19), None without one.
LIBRARY_VERSION: int | None = _loaded[1] if _loaded else None
_TAG = f"openssl-sha256-ctx/{_CTX_SIZE}/{sys.byteorder}/{LIBRARY_VERSION or 0:08x}:".encode()


def _pointer(data: bytes | memoryview) -> tuple[Any, int]:
    """A pointer to ``data`` without copying it where possible."""
    if isinstance(data, bytes):
        return ctypes.c_char_p(data), len(data)
    if not data.readonly and data.c_contiguous and data.nbytes:
        return ctypes.addressof(ctypes.c_char.from_buffer(data)), data.nbytes
    copy = bytes(data)
    return ctypes.c_char_p(copy), len(copy)


class ResumableSha256:
    """hashlib's sha256 interface, plus :meth:`state` and :meth:`restore`."""

    name = "sha256"

    def __init__(self) -> None:
        self._ctx = ctypes.create_string_buffer(_CTX_SIZE)
        _libcrypto.SHA256_Init(self._ctx)

    def update(self, data: bytes | memoryview, /) -> None:
        pointer, length = _pointer(data)
        if length:
            _libcrypto.SHA256_Update(self._ctx, pointer, ctypes.c_size_t(length))

    def hexdigest(self) -> str:
        finished = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE)
        out = ctypes.create_string_buffer(32)
        _libcrypto.SHA256_Final(out, finished)
        return out.raw.hex()

    def state(self) -> bytes:
        return _TAG + self._ctx.raw

    @classmethod
    def restore(cls, state: bytes) -> ResumableSha256 | None:
        """The hasher saved as ``state``, or None when it cannot be used here: written by
        another kind of machine or another libcrypto, or not a sound SHA-256 context."""
        if _libcrypto is None or len(state) != len(_TAG) + _CTX_SIZE:
            return None
        if not state.startswith(_TAG):
            return None
        ctx = state[len(_TAG) :]
        if not _counts_agree(ctx):
            return None
        hasher = cls()
        ctypes.memmove(hasher._ctx, ctx, _CTX_SIZE)
        return hasher


def new_sha256() -> Hasher:
    """A sha256 hasher that can be saved when libcrypto allows it, hashlib's otherwise."""
    return ResumableSha256() if _libcrypto is not None else hashlib.sha256()


def saved_state(hasher: Hasher) -> bytes | None:
    return hasher.state() if isinstance(hasher, ResumableSha256) else None
