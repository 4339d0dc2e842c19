"""The use cases wrapped so that pushes and deletes queue their replication jobs inside
their own transactions, without a handler knowing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from dockyard.metadata.changes import ChangeRecorder, recording
from dockyard.metadata.records import ManifestRecord
from dockyard.oci.pagination import Page
from dockyard.registry.listing import Listing
from dockyard.registry.manifests import PushedManifest
from dockyard.registry.protocols import Manifests, Tags, UseCases


class JobRecording:
    """Records a call's changes with the replication recorder, and wakes this process's
    delivery loop when the call queued jobs."""

    def __init__(self, recorder: ChangeRecorder, queued: asyncio.Event) -> None:
        self._recorder = recorder
        self.queued = queued

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        with recording(self._recorder) as current:
            yield
        if current.written:
            self.queued.set()


def replicating(use_cases: UseCases, jobs: JobRecording) -> UseCases:
    return use_cases.wrapped(
        manifests=ReplicatingManifests(use_cases.manifests, jobs),
        tags=ReplicatingTags(use_cases.tags, jobs),
    )


class ReplicatingManifests:
    def __init__(self, inner: Manifests, jobs: JobRecording) -> None:
        self._inner = inner
        self._jobs = jobs

    async def push(
        self, name: str, reference: str, payload: bytes, content_type: str | None
    ) -> PushedManifest:
        with self._jobs.around():
            return await self._inner.push(name, reference, payload, content_type)

    async def get(
        self, name: str, reference: str, accept: set[str] | None, method: str = "GET"
    ) -> ManifestRecord:
        return await self._inner.get(name, reference, accept, method)

    async def delete(self, name: str, digest: str) -> None:
        with self._jobs.around():
            await self._inner.delete(name, digest)


class ReplicatingTags:
    def __init__(self, inner: Tags, jobs: JobRecording) -> None:
        self._inner = inner
        self._jobs = jobs

    async def list(self, name: str, page: Page) -> Listing:
        return await self._inner.list(name, page)

    async def delete(self, name: str, tag: str) -> None:
        with self._jobs.around():
            await self._inner.delete(name, tag)
