"""The optional power of a driver whose uploads can outlive every record of them.

An object store's multipart upload is started before the request that writes it ends; a
worker killed in between leaves one that no ``uploads`` row knows of, invisible but kept
(and billed) by the store. The upload purger asks ``storage.capability(StrayUploads)``
and, when the driver has the power, ends those older than the purge age as well.
"""

from __future__ import annotations

from datetime import timedelta


class StrayUploads:
    """A driver with uploads of its own subclasses this. (Not an ABC: ``capability``
    needs a class it can be given.)"""

    async def abort_uploads_older_than(self, age: timedelta) -> int:
        """Abort every upload under the driver's root started more than ``age`` ago,
        whether a row knows it or not; how many. Listing them is fine here: it decides
        nothing about an upload's progress."""
        raise NotImplementedError
