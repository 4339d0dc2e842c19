"""Blobs whose bytes are not at their Distribution path yet (``storage.s3.deferredcopy``):
``pending_path``, the storage path that holds them (the upload's), and ``moved_at``, when
the mover copied them to the blob's path (the upload's object is deleted after a grace
period, then both are cleared).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, also on SQLite (a batch would copy the table, breaking the
    # review queue's triggers on it).
    op.add_column("blobs", sa.Column("pending_path", sa.String(1024), nullable=True))
    op.add_column("blobs", sa.Column("moved_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_blobs_pending_path", "blobs", ["pending_path"])


def downgrade() -> None:
    op.drop_index("ix_blobs_pending_path", table_name="blobs")
    op.drop_column("blobs", "moved_at")  # SQLite 3.35 or later drops columns in place
    op.drop_column("blobs", "pending_path")
