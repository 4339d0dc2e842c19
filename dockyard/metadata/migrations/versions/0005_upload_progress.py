"""Uploads keep their progress in the row (uploads.size, uploads.driver_state), so that no
process asks the storage how far an upload got; the storage driver owns driver_state.

An upload in progress when this runs keeps what its saved hash state covers: every chunk
before this version saved one at the upload's size (hash_offset), where libcrypto allowed.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("uploads", sa.Column("size", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("uploads", sa.Column("driver_state", sa.LargeBinary(), nullable=True))
    op.execute("UPDATE uploads SET size = hash_offset WHERE hash_offset IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("driver_state")
        batch.drop_column("size")
