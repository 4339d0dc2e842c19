"""Blobs whose bytes were found missing (blobs.missing_at); the store's own facts
(registry_state), such as when Dockyard first served a write.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("blobs", sa.Column("missing_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "registry_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_registry_state"),
    )


def downgrade() -> None:
    op.drop_table("registry_state")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("missing_at")
