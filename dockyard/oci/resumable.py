"""A sha256 whose state can be saved and picked up again by another process.

A chunked upload's chunks may land on different workers or replicas. With hashlib, the
one that did not see the earlier chunks must hash the whole upload again, for every such
chunk. Distribution saves its hash state beside the upload for this reason; Dockyard does
the same with OpenSSL's own ``SHA256_CTX`` (the code hashlib runs, at the same speed),
reached through ctypes. The saved form carries a tag with the layout and the byte order:
a state from another kind of machine is refused, and the caller hashes from the start.

Where libcrypto's ``SHA256_*`` functions are not found, :func:`new_sha256` returns a plain
hashlib object and nothing can be saved.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import sys
from typing import Any

from dockyard.oci.digest import Hasher

# sizeof(SHA256_CTX) in OpenSSL 1.1 and 3: h[8], Nl, Nh, data[16], num, md_len (32-bit).
_CTX_SIZE = 112
_TAG = f"openssl-sha256-ctx/{_CTX_SIZE}/{sys.byteorder}:".encode()


def _load() -> Any:
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
        for function in (library.SHA256_Init, library.SHA256_Update, library.SHA256_Final):
            function.restype = ctypes.c_int
        library.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return library


_libcrypto = _load()


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
        """The hasher saved as ``state``, or None when it cannot be used here."""
        if _libcrypto is None or len(state) != len(_TAG) + _CTX_SIZE:
            return None
        if not state.startswith(_TAG):
            return None
        hasher = cls()
        ctypes.memmove(hasher._ctx, state[len(_TAG) :], _CTX_SIZE)
        return hasher


def new_sha256() -> Hasher:
    """A sha256 hasher that can be saved when libcrypto allows it, hashlib's otherwise."""
    return ResumableSha256() if _libcrypto is not None else hashlib.sha256()


def saved_state(hasher: Hasher) -> bytes | None:
    return hasher.state() if isinstance(hasher, ResumableSha256) else None
