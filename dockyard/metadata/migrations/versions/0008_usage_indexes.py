"""Indexes for storage usage (``dockyard du``, ``/dockyard/v1/usage``): whether a blob
is linked into, or a manifest stored in, another repository is an index lookup by digest.

Revision ID: 0008
Revises: 0005
"""

from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_repository_blobs_digest", "repository_blobs", ["digest"])
    op.create_index("ix_manifests_digest", "manifests", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_manifests_digest", "manifests")
    op.drop_index("ix_repository_blobs_digest", "repository_blobs")
