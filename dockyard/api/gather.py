"""Bodies through aiohttp's parser, joined into chunks of a few MiB.

aiohttp hands a body over in pieces of up to 64 KiB; hashing and writing them one by one
would cost a thread hand-off each. Joined into chunks of :data:`CHUNK` bytes, they cost
one per chunk. Receiving goes on meanwhile: the upload gathers the next chunk while it
hashes and writes the ones before (``dockyard.registry.uploads``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

CHUNK = 4 * 1024 * 1024


async def gathered(pieces: AsyncIterator[bytes], size: int = CHUNK) -> AsyncGenerator[bytes]:
    """``pieces`` joined into chunks of at least ``size`` bytes (the last may be less)."""
    parts: list[bytes] = []
    total = 0
    async for piece in pieces:
        parts.append(piece)
        total += len(piece)
        if total >= size:
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            parts, total = [], 0
    if parts:
        yield b"".join(parts)
