"""A base for wrappers of the upload use case that run some of its calls inside a context
(notifications record the commits, metrics count the uploads in progress): the wrapper
says which calls and what context in :meth:`ForwardingUploads.around`; every call is
forwarded to the wrapped use case."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Literal

from dockyard.oci.digest import Digest
from dockyard.oci.ranges import ByteRange
from dockyard.registry.body import Body
from dockyard.registry.protocols import Uploads

UploadCall = Literal["append", "complete", "monolithic", "mount"]


class ForwardingUploads:
    def __init__(self, inner: Uploads) -> None:
        self._inner = inner

    def around(self, call: UploadCall) -> AbstractContextManager[object]:
        """What ``call`` runs inside; nothing by default."""
        return nullcontext()

    async def start(self, name: str) -> str:
        return await self._inner.start(name)

    async def status(self, name: str, upload_id: str) -> int:
        return await self._inner.status(name, upload_id)

    async def cancel(self, name: str, upload_id: str) -> None:
        await self._inner.cancel(name, upload_id)

    async def append(
        self,
        name: str,
        upload_id: str,
        body: Body,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        with self.around("append"):
            return await self._inner.append(name, upload_id, body, content_range, content_length)

    async def complete(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        body: Body | None,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        with self.around("complete"):
            return await self._inner.complete(
                name, upload_id, digest, body, content_range, content_length
            )

    async def monolithic(
        self, name: str, digest: Digest, body: Body, content_length: int | None
    ) -> int:
        with self.around("monolithic"):
            return await self._inner.monolithic(name, digest, body, content_length)

    async def mount(self, name: str, digest: Digest, source: str | None) -> int | None:
        with self.around("mount"):
            return await self._inner.mount(name, digest, source)

    async def purge(self, older_than: timedelta, dry_run: bool = False) -> list[str]:
        return await self._inner.purge(older_than, dry_run)
