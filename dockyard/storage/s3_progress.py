"""Where an S3 upload stands: the ``driver_state`` the S3 driver hands its caller, who keeps
it in the ``uploads`` row so that any worker or replica takes the next request.

An upload is a multipart upload (its key, its id, the ETag and size of each part so far)
and, after it, a *tail*: the bytes that were too few for a part (S3 wants every part but
the last to hold 5 MiB at least), kept as a small object of their own beside the upload's
key. The next writer reads the tail back into the part it builds; the commit copies it in
as the last part (``UploadPartCopy``), so no tail is ever held between requests.

A tail is never overwritten: each state names its own, so that a caller may still resume
from an earlier state after a later request failed. ``stale`` names the tail of the state
a writer resumed from; the writer after it deletes those (its caller has moved past them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Final

# Tail objects are named ``<upload key>~tail~<hex>``: ``~`` is in no driver path, so no
# file can be mistaken for a tail, and listings leave tails out.
TAIL_MARK: Final = "~tail~"

#: How long after its creation a multipart upload is trusted to exist without a
#: ``ListParts``. Nothing can have aborted it sooner: Dockyard's purger deletes an
#: upload's row before it aborts the multipart upload (and every request reads the row),
#: and a bucket lifecycle rule aborts incomplete uploads a day after they start at the
#: earliest (``AbortIncompleteMultipartUpload`` counts whole days).
FRESH_UPLOAD: Final = 6 * 3600


@dataclass(frozen=True)
class Part:
    etag: str
    size: int


@dataclass(frozen=True)
class Progress:
    #: where the multipart upload is, or will be when its first part is sent
    key: str
    upload_id: str = ""
    parts: tuple[Part, ...] = ()
    tail: str = ""
    tail_size: int = 0
    stale: tuple[str, ...] = field(default=())
    created: int = 0

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts) + self.tail_size

    def is_fresh(self, now: float) -> bool:
        """Whether the multipart upload was created less than :data:`FRESH_UPLOAD` ago."""
        return self.created > 0 and now - self.created < FRESH_UPLOAD

    def encode(self) -> bytes:
        data = {
            "k": self.key,
            "u": self.upload_id,
            "p": [[part.etag, part.size] for part in self.parts],
            "t": self.tail,
            "n": self.tail_size,
            "s": list(self.stale),
            "c": self.created,
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Progress | None:
        """The progress ``raw`` holds; None when it is not one (another driver's state)."""
        try:
            data = json.loads(raw)
            return cls(
                key=str(data["k"]),
                upload_id=str(data["u"]),
                parts=tuple(Part(str(etag), int(size)) for etag, size in data["p"]),
                tail=str(data["t"]),
                tail_size=int(data["n"]),
                stale=tuple(str(key) for key in data["s"]),
                created=int(data.get("c", 0)),
            )
        except (ValueError, TypeError, KeyError):
            return None
