"""``dockyard fsck``: whether the metadata database and the storage agree, and the safe
repairs (:mod:`dockyard.fsck.check`)."""
