"""The byte ranges of blob transfers: ``Content-Range`` of upload chunks, ``Range`` of reads.

Upload chunks use the spec's form ``<start>-<end>`` (inclusive, no unit), though clients also
send RFC 9110's ``bytes <start>-<end>/<total>``; both are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CHUNK = re.compile(r"(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]{1,19}|\*))?")
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``start``..``end``."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(value: str) -> ByteRange | None:
    """Parse an upload chunk's Content-Range; None when it is malformed or reversed."""
    match = _CHUNK.fullmatch(value.strip())
    if match is None:
        return None
    start, end = int(match[1]), int(match[2])
    if end < start:
        return None
    return ByteRange(start, end)


class RangeNotSatisfiable(ValueError):
    """The Range header is well formed but selects nothing of a blob of this size."""


def parse_range(value: str, size: int) -> ByteRange | None:
    """Parse a single-range ``Range`` header against a blob of ``size`` bytes.

    Returns None when the header should be ignored (malformed, several ranges), as RFC 9110
    allows; raises RangeNotSatisfiable when it selects nothing.
    """
    match = _RANGE.fullmatch(value.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # suffix range: the last N bytes
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(value)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(match[1])
    if match[2] and int(match[2]) < start:
        return None  # a reversed range is malformed: ignore the header
    if start >= size:
        raise RangeNotSatisfiable(value)
    end = int(match[2]) if match[2] else size - 1
    return ByteRange(start, min(end, size - 1))


def upload_range_header(size: int) -> str:
    """The ``Range`` header of an upload that holds ``size`` bytes (``0-<size-1>``)."""
    return f"0-{max(size - 1, 0)}"
