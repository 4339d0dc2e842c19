"""Retention policies and immutable tags: which tags and manifests a repository keeps.

``policy`` holds the rules (pure), ``plan`` decides what a repository loses, ``apply``
runs the rules against the metadata store (``dockyard retention`` and the scheduled
collection), ``immutable`` wraps the manifest and tag use cases so that protected tags
cannot be moved or deleted.
"""
