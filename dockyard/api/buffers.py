"""The buffers request bodies are received into: page-aligned, reused, and bounded per
process however many uploads run at once.

Every body gets one buffer whatever the others hold, so it never waits for another
upload (a client that stalls holds up only its own upload). More buffers let receiving
run ahead of hashing and writing (up to :data:`MOST` per body); a process lends those
only while fewer than :data:`LENT` buffers are out in all. Past that, a body hands back
every buffer but its last as the reader returns them, and receives into that one alone:
receiving and writing take turns, and the memory of ``n`` uploads in one process stays
at ``BUFFER_SIZE * max(LENT, n)``.

The buffers are anonymous ``mmap`` maps, so page-aligned: a driver that can write them
with ``O_DIRECT`` does (the filesystem driver). A few free ones are kept for the next
upload (mapping fresh memory costs more than the copies it saves when it happens per
request); the others are unmapped once nothing refers to them.
"""

from __future__ import annotations

import mmap

BUFFER_SIZE = 4 * 1024 * 1024
# The most buffers one body holds: some with the reader (hashed, written), the others
# receiving meanwhile.
MOST = 4
# Buffers out at once in one process beyond which no body gets a second one (64 MiB).
LENT = 16
# Free buffers kept for the next body: one body's worth.
KEEP = MOST


class BufferPool:
    """The buffers of one process: how many are out, and a few free ones."""

    def __init__(self, size: int = BUFFER_SIZE, lent: int = LENT, keep: int = KEEP) -> None:
        self.size = size
        self.limit = lent
        self.keep = keep
        self.out = 0
        self.free: list[mmap.mmap] = []

    def lend(self, first: bool) -> mmap.mmap | None:
        """A buffer; a body's ``first`` is never refused, a further one only while fewer
        than the limit are out."""
        if not first and self.crowded():
            return None
        self.out += 1
        return self.free.pop() if self.free else mmap.mmap(-1, self.size)

    def give_back(self, buffer: mmap.mmap) -> None:
        self.out -= 1
        if len(self.free) < self.keep and not self.crowded():
            self.free.append(buffer)

    def crowded(self) -> bool:
        return self.out >= self.limit


POOL = BufferPool()


class BodyBuffers:
    """The buffers one body holds: each is either free (to be filled) or out (being
    filled, or with the reader); :meth:`returned` decides whether a buffer the reader is
    done with stays with this body or goes back to the pool."""

    def __init__(self, pool: BufferPool = POOL, most: int = MOST) -> None:
        self._pool = pool
        self._most = most
        self._held: dict[int, mmap.mmap] = {}  # id → buffer, every buffer of this body
        self._free: list[mmap.mmap] = []
        self._handed: set[int] = set()  # ids of the buffers the reader holds
        self._closed = False

    def first(self) -> mmap.mmap:
        buffer = self._pool.lend(first=True)
        assert buffer is not None
        self._held[id(buffer)] = buffer
        return buffer

    def next(self) -> mmap.mmap | None:
        """A buffer to fill next: a free one of this body's, or one more lent by the
        pool; None when the body must wait for one the reader returns."""
        if self._free:
            return self._free.pop()
        if len(self._held) >= self._most:
            return None
        buffer = self._pool.lend(first=not self._held)
        if buffer is not None:
            self._held[id(buffer)] = buffer
        return buffer

    def hand(self, buffer: mmap.mmap, length: int) -> memoryview:
        """``buffer``'s first ``length`` bytes as a chunk for the reader, who holds the
        buffer until it gives the chunk back (:meth:`handed_back`)."""
        self._handed.add(id(buffer))
        return memoryview(buffer)[:length]

    def handed_back(self, chunk: bytes | memoryview) -> mmap.mmap | None:
        """The buffer of ``chunk``, which the reader no longer holds, to be filled again;
        None when the reader did not hold it, or when the body is closed (then the
        buffer went back to the pool)."""
        if not isinstance(chunk, memoryview):
            return None
        buffer = self._held.get(id(chunk.obj))
        if buffer is not chunk.obj or id(buffer) not in self._handed:
            return None
        self._handed.discard(id(buffer))
        if self._closed:
            self.release(buffer)
            return None
        return buffer

    def returned(self, buffer: mmap.mmap) -> bool:
        """The reader is done with ``buffer``; True when this body keeps it (free), False
        when it went back to the pool (the pool is crowded and this body has others)."""
        if self._pool.crowded() and len(self._held) > 1:
            self.release(buffer)
            return False
        self._free.append(buffer)
        return True

    def release(self, buffer: mmap.mmap) -> None:
        """Give ``buffer`` back to the pool (nothing may write into it any more)."""
        if self._held.pop(id(buffer), None) is not None:
            if buffer in self._free:
                self._free.remove(buffer)
            self._pool.give_back(buffer)

    def close(self) -> None:
        """Nothing is received any more: give back every buffer but those the reader
        holds, which go back as it hands them back."""
        self._closed = True
        for key, buffer in list(self._held.items()):
            if key not in self._handed:
                self.release(buffer)
