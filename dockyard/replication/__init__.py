"""Replication inside the server: images copied to other registries by the rules of the
``replication`` section, on push and on a schedule, through a durable job queue.

``settings`` holds the rules and destinations; ``recorder`` turns a push into jobs, in
the push's transaction; ``wrappers`` record the use cases' changes; ``source`` reads the
local registry as the copy engine's source; ``delivery`` runs the jobs, one process at a
time, with retries and backoff.
"""
