"""A pytest port of the OCI distribution-spec conformance suite (v1.1.1), run against a live
Dockyard process. See docs/conformance.md."""
