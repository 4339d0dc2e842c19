"""The pull-through cache: read-only mirrors of upstream registries, by repository prefix
(docs/mirror.md). :func:`~dockyard.proxy.wrappers.proxied` wraps the use cases."""
