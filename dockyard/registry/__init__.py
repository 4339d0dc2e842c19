"""The use cases: push, pull, mount, delete, list — metadata and blobs in transactions."""
