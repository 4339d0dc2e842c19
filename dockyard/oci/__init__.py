"""Pure protocol logic of the OCI Distribution Spec: no I/O, no dockyard imports."""
