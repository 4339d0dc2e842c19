"""The metadata tables. The database is the source of truth for what a repository holds.

Changing a table means adding an Alembic revision under ``migrations/versions``; a test
checks that the migrations produce exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Blobs present in the store (bytes verified and committed), shared by all repositories.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Set when a read found the bytes gone (e.g. registry:2's garbage-collect ran on the
    # store): the blob then counts as unknown everywhere until it is uploaded again.
    Column("missing_at", DateTime(timezone=True), nullable=True),
    # The last time something wanted the blob: its commit, a link or mount into a
    # repository, a manifest referencing it (NULL in rows older than migration 0004: then
    # created_at). A collector leaves alone what was wanted within its review delay.
    Column("wanted_at", DateTime(timezone=True), nullable=True),
    # Bytes not at the blob's path yet (``storage.s3.deferredcopy``): the storage path that
    # holds them, and when the mover copied them to the blob's path (migration 0012).
    Column("pending_path", String(1024), nullable=True),
    Column("moved_at", DateTime(timezone=True), nullable=True),
    Index(None, "pending_path"),
)

# A blob linked into a repository (pushed or mounted there): what GET /blobs may serve.
repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), ForeignKey("blobs.digest"), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Storage usage and the collector look a blob's links up by digest (migration 0007).
    Index(None, "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    Column("digest", String(200), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("subject_digest", String(200), nullable=True),
    Column("annotations", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # As blobs.wanted_at: a push of it, a tag moved to it, an index referencing it.
    Column("wanted_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("repository_id", "digest"),
    Index(None, "repository_id", "subject_digest"),
    # Whether any repository holds a manifest with a digest (migration 0007): the
    # collector's check before it deletes manifest bytes.
    Index(None, "digest"),
)

# What a manifest references: its config and layers (kind "blob") or children ("manifest").
manifest_references = Table(
    "manifest_references",
    metadata,
    Column(
        "manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("digest", String(200), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Index(None, "digest"),
)

tags = Table(
    "tags",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(128), primary_key=True),
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "manifest_id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("repository", String(255), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    # The sha256 state after the first ``hash_offset`` bytes (oci/resumable.py), so that a
    # chunk on another worker or replica does not hash the upload again from the start.
    Column("hash_offset", BigInteger, nullable=True),
    Column("hash_state", LargeBinary, nullable=True),
    # How many bytes the upload holds, and what its storage driver needs to go on (opaque:
    # an object store's multipart upload id and parts). The storage is never asked.
    Column("size", BigInteger, nullable=False, server_default="0"),
    Column("driver_state", LargeBinary, nullable=True),
    Index(None, "started_at"),
)

# Facts about the store itself, by key: e.g. ``served_write_at``, when Dockyard first
# changed what the store holds (so that an import cannot silently revert it).
registry_state = Table(
    "registry_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Failed password checks, for ``security.failedlogins`` when several replicas share the
# database (PostgreSQL): one row per failure, by bucket (a keyed hash of the client's
# address, never the address itself) and the database's clock in seconds. Each bucket
# keeps at most ``limit`` rows, so the table is bounded by buckets * limit.
failed_logins = Table(
    "failed_logins",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("bucket", Integer, nullable=False),
    Column("failed_at", Double, nullable=False),
    Index(None, "bucket", "failed_at"),
)

# Notification events waiting for delivery (an outbox): one row per event and endpoint,
# written in the transaction of the change it describes, deleted once the endpoint took
# it. ``id`` orders the events; an endpoint receives a repository's events in that order.
notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("endpoint", String(255), nullable=False),
    Column("repository", String(255), nullable=False),
    # The event as JSON (Distribution's fields); the envelope is added when it is sent.
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Failed deliveries so far (bounded by ``outbox.maxattempts``).
    Column("attempts", Integer, nullable=False, server_default="0"),
    Index(None, "endpoint", "id"),
)

# The garbage collector's review queue of manifest bytes: a digest goes in when the last
# ``manifests`` row with it is deleted, since the copy at its blob path (kept for
# registry:2's layout) is then garbage once the review delay has passed. ``deleted_at``
# is set when the collector has deleted those bytes, so that a push of the same manifest
# that wrote them just before can tell, in its transaction, that it must write them again.
gc_manifest_bytes = Table(
    "gc_manifest_bytes",
    metadata,
    Column("digest", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("queued_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Index(None, "queued_at"),
)

# Replication jobs (a durable queue beside the notification outbox): a copy of one image
# (``reference``: a tag, or the digest of a manifest whose referrers changed), a deletion,
# or a full sync of a rule (``action`` "sync", ``repository`` and ``reference`` empty).
# Those of a push are written in the push's transaction. ``state``: pending, done or
# failed; a pending job waits until ``due_at`` after a failure; ``id`` orders a
# repository's jobs. Done jobs are deleted after ``replication.keepdone``; failed ones
# stay (with ``last_error``) until a later job for the same image succeeds.
replication_jobs = Table(
    "replication_jobs",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("rule", String(255), nullable=False),
    Column("destination", String(255), nullable=False),
    Column("action", String(16), nullable=False),
    Column("repository", String(255), nullable=False),
    Column("reference", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index(None, "state", "id"),
    Index(None, "rule", "destination", "state"),
)

# The garbage collector's review queue of blobs: the digest of every blob that no manifest
# references (created and never referenced yet, or left by a deleted manifest), so that a
# collection reads this queue, not every blob. Triggers of migration 0010 keep it: a blob
# enters when its row is created or a reference to it is deleted, and leaves when a
# manifest references it or its row is deleted; the collector drops the entries it finds
# referenced. Whether an entry is due is the blob's own ``wanted_at``.
gc_blob_reviews = Table(
    "gc_blob_reviews",
    metadata,
    Column("digest", String(200), primary_key=True),
)

# Push sessions, one row per repository (dockyard.metadata.push_sessions): when a client last
# pushed to it (a blob HEAD, upload, mount or manifest push), and since when without a rest
# as long as the review delay. What was wanted within a session that still runs is not
# collected: a push takes as long as it takes, and the review delay counts from its last
# request. A table of its own, so that noting a push never waits for a lock on
# ``repositories`` (manifest pushes hold one).
gc_push_sessions = Table(
    "gc_push_sessions",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("active_at", DateTime(timezone=True), nullable=False),
)
