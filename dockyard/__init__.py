"""Dockyard: a container image registry (OCI Distribution 1.1, Docker Registry HTTP API V2)."""

__version__ = "0.1.0"
