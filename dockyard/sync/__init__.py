"""Copy images between registries: ``dockyard sync`` and ``dockyard promote``, and the
engine that replication inside the server runs (:mod:`dockyard.sync.engine`, with its
clients' :mod:`dockyard.sync.protocols`).

Only the rules are imported with the package: the configuration needs them, and every
command loads the configuration, while the engine brings the HTTP client (aiohttp) with it.
"""

from .rules import PrefixMap, SyncRules

__all__ = ["PrefixMap", "SyncRules"]
