"""Uploads keep their sha256 state: hash_offset, hash_state.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("uploads", sa.Column("hash_offset", sa.BigInteger(), nullable=True))
    op.add_column("uploads", sa.Column("hash_state", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("hash_state")
        batch.drop_column("hash_offset")
