"""Tests of the pure protocol layer, ``dockyard.oci``."""

from hypothesis import settings

# Property tests run the same examples on every run and machine, and keep no example database
# in the working tree: a failure found once is reproduced by the next run, not by luck.
deterministic = settings(derandomize=True, database=None, deadline=None, max_examples=100)
