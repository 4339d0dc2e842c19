"""When each blob and manifest was last wanted (blobs.wanted_at, manifests.wanted_at): a
commit, link, mount or reference records it, so that a collector honours a review delay.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("blobs", sa.Column("wanted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("manifests", sa.Column("wanted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("manifests") as batch:
        batch.drop_column("wanted_at")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("wanted_at")
