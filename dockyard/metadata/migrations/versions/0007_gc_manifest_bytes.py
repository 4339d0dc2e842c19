"""The garbage collector's review queue of manifest bytes (gc_manifest_bytes): digests whose
last manifest row was deleted, so that their copy at the blob path can be collected; and
indexes on the digest of manifests and of blob links, which the collector looks up across
repositories.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gc_manifest_bytes",
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("digest", name="pk_gc_manifest_bytes"),
    )
    op.create_index("ix_gc_manifest_bytes_queued_at", "gc_manifest_bytes", ["queued_at"])
    op.create_index("ix_manifests_digest", "manifests", ["digest"])
    op.create_index("ix_repository_blobs_digest", "repository_blobs", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_repository_blobs_digest", table_name="repository_blobs")
    op.drop_index("ix_manifests_digest", table_name="manifests")
    op.drop_index("ix_gc_manifest_bytes_queued_at", table_name="gc_manifest_bytes")
    op.drop_table("gc_manifest_bytes")
